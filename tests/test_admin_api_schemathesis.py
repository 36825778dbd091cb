"""schemathesis against the admin API's served OpenAPI document: no request it can
derive from the document — examples, coverage of every keyword, fuzzing, and stateful
sequences that follow the document's links — gets a 5xx from a real `switchboard serve`.

Runs the real schemathesis CLI in a subprocess, authenticated as one tenant (the
``tenant`` path parameter is fixed to it, so requests get past authentication and reach
the handlers), with the ``not_a_server_error`` check.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_admin_api import KEYS, api  # noqa: F401  # the served API fixture


def test_schemathesis_finds_no_server_error(api: str, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'headers = {{ Authorization = "Bearer {KEYS["acme"]}" }}\n'
        'request-timeout = 60.0\n'
        'seed = 20261201\n'
        '[parameters]\n"path.tenant" = "acme"\n'
        '[generation]\nmax-examples = 40\n')
    binary = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(binary), "--config-file", str(config), "run", f"{api}/api/v1/openapi.json",
         "--url", api, "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing,stateful", "--workers", "2",
         "--continue-on-failure", "--report-dir", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output.lower(), output[-3000:]
