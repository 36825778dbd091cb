"""``$SWITCHBOARD_DATA_DIR/serve.json``: where a running ``serve`` takes this machine's
terminal commands (``adapters/terminal/remote.py``), and the token they must show.

Written by a single ``serve`` listening on loopback or on every address, readable by its
user only, removed when it stops. A file left by a process that died is ignored (its pid
is gone) and replaced by the next ``serve``.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ValidationError

FILE = "serve.json"


class Control(BaseModel):
    url: str
    pid: int
    token: str


def local_url(host: str, port: int) -> str:
    """The loopback address that reaches a server listening on ``host``, or "" when the
    terminal cannot reach it from loopback (a server bound to one other address)."""
    if host in ("127.0.0.1", "localhost", "0.0.0.0", ""):
        return f"http://127.0.0.1:{port}"
    if host in ("::1", "::"):
        return f"http://[::1]:{port}"
    return ""


def write(data_dir: Path, url: str) -> Control:
    control = Control(url=url, pid=os.getpid(), token=secrets.token_urlsafe(32))
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = data_dir / f".{FILE}.{os.getpid()}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(control.model_dump_json())
    temporary.replace(data_dir / FILE)
    return control


def remove(data_dir: Path, control: Control) -> None:
    """Remove the file if it is still this process's (a newer serve may have replaced it)."""
    if running(data_dir) == control:
        (data_dir / FILE).unlink(missing_ok=True)


def running(data_dir: Path) -> Control | None:
    try:
        control = Control.model_validate(json.loads((data_dir / FILE).read_text()))
    except (OSError, ValueError, ValidationError):
        return None
    try:
        os.kill(control.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's: its file would not have been readable
    return control
