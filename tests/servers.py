"""Real servers for tests, each on an ephemeral loopback port, stopped by PID at the end."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str,
                   timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s}s")


class ServerProcess:
    """A server the tests own, so they can also kill, pause and restart it (on the same
    port, so clients reconnect to it) to prove what happens to messages meanwhile."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, workdir: Path,
                 argv: list[str] | None = None, port: int = 0, what: str = "") -> None:
        self.process = process
        self.url = url
        self.workdir = workdir
        self.argv = argv or []
        self.port = port
        self.what = what

    def kill(self) -> None:
        """SIGKILL: the server is gone, connections are refused."""
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server hangs; connections open but nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start the same command again on the same port (after ``kill``)."""
        for attempt in range(50):
            self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            try:
                _wait_for_port(self.port, self.process, self.what, timeout_s=5)
                return
            except RuntimeError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis() -> ServerProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run scripts/test (it installs "
                           "it) or `apt-get install -y redis-server`")
    workdir = Path(tempfile.mkdtemp(prefix="sb-redis-"))
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
            "no", "--dir", str(workdir), "--daemonize", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_port(port, process, "redis-server")
    return ServerProcess(process, f"redis://127.0.0.1:{port}/0", workdir, argv, port,
                         "redis-server")


def start_mongo_wire() -> ServerProcess:
    workdir = Path(tempfile.mkdtemp(prefix="sb-nx-"))
    port = free_port()
    argv = [sys.executable, "-m", "nx_27017.nx_27017", "--db", "memory", "-p", str(port),
            "--pid-file", str(workdir / "nx.pid"), "--log-file", str(workdir / "nx.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_port(port, process, "nx-27017")
    return ServerProcess(process, f"mongodb://127.0.0.1:{port}/?directConnection=true",
                         workdir, argv, port, "nx-27017")


def start_switchboard(env: dict[str, str], cwd: Path, log: Path, timeout_s: float = 60.0
                      ) -> tuple[str, subprocess.Popen[str]]:
    """`switchboard serve` on an ephemeral port, logging to ``log`` (never a pipe that
    could fill up and stall the server); returns its base URL once /healthz answers."""
    import urllib.request

    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bots", "serve", "--port", str(port)], env=env, cwd=cwd,
            text=True, stdout=subprocess.DEVNULL, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            return base, process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)
