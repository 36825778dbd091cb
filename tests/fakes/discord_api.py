"""A local Discord: the gateway (WebSocket) and the REST API that a real discord.py client
talks to. It speaks the documented wire format: HELLO, heartbeats, IDENTIFY → READY and
GUILD_CREATE, RESUME → replayed events and RESUMED; REST answers with the objects
discord.py parses, and records every call so tests can assert on what the bot did.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = "900000000000000001"
APP_ID = "900000000000000002"
MANAGE_GUILD = 1 << 5


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": name, "discriminator": "0", "global_name": name,
            "avatar": None, "bot": bot}


BOT_USER = user(BOT_ID, "Switchboard", bot=True)


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(slots=True)
class Call:
    method: str
    path: str
    body: dict[str, Any]


@dataclass(slots=True)
class Session:
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    shard: tuple[int, int] | None = None
    """(shard id, shard count) this connection identified with, if sharded."""


def shard_of(guild_id: str, count: int) -> int:
    """Discord's routing: a guild's events go to shard ``(guild_id >> 22) % count``."""
    return (int(guild_id) >> 22) % count


@dataclass(slots=True)
class FakeDiscord:
    guilds: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    rate_limited: dict[str, float] = field(default_factory=dict)
    """"METHOD /path-prefix" → seconds: the next matching call gets a 429 first."""
    replay_overlap: int = 0
    """On RESUME, also replay this many events the client already saw."""
    threads: dict[str, dict[str, Any]] = field(default_factory=dict)
    guild_commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """guild id → its registered application commands (PUT replaces, POST adds one)."""
    _background: set[asyncio.Future[None]] = field(default_factory=set)
    identifies: int = 0
    resumes: int = 0
    url: str = ""
    gateway_url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def snowflake(self) -> str:
        return str(950000000000000000 + next(self._ids))

    # -- the world -----------------------------------------------------------------------

    def add_guild(self, guild_id: str, channel_ids: list[str], *,
                  admin_role: str = "") -> None:
        roles = [{"id": guild_id, "name": "@everyone", "permissions": "0", "position": 0,
                  "color": 0, "hoist": False, "managed": False, "mentionable": False}]
        if admin_role:
            roles.append({"id": admin_role, "name": "Server managers",
                          "permissions": str(MANAGE_GUILD), "position": 1, "color": 0,
                          "hoist": False, "managed": False, "mentionable": False})
        self.guilds[guild_id] = {
            "id": guild_id, "name": f"Guild {guild_id[-4:]}", "owner_id": "1" * 18,
            "icon": None, "unavailable": False, "member_count": 3, "large": False,
            "features": [], "emojis": [], "stickers": [], "roles": roles,
            "channels": [{"id": c, "type": 0, "name": f"channel-{c[-4:]}", "position": i,
                          "guild_id": guild_id, "permission_overwrites": []}
                         for i, c in enumerate(channel_ids)],
            "threads": [], "members": [{"user": BOT_USER, "roles": [], "joined_at": now(),
                                        "deaf": False, "mute": False, "flags": 0}],
            "voice_states": [], "presences": [], "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0,
            "mfa_level": 0, "premium_tier": 0, "preferred_locale": "en-US",
            "system_channel_flags": 0, "nsfw_level": 0}

    def of(self, method: str, path_part: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and path_part in c.path]

    def message_event(self, guild_id: str, channel_id: str, author: dict[str, Any],
                      content: str, *, mention_bot: bool = False, roles: list[str] | None = None,
                      message_id: str = "") -> dict[str, Any]:
        return {"id": message_id or self.snowflake(), "channel_id": channel_id,
                "guild_id": guild_id, "author": author,
                "member": {"roles": roles or [], "joined_at": now(), "deaf": False,
                           "mute": False, "flags": 0},
                "content": content, "timestamp": now(), "edited_timestamp": None,
                "tts": False, "mention_everyone": False,
                "mentions": [BOT_USER] if mention_bot else [], "mention_roles": [],
                "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0}

    def interaction_event(self, guild_id: str, channel_id: str, author: dict[str, Any],
                          name: str, options: list[dict[str, Any]] | None = None,
                          roles: list[str] | None = None) -> dict[str, Any]:
        return {"id": self.snowflake(), "application_id": APP_ID, "type": 2,
                "token": f"itoken-{self.snowflake()}", "version": 1, "guild_id": guild_id,
                "channel_id": channel_id, "channel": {"id": channel_id, "type": 0,
                                                      "guild_id": guild_id},
                "data": {"id": self.snowflake(), "name": name, "type": 1,
                         "options": options or []},
                "member": {"user": author, "roles": roles or [], "joined_at": now(),
                           "deaf": False, "mute": False, "permissions": "0", "flags": 0},
                "app_permissions": "0", "locale": "en-US", "guild_locale": "en-US",
                "entitlements": [], "attachment_size_limit": 8388608}

    # -- gateway -------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event on the connection that serves its guild (by shard), else the
        newest connection."""
        session = self.sessions[-1]
        guild = data.get("guild_id")
        if guild:
            owners = [s for s in self.sessions if s.shard is not None
                      and shard_of(str(guild), s.shard[1]) == s.shard[0]]
            session = owners[-1] if owners else session
        payload = {"op": 0, "t": event, "s": len(session.events) + 1, "d": data}
        session.events.append(payload)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(payload))

    async def drop(self) -> None:
        """Close the live connection as Discord does before a resume (code 4000)."""
        session = self.sessions[-1]
        if session.ws is not None:
            await session.ws.close(code=4000, message=b"fake gateway drop")

    async def connected(self, count: int = 1, wait_s: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + wait_s
        while self.identifies + self.resumes < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the bot never connected to the fake gateway")
            await asyncio.sleep(0.05)

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            op = frame.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self._identify(ws, frame["d"].get("shard"))
            elif op == 6:
                await self._resume(ws, frame["d"])
        return ws

    async def _identify(self, ws: web.WebSocketResponse, shard: list[int] | None) -> None:
        if shard is not None and not 0 <= shard[0] < shard[1]:
            await ws.close(code=4010, message=b"Invalid shard")  # as Discord does
            return
        session = Session(session_id=f"session-{len(self.sessions) + 1}", ws=ws,
                          shard=(shard[0], shard[1]) if shard else None)
        self.sessions.append(session)
        served = [g for g in self.guilds.values()
                  if shard is None or shard_of(g["id"], shard[1]) == shard[0]]
        await self.dispatch("READY", {
            **({"shard": shard} if shard is not None else {}),
            "v": 10, "user": BOT_USER, "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url, "application": {"id": APP_ID, "flags": 0},
            "guilds": [{"id": g["id"], "unavailable": True} for g in served],
            "private_channels": [], "relationships": [], "presences": []})
        for guild in served:
            await self.dispatch("GUILD_CREATE", guild)
        self.identifies += 1

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = next(s for s in self.sessions if s.session_id == data["session_id"])
        session.ws = ws
        start = max(0, int(data.get("seq") or 0) - self.replay_overlap)
        for payload in session.events[start:]:
            await ws.send_str(json.dumps(payload))
        await self.dispatch("RESUMED", {})
        self.resumes += 1

    # -- REST ----------------------------------------------------------------------------

    async def rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body: dict[str, Any] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                parsed = json.loads(await request.read() or b"{}")
                # Bulk command upserts send a JSON array.
                body = {"__list__": parsed} if isinstance(parsed, list) else parsed
            elif request.content_type.startswith("multipart/"):
                reader = await request.multipart()
                async for part in reader:
                    if getattr(part, "name", "") == "payload_json":
                        body = json.loads(await part.text())  # type: ignore[union-attr]
        self.calls.append(Call(request.method, path, body))
        for key, seconds in list(self.rate_limited.items()):
            method, _, prefix = key.partition(" ")
            if request.method == method and path.startswith(prefix):
                del self.rate_limited[key]
                refusal = self._json({"message": "You are being rate limited.",
                                      "retry_after": seconds, "global": False}, 429)
                refusal.headers.update({
                    "Retry-After": str(seconds), "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(seconds),
                    "X-RateLimit-Bucket": "fake-bucket", "X-RateLimit-Scope": "user",
                    "Via": "1.1 google"})  # discord.py reads a 429 without Via as a ban
                return refusal
        return self._answer(request.method, path, body)

    def _json(self, data: Any, status: int = 200) -> web.Response:
        # discord.py wants exactly "application/json" (no charset).
        return web.Response(status=status, body=json.dumps(data).encode(),
                            headers={"Content-Type": "application/json"})

    def _message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        message = {"id": self.snowflake(), "channel_id": channel_id, "author": BOT_USER,
                   "content": body.get("content") or "", "timestamp": now(),
                   "edited_timestamp": None, "tts": False, "mention_everyone": False,
                   "mentions": [], "mention_roles": [], "attachments": [],
                   "embeds": body.get("embeds") or [], "components": body.get("components")
                   or [], "pinned": False, "type": 0, "flags": body.get("flags", 0)}
        self.messages[message["id"]] = message
        return message

    def _answer(self, method: str, path: str, body: dict[str, Any]) -> web.Response:
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            return self._json(BOT_USER)
        if path in ("/oauth2/applications/@me", "/applications/@me"):
            return self._json({"id": APP_ID, "name": "Switchboard", "description": "",
                               "icon": None, "bot_public": True,
                               "bot_require_code_grant": False, "owner": user("1" * 18, "owner"),
                               "verify_key": "00", "flags": 0, "team": None})
        if path in ("/gateway", "/gateway/bot"):
            return self._json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
        if parts[0] == "channels" and len(parts) >= 2:
            channel_id = parts[1]
            if parts[2:] == ["typing"]:
                return web.Response(status=204)
            if parts[2:] == ["messages"] and method == "POST":
                return self._json(self._message(channel_id, body))
            if len(parts) == 4 and parts[2] == "messages":
                stored = self.messages.get(parts[3])
                if stored is None:
                    return self._json({"message": "Unknown Message", "code": 10008}, 404)
                if method == "PATCH":
                    stored.update({k: v for k, v in body.items()
                                   if k in ("content", "embeds", "components")})
                    stored["edited_timestamp"] = now()
                    return self._json(stored)
                if method == "DELETE":
                    return web.Response(status=204)
            if len(parts) == 5 and parts[4] == "threads" and method == "POST":
                guild_id = next((g for g, d in self.guilds.items()
                                 if any(c["id"] == channel_id for c in d["channels"])), "")
                thread = {  # a thread started from a message takes the message's id
                    "id": parts[3], "type": 11, "guild_id": guild_id,
                    "parent_id": channel_id, "name": body.get("name", "thread"),
                    "owner_id": BOT_ID, "message_count": 0, "member_count": 1,
                    "rate_limit_per_user": 0, "flags": 0, "thread_metadata": {
                        "archived": False, "auto_archive_duration": 1440,
                        "archive_timestamp": now(), "locked": False}}
                self.threads[thread["id"]] = thread
                # As Discord does, the gateway announces the new thread too.
                task = asyncio.ensure_future(
                    self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                return self._json(thread, 201)
        if parts[0] == "applications" and parts[-1] == "commands" and len(parts) == 5:
            guild = parts[3]
            if method == "GET":
                return self._json(self.guild_commands.get(guild, []))
            made = [{**c, "id": self.snowflake(), "application_id": APP_ID, "version": "1",
                     "default_member_permissions": None, "guild_id": guild}
                    for c in (body.get("__list__", []) if method == "PUT" else [body])]
            if method == "PUT":
                self.guild_commands[guild] = made
            else:  # POST: one more command
                self.guild_commands.setdefault(guild, []).append(made[0])
            return self._json(made if method == "PUT" else made[0],
                              200 if method == "PUT" else 201)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._json({"interaction": {"id": parts[1], "type": 2,
                                               "response_message_loading": True,
                                               "response_message_ephemeral": bool(
                                                   (body.get("data") or {}).get("flags", 0)
                                                   & 64)}})
        if parts[0] == "webhooks":
            return self._json(self._message("0", body))
        return self._json({"message": f"fake Discord has no {method} {path}", "code": 0}, 404)


async def start_fake_discord(fake: FakeDiscord) -> web.AppRunner:
    app = web.Application()

    app.router.add_route("*", "/api/v10/{path:.*}", fake.rest)
    app.router.add_get("/gateway", fake.gateway)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/api/v10"
    fake.gateway_url = f"ws://127.0.0.1:{port}/gateway"
    return runner
