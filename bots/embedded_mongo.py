"""The embedded MongoDB-wire server (nx-27017) used when MONGODB_URI is unset.

It runs as a child process on a loopback port with its data under
``$SWITCHBOARD_DATA_DIR/mongo``, so data persists across restarts. A second Switchboard
process on the same data directory attaches to the running server instead of opening
the same files twice; only the process that started the server stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from pymongo import AsyncMongoClient

log = logging.getLogger("switchboard.mongo")

STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _answers(uri: str, timeout_ms: int = 500) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        await client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        await client.close()


class EmbeddedMongo:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._state_file = directory / "server.json"
        self._process: asyncio.subprocess.Process | None = None
        self.uri = ""

    async def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        running = await self._running_server()
        if running:
            self.uri = running
            log.info("attached to the embedded MongoDB-wire server already running at %s",
                      running)
            return running
        port = free_port()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nx_27017.nx_27017", "--db",
            str(self.directory / "switchboard.db"), "--host", "127.0.0.1", "-p", str(port),
            "--pid-file", str(self.directory / "nx.pid"),
            "--log-file", str(self.directory / "server.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        self.uri = f"mongodb://127.0.0.1:{port}/switchboard?directConnection=true"
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not await _answers(self.uri):
            if self._process.returncode is not None:
                raise RuntimeError(f"the embedded MongoDB-wire server exited "
                                   f"(code {self._process.returncode}); see "
                                   f"{self.directory / 'server.log'}")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError("the embedded MongoDB-wire server did not start in "
                                   f"{STARTUP_TIMEOUT_S:.0f}s")
            await asyncio.sleep(0.05)
        self._state_file.write_text(json.dumps({"pid": self._process.pid, "port": port,
                                                "uri": self.uri}))
        log.info("embedded MongoDB-wire server (nx-27017) started at %s, data in %s",
                 self.uri, self.directory)
        return self.uri

    async def _running_server(self) -> str:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return ""
        if not _alive(int(state.get("pid", 0))):
            return ""
        uri = str(state.get("uri", ""))
        return uri if uri and await _answers(uri, 1000) else ""

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(OSError):
            self._state_file.unlink()
        log.info("embedded MongoDB-wire server stopped")
