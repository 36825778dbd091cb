"""``switchboard chat``: the terminal channel on the full engine."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from adapters.terminal.channel import TerminalChannel
from adapters.terminal.remote import RemoteEngine
from bots import local_control
from bots.bootstrap import open_services
from bots.settings import Settings
from core.intake.recovery import Recovery
from core.knowledge.index import KnowledgeIndexError
from core.plain_errors import did_you_mean
from core.tenants.loader import load_directory
from core.turns.chain import Delivery


async def _stored_only(address: Mapping[str, Any]) -> Delivery | None:
    """A terminal that was closed cannot be written to: replayed turns are stored."""
    return None


def unknown_tenant(settings: Settings, tenant: str) -> str:
    """What to say when no valid tenant file has this id ("" when one has), with the
    closest id. Checked before anything opens, here and beside a running serve alike."""
    loaded = sorted(load_directory(settings.tenants_dir).tenants)
    if tenant in loaded:
        return ""
    hint = did_you_mean(tenant, loaded) or "."
    return (f"No tenant {tenant!r} in {settings.tenants_dir} (loaded: "
            f"{', '.join(loaded) or 'none'}){hint} Run `switchboard tenants check` for "
            "problems.")


async def run_chat(settings: Settings, tenant: str, message: str | None, thread: str,
                   user: str) -> int:
    """On the embedded defaults, a running ``serve`` holds the stores: the conversation
    goes through it (``adapters/terminal/remote.py``). Otherwise this process opens them."""
    unknown = await asyncio.to_thread(unknown_tenant, settings, tenant)
    if unknown:
        print(unknown)
        return 2
    control = None if settings.qdrant_url else await asyncio.to_thread(
        local_control.running, settings.data_dir)
    if control is not None:
        return await _converse(TerminalChannel(RemoteEngine(control.url, control.token),
                                               tenant, user=user, thread=thread), message)
    async with open_services(settings, initial_ingest="wait", journal="chat") as services:
        recovery = Recovery(services.engine, _stored_only)
        await recovery.replay(services.orphans)
        await recovery.write_back()
        if tenant not in services.tenants.tenant_ids():
            known = ", ".join(services.tenants.tenant_ids()) or "none"
            print(f"No tenant {tenant!r} in {settings.tenants_dir} (loaded: {known}). "
                  "Run `switchboard tenants check` for problems.")
            return 2
        try:
            await services.knowledge.index.ping()
        except KnowledgeIndexError as exc:
            print(f"Note: answers from documents are unavailable in this process: {exc}. "
                  "Commands still work.", file=sys.stderr)
        return await _converse(TerminalChannel(services.engine, tenant, user=user,
                                               thread=thread), message)


async def _converse(channel: TerminalChannel, message: str | None) -> int:
    if message is not None:
        outcome = await channel.send(message)
        return 0 if outcome in ("answered", "command") else 2 \
            if outcome == "unknown_tenant" else 1
    await channel.interactive()
    return 0
