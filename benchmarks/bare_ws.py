"""A bare aiohttp WebSocket server: the baseline for widget.py.

It answers a hello with a welcome and every message with one event, at once, and does
nothing else: the floor for a WebSocket round trip on this machine.

    python -m benchmarks.bare_ws PORT
"""

from __future__ import annotations

import json
import sys

from aiohttp import WSMsgType, web


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    seq = 0
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        frame = json.loads(message.data)
        seq += 1
        if frame["type"] == "hello":
            await ws.send_json({"type": "welcome", "seq": 0, "token": "", "history": []})
        else:
            await ws.send_json({"type": "delta", "client_id": frame.get("client_id", ""),
                                "text": "echo", "seq": seq})
            await ws.send_json({"type": "reply", "client_id": frame.get("client_id", ""),
                                "text": "echo", "seq": seq + 1})
            seq += 1
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/widget/v1/ws", socket)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
