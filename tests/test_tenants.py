"""Tenant files: validation with precise problems, resolution, reload without restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.messages import Binding
from core.tenants.loader import load_directory, load_tenant_file
from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry, UnknownTenant

ROOT = Path(__file__).resolve().parent.parent

ACME = """
id = "acme"
name = "Acme Corp"
[slack]
team_ids = ["T0ACME"]
bot_token_env = "ACME_SLACK_BOT_TOKEN"
[discord]
guild_ids = ["222222222222222222"]
[widget]
public_key = "pk_acme_3f9c"
allowed_origins = ["https://acme.example"]
"""
GLOBEX = """
id = "globex"
name = "Globex"
[slack]
team_ids = ["T0GLOBEX"]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_contract_example_and_demo_tenant_are_valid(tmp_path: Path) -> None:
    assert isinstance(load_tenant_file(write(tmp_path, "acme", ACME)), TenantConfig)
    demo = load_tenant_file(ROOT / "tenants" / "demo.toml")
    assert isinstance(demo, TenantConfig) and demo.id == "demo"


def test_problems_name_file_field_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "acme", ACME + '\n[llm]\nmonthly_token_budget = -5\n'
                 '[limits]\nuser_per_minut = 3\n')
    problems = load_tenant_file(path)
    assert isinstance(problems, list)
    rendered = sorted(str(p) for p in problems)
    assert rendered == sorted([
        f"{path}: limits.user_per_minut: is not a known setting — did you mean "
        "`user_per_minute`?",
        f"{path}: llm.monthly_token_budget: must be at least 0",
    ])


def test_a_value_of_the_wrong_shape_is_told_the_right_one(tmp_path: Path) -> None:
    typo = write(tmp_path, "acme", ACME.replace("[widget]", '[widget]\naccent_colour = "red"'))
    (tmp_path / "other").mkdir()
    shape = write(tmp_path / "other", "acme",
                  'id = "acme"\nname = "Acme"\n[widget]\npublic_key = "pk_x"\n')
    said = []
    for file in (typo, shape):
        problems = load_tenant_file(file)
        assert isinstance(problems, list)
        said.append(" ".join(str(p) for p in problems))
    assert "widget.accent_colour: is not a known setting — did you mean `accent_color`?" \
        in said[0]
    assert "widget.public_key: 'pk_x' must be empty or pk_ followed by 4 to 64 letters" \
        in said[1]
    assert not any("Extra inputs" in s or "should match pattern" in s for s in said)


def test_a_secret_pasted_into_an_env_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "acme", ACME.replace('"ACME_SLACK_BOT_TOKEN"', '"xoxb-123-abc"'))
    problems = load_tenant_file(path)
    assert isinstance(problems, list)
    assert problems[0].field == "slack.bot_token_env"
    assert "never the secret itself" in problems[0].reason


def test_id_must_match_file_name_and_toml_errors_have_positions(tmp_path: Path) -> None:
    wrong = load_tenant_file(write(tmp_path, "other", ACME))
    assert isinstance(wrong, list) and wrong[0].field == "id"
    broken = load_tenant_file(write(tmp_path, "broken", 'id = "broken"\nname = \n'))
    assert isinstance(broken, list) and "line 2" in broken[0].reason


def test_registry_resolves_every_binding(tmp_path: Path) -> None:
    write(tmp_path, "acme", ACME)
    write(tmp_path, "globex", GLOBEX)
    registry = TenantRegistry(tmp_path)
    registry.reload()
    assert registry.resolve(Binding("slack", "T0ACME")).id == "acme"
    assert registry.resolve(Binding("slack", "T0GLOBEX")).id == "globex"
    assert registry.resolve(Binding("discord", "222222222222222222")).id == "acme"
    assert registry.resolve(Binding("widget", "pk_acme_3f9c")).id == "acme"
    # A terminal's tenant is decided by its command line (``tenant_id``), not by a
    # binding: there is no "the binding is the tenant id" shortcut.
    for unknown in (Binding("slack", "T0NOBODY"), Binding("discord", "T0ACME"),
                    Binding("terminal", "globex"), Binding("memory", "acme")):
        with pytest.raises(UnknownTenant):
            registry.resolve(unknown)


