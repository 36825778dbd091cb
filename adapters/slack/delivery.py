"""Delivering one reply into a Slack thread: a placeholder, paced updates, the final blocks.

Slack allows about one ``chat.update`` per second per message, so streamed deltas are
coalesced: the placeholder is posted on the first delta, then updated at most every
``min_interval_s``. When an accepted turn has produced no text after
``placeholder_after_s`` (a slow model, a retry), a "working on it" placeholder is posted
so the asker sees that an answer is coming; the answer replaces it. The final reply
replaces the placeholder with Block Kit and adds further messages for very long answers.
Ephemeral replies go to the asker only. Rate limits (429 + Retry-After) are retried by
the SDK's handler; errors that mean the bot cannot post here (not in channel, revoked
token) are logged, never raised.

Posting is idempotent. Slack may have posted a message even when it answers a 5xx or
the connection drops, so the SDK's blind retries are off for ``chat.postMessage``. Each
message carries its sink's delivery key and part number in its metadata
(``switchboard_reply``). A failed post first looks for that message in the thread
(``conversations.replies`` with metadata, which needs the ``*:history`` scopes), and
posts again only if it is not there. A sink rebuilt after a crash
(``resume_existing``) picks up the message its predecessor had posted, instead of
posting a second answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.pacing import PacedText
from adapters.slack.authority import SlackAuthority
from adapters.slack.render import render, to_mrkdwn
from core.replies import Reply
from core.turns.events import (
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)

log = logging.getLogger("switchboard.slack")

CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived",
                         "token_revoked", "account_inactive", "invalid_auth",
                         "missing_scope", "restricted_action"})
WORKING = "_Working on an answer…_"
METADATA_TYPE = "switchboard_reply"
POST_ATTEMPTS = 3


class _NotForPosts(AsyncRetryHandler):
    """Retries what the wrapped handler retries, except ``chat.postMessage``: a post that
    failed with a 5xx or a dropped connection may have been made (the sink checks)."""

    def __init__(self, inner: AsyncRetryHandler) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self._inner = inner

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if request.url.rstrip("/").endswith("chat.postMessage"):
            return False
        return await self._inner._can_retry_async(state=state, request=request,
                                                  response=response, error=error)


def web_client(token: str | None, base_url: str, timeout_s: int = 10) -> AsyncWebClient:
    """A Web API client with bounded retries on 429 (Retry-After), 5xx and resets (the
    last two not for posts; ``SlackThreadDelivery`` makes those idempotent itself).
    ``None``: no token of its own (bolt's, whose ``authorize`` gives one per request)."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout_s, retry_handlers=[
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        _NotForPosts(AsyncServerErrorRetryHandler(max_retry_count=2)),
        _NotForPosts(AsyncConnectionErrorRetryHandler(max_retry_count=2))])


