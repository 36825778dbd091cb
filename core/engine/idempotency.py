"""``Idempotency-Key`` for the admin API: a retried POST is processed once.

The first request with a key runs and its response is kept for a day, under the
tenant's own namespace (a key of one tenant is invisible to every other). A retry with
the same key and the same request gets the kept response back without running again;
the same key with a different request is a conflict. Requests with one key are
serialised by the conversation-lock primitive of the shared state, so two concurrent
retries still run once. Responses of 5xx are not kept: the retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.state.base import SharedState

TTL_S = 86_400
WAIT_S = 60.0
LEASE_S = 120.0


@dataclass(frozen=True, slots=True)
class KeptResponse:
    status: int
    body: str
    content_type: str = "application/json"
    replayed: bool = False
    conflict: bool = False
    """The key was used before for a different request."""


Run = Callable[[], Awaitable[KeptResponse]]


async def once(state: SharedState, tenant: str, key: str, fingerprint: str,
               run: Run) -> KeptResponse:
    slot = f"{tenant}:idem:{hashlib.sha256(key.encode()).hexdigest()}"
    kept = await _kept(state, slot, fingerprint)
    if kept is not None:
        return kept
    async with state.conversation_lock(slot, WAIT_S, LEASE_S):
        kept = await _kept(state, slot, fingerprint)
        if kept is not None:
            return kept
        response = await run()
        if response.status < 500:
            await state.cache_set(slot, json.dumps({
                "fingerprint": fingerprint, "status": response.status,
                "body": response.body, "content_type": response.content_type}), TTL_S)
        return response


async def _kept(state: SharedState, slot: str, fingerprint: str) -> KeptResponse | None:
    raw = await state.cache_get(slot)
    if raw is None:
        return None
    kept = json.loads(raw)
    if kept["fingerprint"] != fingerprint:
        return KeptResponse(409, json.dumps({
            "error": "this Idempotency-Key was used for a different request"}),
            conflict=True)
    return KeptResponse(int(kept["status"]), str(kept["body"]), str(kept["content_type"]),
                        replayed=True)
