"""``switchboard serve --workers N``: N web processes sharing one port.

Each worker is a full ``serve`` process bound with ``SO_REUSEPORT``, so the kernel
spreads new connections over them; nothing is sticky. That needs every piece of state
shared: conversation streams, dedupe, limits and locks in Redis, sessions in a MongoDB
server, knowledge in a Qdrant server. On the embedded defaults (in-process state, the
embedded MongoDB-wire server, Qdrant's local files) the command refuses and says what
to set. The supervisor creates the widget's signing key once (every worker must sign
and check tokens alike), gives each worker its number (its own intake journal,
``web-<n>.jsonl``), restarts a worker that dies (with back-off), and stops them all on
SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from adapters.widget.identity import load_key
from bots.serve import PortUnavailable, bind
from bots.settings import Settings

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def missing_shared_stores(settings: Settings) -> list[str]:
    """The variables several workers need and the settings lack."""
    needs = {"REDIS_URL": settings.redis_url, "MONGODB_URI": settings.mongodb_uri,
             "QDRANT_URL": settings.qdrant_url}
    return [name for name, value in needs.items() if not value]


def run_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    missing = missing_shared_stores(settings)
    if missing:
        print(f"switchboard serve --workers {workers} needs shared stores, and "
              f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.\n"
              "On the embedded defaults every process keeps its own state (limits, "
              "locks, conversation streams, the local Qdrant files), so several workers "
              "would disagree. Set REDIS_URL, MONGODB_URI and QDRANT_URL (see "
              "docs/operations.md), or run one worker.", file=sys.stderr)
        return 2
    try:
        bind(host, port, reuse_port=True).close()  # busy: say so before starting anyone
    except PortUnavailable as exc:
        print(f"switchboard serve: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if not env.get("SWITCHBOARD_WIDGET_KEY"):
        env["SWITCHBOARD_WIDGET_KEY"] = load_key("", settings.data_dir).hex()
    children: dict[int, subprocess.Popen[bytes]] = {}
    restarts = dict.fromkeys(range(1, workers + 1), 0)
    stopping = False

    def start(number: int) -> None:
        children[number] = subprocess.Popen(
            [sys.executable, "-m", "bots", "serve", "--host", host, "--port", str(port)],
            env={**env, "SWITCHBOARD_WORKER": str(number), "SWITCHBOARD_REUSE_PORT": "1"})

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in restarts:
        start(number)
    print(f"Switchboard is serving on http://{host}:{port} with {workers} workers "
          "(Ctrl-C to stop)", flush=True)
    while not stopping:
        time.sleep(0.5)
        for number, child in list(children.items()):
            code = child.poll()
            if code is None or stopping:
                continue
            if code == 2:  # refused to start (a usage error, the port): restarting won't help
                print(f"worker {number} refused to start; stopping", file=sys.stderr,
                      flush=True)
                stop(signal.SIGTERM, None)
                break
            pause = RESTART_BACKOFF_S[min(restarts[number], len(RESTART_BACKOFF_S) - 1)]
            print(f"worker {number} exited with {code}; restarting in {pause:.0f} s",
                  file=sys.stderr, flush=True)
            restarts[number] += 1
            time.sleep(pause)
            if not stopping:
                start(number)
    codes = []
    for child in children.values():
        try:
            codes.append(child.wait(timeout=20))
        except subprocess.TimeoutExpired:
            child.kill()
    return 2 if 2 in codes else 0
