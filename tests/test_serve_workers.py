"""``switchboard serve --workers N``: refused on the embedded defaults; with shared
stores, N processes answer on one port (``SO_REUSEPORT``), and one that dies is
restarted by the supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_several_workers_are_refused_on_the_embedded_defaults(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bots", "serve", "--workers", "2", "--port", str(free_port())],
        env={"PATH": "/usr/bin:/bin", "SWITCHBOARD_DATA_DIR": str(tmp_path),
             "REDIS_URL": "redis://127.0.0.1:6379"},
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MONGODB_URI, QDRANT_URL are not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_several_workers_on_a_busy_port_are_refused_in_one_line(tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bots", "serve", "--workers", "2", "--port", str(port)],
            env={"PATH": "/usr/bin:/bin", "SWITCHBOARD_DATA_DIR": str(tmp_path),
                 "REDIS_URL": "redis://127.0.0.1:1", "MONGODB_URI": "mongodb://127.0.0.1:1",
                 "QDRANT_URL": "http://127.0.0.1:1"},
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr and "serving" not in done.stdout


def _health(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return dict(json.loads(response.read()))


def test_two_workers_share_one_port_and_a_dead_one_is_restarted(
        tmp_path: Path, redis_server: ServerProcess, mongo_uri: str) -> None:
    port = free_port()
    split = urlsplit(mongo_uri)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.toml").write_text('id = "acme"\nname = "Acme"\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
           "SWITCHBOARD_TENANTS_DIR": str(tenants), "HF_HUB_OFFLINE": "1",
           "REDIS_URL": f"{redis_server.url}/5",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/w_{uuid.uuid4().hex[:8]}",
           # Without a Qdrant server here, an unreachable one: the workers start and
           # answer, and /readyz says the knowledge store is down.
           "QDRANT_URL": os.environ.get("QDRANT_URL", "http://127.0.0.1:9")}
    with (tmp_path / "serve.log").open("w") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "bots", "serve", "--workers", "2", "--port", str(port)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                worker = _health(port).get("worker", "")
                seen[worker] = seen.get(worker, 0) + 1
            except OSError:
                time.sleep(0.2)
        assert set(seen) == {"1", "2"}, (tmp_path / "serve.log").read_text()[-3000:]
        workers = _children(supervisor.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = _children(supervisor.pid)
            if len(alive) == 2 and workers[0] not in alive:
                break
            time.sleep(0.2)
        assert len(_children(supervisor.pid)) == 2, "the dead worker was not restarted"
        assert "restarting" in (tmp_path / "serve.log").read_text()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
    assert _children(supervisor.pid) == []


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid``, from /proc (``ps`` may not be installed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)
