"""A bare slack-bolt app that only acknowledges events: the baseline for slack_ack.py.

    python -m benchmarks.bare_bolt PORT SIGNING_SECRET
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2]

    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                               bot_token="xoxb-bare", bot_user_id="U0BOT", bot_id="B0BOT")

    bolt = AsyncApp(signing_secret=secret, authorize=authorize)

    async def on_mention(ack: Any) -> None:
        await ack()

    bolt.event("app_mention")(on_mention)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(
            await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", lambda r: web.json_response({"status": "ok"}))  # type: ignore[arg-type,return-value]
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
