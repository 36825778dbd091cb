"""``switchboard serve``: the aiohttp web process."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from bots.settings import Settings
from bots.web import build_app

log = logging.getLogger("switchboard.web")


def run_serve(settings: Settings, host: str, port: int) -> int:
    app = build_app(settings)
    log.info("serving on http://%s:%d", host, port)
    # A worker of ``serve --workers N`` shares the port with its siblings.
    reuse = os.environ.get("SWITCHBOARD_REUSE_PORT") == "1"
    if not reuse:
        print(f"Switchboard is serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=10, reuse_port=reuse or None)
    return 0
