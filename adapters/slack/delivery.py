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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.render import render
from core.replies import Reply

log = logging.getLogger("switchboard.slack")

CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived",
                         "token_revoked", "account_inactive", "invalid_auth",
                         "missing_scope", "restricted_action"})
TYPING = " ▍"
WORKING = "_Working on an answer…_"


def web_client(token: str, base_url: str, timeout_s: int = 10) -> AsyncWebClient:
    """A Web API client with bounded retries on 429 (Retry-After), 5xx and resets."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout_s, retry_handlers=[
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
        AsyncConnectionErrorRetryHandler(max_retry_count=2)])


class SlackThreadSink:
    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str, user: str, *,
                 min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 reply_ts: str | None = None, placeholder_after_s: float = 1.5,
                 address: dict[str, object] | None = None) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread_ts
        self._user = user
        self._interval = min_interval_s
        self._clock = clock
        self._text = ""
        self._ts: str | None = reply_ts
        self._last_update = 0.0
        self._placeholder_after = placeholder_after_s
        self.address: dict[str, object] = {
            "kind": "slack-thread", "channel": channel, "thread_ts": thread_ts,
            "user": user, **(address or {})}
        """Where this sink posts, journaled so a reply interrupted by a crash can be
        posted after the restart (``SlackAdapter.redelivery_sink``)."""
        self._waiting: asyncio.Task[None] | None = None
        self._only_working = False
        self.posted: list[str] = []

    @property
    def delivered_id(self) -> str:
        """The ts of the (first) reply message: what an edit of the question updates."""
        return self._ts or ""

    async def working(self) -> None:
        if self._ts is None and self._waiting is None:
            self._waiting = asyncio.create_task(self._post_working())

    async def _post_working(self) -> None:
        await asyncio.sleep(self._placeholder_after)
        if self._ts is not None:
            return
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread, text=WORKING)
        except SlackApiError as exc:
            with contextlib.suppress(SlackApiError):
                self._cannot_post(exc)
            return
        if self._ts is None:
            self._ts = str(response["ts"])
            self.posted.append(self._ts)
            self._only_working = True

    def _stop_waiting(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()

    async def delta(self, text: str) -> None:
        self._stop_waiting()
        self._only_working = False
        self._text += text
        try:
            if self._ts is None:
                response = await self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread,
                    text=self._text.rstrip() + TYPING)
                self._ts = str(response["ts"])
                self.posted.append(self._ts)
                self._last_update = self._clock()
            elif self._clock() - self._last_update >= self._interval:
                await self._client.chat_update(channel=self._channel, ts=self._ts,
                                               text=self._text.rstrip() + TYPING)
                self._last_update = self._clock()
        except SlackApiError as exc:
            self._cannot_post(exc)

    async def finish(self, reply: Reply) -> None:
        self._stop_waiting()
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
                response = await self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread, text=first.text,
                    blocks=first.blocks)
                self._ts = str(response["ts"])
                self.posted.append(self._ts)
            for message in rest:
                response = await self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread, text=message.text,
                    blocks=message.blocks)
                self.posted.append(str(response["ts"]))
        except SlackApiError as exc:
            self._cannot_post(exc)

    def _cannot_post(self, exc: SlackApiError) -> None:
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        if error not in CANNOT_POST:
            raise exc
        log.warning("cannot post to Slack channel %s: %s", self._channel, error)