def test_a_binding_claimed_twice_routes_to_neither(tmp_path: Path) -> None:
    write(tmp_path, "acme", ACME)
    write(tmp_path, "globex", GLOBEX.replace("T0GLOBEX", "T0ACME"))
    result = load_directory(tmp_path)
    assert {p.field for p in result.problems} == {"slack.team_ids"}
    registry = TenantRegistry(tmp_path)
    registry.reload()
    with pytest.raises(UnknownTenant):
        registry.resolve(Binding("slack", "T0ACME"))
    assert registry.resolve(Binding("widget", "pk_acme_3f9c")).id == "acme"


def test_malformed_file_is_reported_and_others_keep_working(tmp_path: Path) -> None:
    write(tmp_path, "acme", ACME)
    write(tmp_path, "globex", GLOBEX)
    registry = TenantRegistry(tmp_path)
    registry.reload()
    write(tmp_path, "globex", GLOBEX + "\n[limits]\nuser_per_minute = 'lots'\n")
    write(tmp_path, "initech", 'id = "initech"\n')
    report = registry.reload()
    assert {(Path(p.file).stem, p.field) for p in report.problems} == {
        ("globex", "limits.user_per_minute"), ("initech", "name")}
    assert registry.resolve(Binding("slack", "T0ACME")).id == "acme"
    assert registry.resolve(Binding("slack", "T0GLOBEX")).id == "globex"  # last good kept
    assert "initech" not in registry.tenant_ids()


async def test_registry_reloads_changed_files_without_restart(tmp_path: Path) -> None:
    write(tmp_path, "acme", ACME)
    registry = TenantRegistry(tmp_path)
    registry.reload()
    watcher = asyncio.create_task(registry.watch(interval_s=0.05))
    try:
        write(tmp_path, "globex", GLOBEX)
        write(tmp_path, "acme", ACME.replace("Acme Corp", "Acme Renamed"))
        for _ in range(100):
            if "globex" in registry.tenant_ids() and registry.get("acme").name != "Acme Corp":
                break
            await asyncio.sleep(0.05)
        assert registry.resolve(Binding("slack", "T0GLOBEX")).id == "globex"
        assert registry.get("acme").name == "Acme Renamed"
        (tmp_path / "globex.toml").unlink()
        for _ in range(100):
            if "globex" not in registry.tenant_ids():
                break
            await asyncio.sleep(0.05)
        assert registry.tenant_ids() == ["acme"]
    finally:
        watcher.cancel()


def test_exported_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "tenant.schema.json").read_text())
    assert committed == TenantConfig.model_json_schema(), (
        "docs/tenant.schema.json is stale: run `switchboard tenants schema > "
        "docs/tenant.schema.json`")


def test_tenants_check_cli_exit_codes(tmp_path: Path) -> None:
    write(tmp_path, "acme", ACME)
    env = {"SWITCHBOARD_TENANTS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "bots", "tenants", "check"], env=env,
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 tenant file(s) valid (acme), 0 problem(s)." in ok.stdout
    write(tmp_path, "globex", GLOBEX + "\n[knowledge]\ntop_k = 0\n")
    bad = subprocess.run([sys.executable, "-m", "bots", "tenants", "check"], env=env,
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1
    assert f"{tmp_path / 'globex.toml'}: knowledge.top_k: must be at least 1" in bad.stdout


def test_tenants_check_reports_unknown_commands_and_missing_sources(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tmp_path / "kb").mkdir()
    write(tenants, "acme", 'id = "acme"\nname = "Acme"\n[commands]\n'
                           'enabled = ["help", "fogret"]\n[knowledge]\n'
                           'sources = [{ path = "kb/" }, { path = "handbook/" }]\n')
    done = subprocess.run([sys.executable, "-m", "bots", "tenants", "check"],
                          env={"SWITCHBOARD_TENANTS_DIR": str(tenants), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert "commands.enabled: 'fogret' is not a command — did you mean `forget`?" in done.stdout
    assert "knowledge.sources.1.path: 'handbook/': no such file or folder" in done.stdout
    assert "sources.0" not in done.stdout

