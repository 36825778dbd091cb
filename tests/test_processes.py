"""The real processes, as a user starts them: `switchboard chat` and `switchboard serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, start_switchboard

ROOT = Path(__file__).resolve().parent.parent


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "REDIS_URL", "QDRANT_URL", "OPENAI_API_KEY")}
    env.update(SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_TENANTS_DIR=str(ROOT / "tenants"),
               **extra)
    return env


def chat(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bots", "chat", "--tenant", "demo", *args],
                          env=clean_env(data_dir), capture_output=True, text=True, cwd=ROOT,
                          timeout=90)


def test_chat_help_answers_on_embedded_defaults(tmp_path: Path) -> None:
    result = chat(tmp_path, "--message", "/help")
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout and "/forget" in result.stdout
    assert not (tmp_path / "mongo" / "server.json").exists()  # embedded server stopped


def test_conversations_persist_across_restarts(tmp_path: Path) -> None:
    first = chat(tmp_path, "--message", "What is Switchboard?")
    assert first.returncode == 0, first.stderr
    assert "multi-tenant conversation engine" in first.stdout  # the demo ingested docs/
    assert "[1] What is Switchboard? — docs/overview.md" in first.stdout
    stats = chat(tmp_path, "--message", "/stats")
    assert "turns: 1 in 1 threads" in stats.stdout, stats.stdout + stats.stderr


def test_chat_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bots", "chat", "--tenant", "nobody",
                             "--message", "hi"], env=clean_env(tmp_path), capture_output=True,
                            text=True, cwd=ROOT, timeout=90)
    assert result.returncode == 2 and "No tenant 'nobody'" in result.stdout
    # a deep tenants folder makes the message longer than a terminal line: it stays one line
    deep = tmp_path / ("a-long-folder-name-" * 4) / "tenants"
    shutil.copytree(ROOT / "tenants", deep)
    env = clean_env(tmp_path) | {"SWITCHBOARD_TENANTS_DIR": str(deep)}
    typo = subprocess.run([sys.executable, "-m", "bots", "ingest", "--tenant", "dmeo", "docs/"],
                          env=env, capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert typo.returncode == 2 and "did you mean `demo`?" in typo.stdout, typo.stdout
    assert typo.stdout.count("\n") == 1, typo.stdout
    assert not (tmp_path / "mongo").exists()  # refused before anything opened


def test_interactive_chat_reads_lines_until_eof(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bots", "chat", "--tenant", "demo"],
                            input="/whoami\nWhat is Switchboard?\n", env=clean_env(tmp_path),
                            capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "Tenant: **Switchboard Demo**" in result.stdout
    assert "no language model is configured" in result.stdout


def start_serve(data_dir: Path, **env: str) -> tuple[str, subprocess.Popen[str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return start_switchboard(clean_env(data_dir, LOG_FORMAT="json", **env), ROOT,
                             data_dir / "serve.log")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    base, process = start_serve(tmp_path)
    yield base, tmp_path, process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_readyz_reports_a_failing_dependency(tmp_path: Path) -> None:
    base, process = start_serve(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        status, body = get(f"{base}/readyz")
        checks = json.loads(body)["checks"]
        assert status == 503
        assert checks["redis"]["status"] == "failing" and "error" in checks["redis"]
        assert checks["mongodb"]["status"] == "ok"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_ready(base: str, timeout_s: float = 180) -> tuple[int, str]:
    """/readyz until it is 200 (the demo tenant's first documents take a while)."""
    deadline = time.monotonic() + timeout_s
    status, body = get(f"{base}/readyz")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, body = get(f"{base}/readyz")
    return status, body


def test_serve_answers_health_readiness_metrics(
        served: tuple[str, Path, subprocess.Popen[str]]) -> None:
    base, data_dir, process = served
    assert get(f"{base}/healthz") == (200, '{"status": "ok"}')
    status, body = get(f"{base}/readyz")
    first = json.loads(body)
    if status == 503:  # the demo tenant's first documents are still going in
        assert first["status"] == "loading_knowledge", body
        assert "documents so far" in first["loading_knowledge"]["demo"]
    status, body = wait_ready(base)
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ready", body
    assert set(ready["checks"]) == {"mongodb", "redis", "llm", "knowledge"}
    assert "Qdrant local mode" in ready["checks"]["knowledge"]["backend"]
    assert "nx-27017" in ready["checks"]["mongodb"]["backend"]
    status, page = get(f"{base}/")
    assert status == 200 and "Switchboard is running" in page and "demo" in page
    assert f'src="{base}/widget.js" data-key="pk_demo_public"' in page.replace("&quot;", '"')
    assert "How do rate limits work?" in page and "/api/v1/openapi.json" in page
    assert get(f"{base}/favicon.ico")[0] == 204
    status, metrics = get(f"{base}/metrics")
    assert status == 200 and "switchboard_messages_total" in metrics
    assert (data_dir / "mongo" / "server.json").exists()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    stderr = (data_dir / "serve.log").read_text()
    assert process.returncode == 0
    assert not (data_dir / "mongo" / "server.json").exists()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any("in-process" in line["msg"] for line in lines)
    assert all({"ts", "level", "msg", "request_id", "tenant", "channel"} <= set(line)
               for line in lines)


def test_ingest_command_reports_each_source(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.md").write_text("# FAQ\n\nThe demo answers questions about Switchboard.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    run = [sys.executable, "-m", "bots", "ingest", "--tenant", "demo", str(folder)]
    first = subprocess.run(run, env=clean_env(tmp_path / "var"), capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
    assert first.returncode == 1, first.stderr  # one file failed
    assert "broken.pdf: not a readable PDF" in " ".join(first.stdout.split())
    (folder / "broken.pdf").unlink()
    second = subprocess.run(run, env=clean_env(tmp_path / "var"), capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert second.returncode == 0
    assert "│     0 │         1 │        0 │       0 │      0 │" in second.stdout


def test_operational_details_need_the_operator_token(tmp_path: Path) -> None:
    base, process = start_serve(tmp_path, SWITCHBOARD_OPERATOR_TOKEN="op-token-for-tests")
    try:
        status, body = get(f"{base}/readyz")
        assert json.loads(body) in ({"status": "ready"}, {"status": "loading_knowledge"})
        status, body = wait_ready(base)
        assert status == 200 and json.loads(body) == {"status": "ready"}
        assert get(f"{base}/metrics")[0] == 401
        request = urllib.request.Request(f"{base}/metrics", headers={
            "Authorization": "Bearer op-token-for-tests"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and b"switchboard_messages_total" in response.read()
        request = urllib.request.Request(f"{base}/readyz", headers={
            "Authorization": "Bearer op-token-for-tests"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "mongodb" in json.loads(response.read())["checks"]
        page = get(f"{base}/")[1]
        assert "Tenants loaded" not in page and "demo," not in page
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_busy_port_is_one_clear_line_and_the_way_out(tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "bots", "serve", "--port", str(port)],
                                env=clean_env(tmp_path), capture_output=True, text=True,
                                cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stdout
    assert f"--port {port + 1}" in result.stdout and "PORT=" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "serving" not in result.stdout
    assert not (tmp_path / "mongo").exists()  # refused before anything was started


def test_the_port_comes_from_PORT_and_a_bad_one_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bots", "serve"],
                            env=clean_env(tmp_path, PORT="http"), capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "'http' is not a port number" in result.stderr
    assert "Traceback" not in result.stderr
