"""On the embedded defaults `serve` holds the local stores; `switchboard ingest` and
`chat` started beside it work through its local interface instead of failing."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.documents import make_pdf
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def beside(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "hr.toml").write_text('id = "hr"\nname = "HR"\n[knowledge]\n'
                                     'score_threshold = 0.1\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1",
           "LOG_FORMAT": "json"}
    base, process = start_switchboard(env, ROOT, tmp_path / "serve.log")
    yield base, env, tmp_path
    process.terminate()
    process.communicate(timeout=30)
    assert not (tmp_path / "var" / "serve.json").exists()  # removed on the way out


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bots", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_pdf_ingested_while_serve_runs_is_answered_from(
        beside: tuple[str, dict[str, str], Path]) -> None:
    _, env, home = beside
    control = home / "var" / "serve.json"
    assert stat.S_IMODE(control.stat().st_mode) == 0o600
    pdf = home / "leave.pdf"
    pdf.write_bytes(make_pdf(["Leave policy overview.",
                              "Parental leave lasts 26 weeks at full pay."],
                             title="Leave policy"))
    ingested = run(env, "ingest", "--tenant", "hr", str(pdf))
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert "ingesting through it" in ingested.stdout and "Traceback" not in ingested.stderr
    assert "│     1 │" in ingested.stdout  # one added
    answered = run(env, "chat", "--tenant", "hr", "--message", "How long is parental leave?")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "26 weeks" in answered.stdout and "[1] Leave policy" in answered.stdout
    missing = run(env, "ingest", "--tenant", "hr", str(home / "nothing-here.pdf"))
    assert missing.returncode == 1 and "failed" in missing.stdout
    unknown = run(env, "chat", "--tenant", "nobody", "--message", "hi")
    assert unknown.returncode == 2 and "No tenant 'nobody'" in unknown.stdout


def test_the_local_interface_wants_the_token(
        beside: tuple[str, dict[str, str], Path]) -> None:
    base, _, home = beside
    token = json.loads((home / "var" / "serve.json").read_text())["token"]
    body = json.dumps({"tenant": "hr", "text": "hi", "message_id": "m1"}).encode()
    for given in ("", "Bearer wrong", f"Bearer {token}x"):
        request = urllib.request.Request(f"{base}/local/v1/chat", data=body,
                                         headers={"Authorization": given} if given else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    request = urllib.request.Request(f"{base}/local/v1/chat", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        lines = [json.loads(line) for line in response.read().splitlines()]
    assert lines[-1] == {"type": "done", "outcome": "answered"}
    assert any(line["type"] == "reply" for line in lines)


def test_a_scheduler_beside_serve_says_serve_already_runs_it(
        beside: tuple[str, dict[str, str], Path]) -> None:
    _, env, _ = beside
    for command, work in (("scheduler", "the scheduler's jobs"),
                          ("discord", "the Discord gateway")):
        done = run(env, command)
        assert done.returncode == 2
        assert f"runs {work} itself" in done.stderr and "Traceback" not in done.stderr


def test_with_a_public_address_every_channel_gets_source_page_links(tmp_path: Path) -> None:
    """SWITCHBOARD_PUBLIC_URL: a cited file links to its signed source page there, so
    Slack, Discord and the terminal can open it too (here: the terminal's answer)."""
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "leave.md").write_text(
        "# Leave\n\nParental leave lasts twenty-six weeks at full pay.\n")
    (tenants / "hr.toml").write_text('id = "hr"\nname = "HR"\n[knowledge]\n'
                                     'score_threshold = 0.05\nsources = [{ path = "kb/" }]\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1",
           "LOG_FORMAT": "json", "SWITCHBOARD_PUBLIC_URL": "https://sb.example/"}
    base, process = start_switchboard(env, ROOT, tmp_path / "serve.log")
    try:
        from tests.test_processes import wait_ready
        wait_ready(base)
        answered = run(env, "chat", "--tenant", "hr", "--message", "How long is parental leave?")
        assert answered.returncode == 0, answered.stdout + answered.stderr
        link = next(word for word in answered.stdout.split()
                    if word.startswith("https://sb.example/sources/v1/hr/"))
        with urllib.request.urlopen(base + link.removeprefix("https://sb.example"),
                                    timeout=10) as page:
            assert page.status == 200 and b'<mark id="cited">' in page.read()
    finally:
        process.terminate()
        process.communicate(timeout=30)