def _transient(exc: BaseException) -> bool:
    """A failure after which the post may or may not have been made."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200) if exc.response is not None else 0
        return int(status) >= 500
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


class SlackThreadDelivery:
    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str, user: str, *,
                 min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 reply_ts: str | None = None, placeholder_after_s: float = 1.5,
                 address: dict[str, object] | None = None,
                 resume_existing: bool = False) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread_ts
        self._user = user
        self._pace = PacedText(min_interval_s, clock)
        self._ts: str | None = reply_ts
        self._placeholder_after = placeholder_after_s
        self.address: dict[str, object] = {
            "kind": "slack-thread", "channel": channel, "thread_ts": thread_ts,
            "user": user, "delivery": uuid.uuid4().hex, **(address or {})}
        """Where this delivery posts, journaled so a reply interrupted by a crash can be
        posted after the restart (``SlackAdapter.redelivery``)."""
        self._delivery = str(self.address["delivery"])
        self._resume = resume_existing
        self._waiting: asyncio.Task[None] | None = None
        self._placeholder_posting = False
        self._only_working = False
        self._tool_line = ""
        self.posted: list[str] = []

    @property
    def delivered_id(self) -> str:
        """The ts of the (first) reply message: what an edit of the question updates."""
        return self._ts or ""

    async def deliver(self, event: TurnEvent) -> Receipt:
        """Every turn event, rendered in the thread: the start schedules the "working"
        placeholder, text streams into one message, a tool call shows as a status line
        under it while it runs, and the reply (or the apology) replaces it all."""
        match event:
            case TurnStarted():
                await self.working()
            case TextDelta(text=text):
                await self.delta(text)
            case ToolCalled(tool=tool, label=label):
                await self._status(f"_:hammer_and_wrench: {label or tool}…_")
            case ToolReturned():
                await self._status("")
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                await self.finish(reply)
        return Receipt(self.delivered_id)

    async def _status(self, line: str) -> None:
        """Show (or clear) the tool that is running, below the text streamed so far."""
        self._tool_line = line
        text = "\n".join(t for t in (to_mrkdwn(self._pace.preview()) if self._pace.text
                                     else "", line) if t) or WORKING
        await self._settle_placeholder()
        try:
            if self._ts is None:
                if not line:
                    return
                self._ts = await self._put(0, text)
                self.posted.append(self._ts)
                self._only_working = not self._pace.text
            else:
                await self._client.chat_update(channel=self._channel, ts=self._ts, text=text)
        except SlackApiError as exc:
            self._cannot_post(exc)

    async def working(self) -> None:
        if self._ts is None and self._waiting is None:
            self._waiting = asyncio.create_task(self._post_working())

    async def _post_working(self) -> None:
        await asyncio.sleep(self._placeholder_after)
        if self._ts is not None:
            return
        self._placeholder_posting = True
        try:
            ts = await self._put(0, WORKING)
        except SlackApiError as exc:
            with contextlib.suppress(SlackApiError):
                self._cannot_post(exc)
            return
        if self._ts is None:
            self._ts = ts
            self.posted.append(ts)
            self._only_working = True

    async def _settle_placeholder(self) -> None:
        """Stop a placeholder that is still waiting; let one being posted finish (so the
        answer replaces it rather than racing it into a second message)."""
        task = self._waiting
        if task is None or task.done():
            return
        if self._placeholder_posting:
            with contextlib.suppress(Exception):
                await task
        else:
            task.cancel()

    async def _find(self, part: int) -> str | None:
        """The ts of this reply's message ``part`` if it is already in the thread."""
        try:
            found = await self._client.conversations_replies(
                channel=self._channel, ts=self._thread, include_all_metadata=True, limit=200)
        except SlackApiError as exc:
            log.warning("cannot look for an earlier post in the thread (%s); posting",
                        exc.response.get("error", "") if exc.response is not None else exc)
            return None
        for message in found.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_TYPE and \
                    payload.get("delivery") == self._delivery and payload.get("part") == part:
                return str(message["ts"])
        return None

    async def _put(self, part: int, text: str, blocks: list[dict[str, Any]] | None = None
                   ) -> str:
        """Post message ``part`` of this reply, exactly once; returns its ts."""
        if self._resume:
            existing = await self._find(part)
            if existing is not None:
                await self._client.chat_update(channel=self._channel, ts=existing, text=text,
                                               blocks=blocks)
                return existing
        metadata = {"event_type": METADATA_TYPE,
                    "event_payload": {"delivery": self._delivery, "part": part}}
        for attempt in range(1, POST_ATTEMPTS + 1):
            try:
                # No previews: Slack fetching a link an answer carries is how data would
                # leave through a URL (the output filter keeps only harmless ones).
                response = await self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread, text=text, blocks=blocks,
                    metadata=metadata, unfurl_links=False, unfurl_media=False)
                return str(response["ts"])
            except (TimeoutError, SlackApiError, aiohttp.ClientError, ConnectionError) as exc:
                if not _transient(exc) or attempt == POST_ATTEMPTS:
                    raise
                existing = await self._find(part)
                if existing is not None:
                    log.info("a post that failed had been made; not posting it again")
                    return existing
                await asyncio.sleep(0.25 * 2 ** attempt)
        raise AssertionError("unreachable")

    async def delta(self, text: str) -> None:
        await self._settle_placeholder()
        self._only_working = False
        if not self._pace.add(text) and self._ts is not None:
            return
        try:
            if self._ts is None:
                self._ts = await self._put(0, self._pace.preview())
                self.posted.append(self._ts)
            else:
                preview = self._pace.preview()
                await self._client.chat_update(
                    channel=self._channel, ts=self._ts,
                    text=f"{preview}\n{self._tool_line}" if self._tool_line else preview)
            self._pace.shown()
        except SlackApiError as exc:
            self._cannot_post(exc)

    async def finish(self, reply: Reply) -> None:
        await self._settle_placeholder()
        messages = render(reply)
        try:
            if reply.ephemeral and self._ts is not None and self._only_working:
                # Only the placeholder is public: a private reply must not replace it.
                await self._client.chat_delete(channel=self._channel, ts=self._ts)
                self.posted.remove(self._ts)
                self._ts = None
            if reply.ephemeral and self._ts is None:
                for message in messages:
                    await self._client.chat_postEphemeral(
                        channel=self._channel, user=self._user, thread_ts=self._thread,
                        text=message.text, blocks=message.blocks)
                return
            first, rest = messages[0], messages[1:]
            if self._ts is not None:
                await self._client.chat_update(channel=self._channel, ts=self._ts,
                                               text=first.text, blocks=first.blocks)
            else:
                self._ts = await self._put(0, first.text, first.blocks)
                self.posted.append(self._ts)
            for part, message in enumerate(rest, start=1):
                self.posted.append(await self._put(part, message.text, message.blocks))
        except SlackApiError as exc:
            self._cannot_post(exc)

    def _cannot_post(self, exc: SlackApiError) -> None:
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        if error not in CANNOT_POST:
            raise exc
        log.warning("cannot post to Slack channel %s: %s", self._channel, error)


def thread_delivery(client: AsyncWebClient, authority: SlackAuthority, channel: str,
                    thread_ts: str, user: str, reply_ts: str | None = None
                    ) -> SlackThreadDelivery:
    """The delivery into a thread, addressed so it can be rebuilt after a restart (the
    tenant, workspace and app that posted: ``SlackAdapter.redelivery``)."""
    return SlackThreadDelivery(client, channel, thread_ts, user, reply_ts=reply_ts, address={
        "tenant": authority.tenant.id, "workspace": authority.workspace,
        "own_app": authority.own_app})
