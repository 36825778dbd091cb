"""``switchboard serve``: the aiohttp web process.

The port is bound before anything else starts, so a busy port is one clear line at
once rather than a traceback after the services have loaded; "serving" is printed only
once the server accepts connections.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

from aiohttp import web

from bots.local_control import local_url
from bots.settings import Settings
from bots.web import build_app

log = logging.getLogger("switchboard.web")


class PortUnavailable(Exception):
    """The address cannot be bound; the message says what to do instead."""


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise PortUnavailable(f"Cannot listen on {host!r}: {exc.strerror}. "
                              "Use --host 127.0.0.1 or --host 0.0.0.0.") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"Port {port} on {host} is already in use (is Switchboard already "
                f"running?). Pick another: switchboard serve --port {port + 1} "
                f"(or PORT={port + 1}).") from None
        if exc.errno == errno.EACCES:
            raise PortUnavailable(f"Port {port} needs privileges this user does not have. "
                                  "Use a port above 1023, e.g. --port 8000.") from None
        raise PortUnavailable(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    sock.setblocking(False)
    return sock


def run_serve(settings: Settings, host: str, port: int, *, scheduler: bool = True,
              discord: bool = True) -> int:
    """On the embedded defaults (no ``QDRANT_URL``) one process does everything: it also
    runs the scheduler's jobs and the Discord gateway (when a token is set), since only
    it may write the local index. With shared servers those are processes of their own
    (``switchboard scheduler``, ``switchboard discord``)."""
    # A worker of ``serve --workers N`` shares the port with its siblings.
    reuse = os.environ.get("SWITCHBOARD_REUSE_PORT") == "1"
    alone = not reuse and not settings.qdrant_url
    in_process = frozenset(name for name, wanted in (("scheduler", scheduler),
                                                     ("discord", discord))
                           if wanted and alone)
    try:
        sock = bind(host, port, reuse_port=reuse)
    except PortUnavailable as exc:
        print(f"switchboard serve: {exc}", flush=True)
        return 2
    if not reuse:  # the stores and the embedder take a few seconds to open
        print(f"Starting Switchboard on http://{host}:{port} …", flush=True)
    app = build_app(settings, local="" if reuse else local_url(host, port),
                    in_process=in_process)

    def ready(_: str) -> None:
        log.info("serving on http://%s:%d", host, port)
        if not reuse:
            print(f"Switchboard is serving on http://{host}:{port} (Ctrl-C to stop)",
                  flush=True)

    web.run_app(app, sock=sock, print=ready, access_log=None, handle_signals=True,
                shutdown_timeout=10)
    return 0
