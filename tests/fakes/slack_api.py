"""A local Slack Web API for the real ``slack_sdk`` client: records every call.

Answers ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and ``auth.test``
as Slack does (``{"ok": true, ...}`` with a fresh ``ts``), and can inject a 429 with
``Retry-After`` or an ``{"ok": false, "error": ...}`` for the next call of a method.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(slots=True)
class Call:
    method: str
    token: str
    payload: dict[str, Any]


ALL_SCOPES = ("app_mentions:read,channels:history,chat:write,commands,files:read,"
              "groups:history,im:history,users:read")


@dataclass(slots=True)
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    admins: set[str] = field(default_factory=set)
    rate_limited: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    url: str = ""
    oauth_client: tuple[str, str] = ("", "")
    oauth_grants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """code → the ``oauth.v2.access`` answer for it (single use, like Slack's)."""
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    """file id → (name, mimetype, content), served to the bearer of any token."""
    downloads: list[tuple[str, str]] = field(default_factory=list)
    fail_after_posting: int = 0
    """The next N ``chat.postMessage`` calls post the message, then answer HTTP 500 (as
    when Slack's edge fails after the write): a client that retries blindly posts twice."""
    threads: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """(channel, thread ts) → the messages posted in it, served by conversations.replies."""
    scopes: dict[str, str] = field(default_factory=dict)
    """token → the scopes ``auth.test`` reports in ``x-oauth-scopes`` (default: all the
    manifest asks for)."""
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.text()
        if request.content_type == "application/json":
            payload: dict[str, Any] = json.loads(raw or "{}")
        else:
            payload = {**dict(request.query), **dict(parse_qsl(raw))}
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append(Call(method, token or str(payload.get("token", "")), payload))
        if method in self.rate_limited:
            retry_after = self.rate_limited.pop(method)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(int(retry_after))})
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors.pop(method)})
        if method == "users.info":
            user = str(payload.get("user", ""))
            return web.json_response({"ok": True, "user": {
                "id": user, "is_admin": user in self.admins, "is_owner": False}})
        if method == "oauth.v2.access":
            basic = request.headers.get("Authorization", "").removeprefix("Basic ")
            if base64.b64decode(basic or "Og==").decode() != ":".join(self.oauth_client):
                return web.json_response({"ok": False, "error": "invalid_client_id"})
            grant = self.oauth_grants.pop(str(payload.get("code", "")), None)
            if grant is None:
                return web.json_response({"ok": False, "error": "invalid_code"})
            return web.json_response({"ok": True, "token_type": "bot", **grant})
        if method == "files.info":
            file_id = str(payload.get("file", ""))
            if file_id not in self.files:
                return web.json_response({"ok": False, "error": "file_not_found"})
            return web.json_response({"ok": True, "file": self.file_object(file_id)})
        if method == "auth.test":
            granted = self.scopes.get(token, ALL_SCOPES)
            return web.json_response({"ok": True, "user_id": "U0BOT", "team_id": "T0ACME",
                                      "bot_id": "B0BOT"}, headers={"x-oauth-scopes": granted})
        if method == "conversations.replies":
            return self._replies(payload)
        ts = f"1763769999.{next(self._ts):06d}"
        if method == "chat.postMessage":
            self._store(payload, ts)
            if self.fail_after_posting:
                self.fail_after_posting -= 1
                return web.Response(status=500, text="internal error")
        return web.json_response({"ok": True, "channel": payload.get("channel"),
                                  "ts": payload.get("ts", ts), "message_ts": ts})


    def _store(self, payload: dict[str, Any], ts: str) -> None:
        metadata = payload.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        thread = str(payload.get("thread_ts") or ts)
        self.threads.setdefault((str(payload.get("channel")), thread), []).append(
            {"type": "message", "ts": ts, "thread_ts": thread, "bot_id": "B0BOT",
             "text": payload.get("text", ""), **({"metadata": metadata} if metadata else {})})

    def _replies(self, payload: dict[str, Any]) -> web.Response:
        """Like Slack: metadata only with ``include_all_metadata``, newest last."""
        key = (str(payload.get("channel")), str(payload.get("ts")))
        if key not in self.threads:
            return web.json_response({"ok": False, "error": "thread_not_found"})
        with_metadata = str(payload.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
                    for m in self.threads[key]]
        return web.json_response({"ok": True, "messages": messages, "has_more": False})

    def file_object(self, file_id: str) -> dict[str, Any]:
        name, mimetype, content = self.files[file_id]
        base = self.url.removesuffix("/api/")
        return {"id": file_id, "name": name, "mimetype": mimetype, "size": len(content),
                "url_private": f"{base}/files-pri/{file_id}/{name}",
                "url_private_download": f"{base}/files-pri/{file_id}/download/{name}"}

    async def download(self, request: web.Request) -> web.Response:
        """Private file downloads need the bot token, as on files.slack.com."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        file_id = request.match_info["id"]
        self.downloads.append((file_id, token))
        if not token.startswith("xoxb-") or file_id not in self.files:
            return web.Response(status=404)
        _, mimetype, content = self.files[file_id]
        return web.Response(body=content, content_type=mimetype)

    async def response_url(self, request: web.Request) -> web.Response:
        """Where slash-command follow-ups are POSTed (the command's ``response_url``)."""
        self.responses.append({"path": request.path, **(await request.json())})
        return web.Response(text="ok")


async def slow_document(request: web.Request) -> web.Response:
    """A document that takes seconds to serve: work that outlasts Slack's 3 s ack window."""
    await asyncio.sleep(float(request.query.get("seconds", "4")))
    return web.Response(text="# Slow handbook\n\nThe slow handbook explains patience.",
                        content_type="text/markdown")


async def start_fake_slack(fake: FakeSlack) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/api/{method}", fake.handle)
    app.router.add_get("/api/{method}", fake.handle)
    app.router.add_post("/responses/{id}", fake.response_url)
    app.router.add_get("/slow-doc", slow_document)
    app.router.add_get("/files-pri/{id}/{tail:.*}", fake.download)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/"  # type: ignore[union-attr]
    return runner
