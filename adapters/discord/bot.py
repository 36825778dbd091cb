"""The Discord bot: one discord.py client per bot token, serving the guilds of its tenants.

A guild id names the tenant (tenant files bind them). A client for a tenant's own token
serves only that tenant: an event from any other guild is refused and logged. Messages:
a mention in a channel opens a thread for the answer (the thread is the session); inside
a thread the bot already answers in, replies need no mention; DMs and configured
channels are answered too. Slash commands are generated from the command registry and
synced per guild; interactions are deferred at once and completed by editing. Buttons
carry their meaning in ``custom_id`` and are handled from the raw interaction, so they
keep working across restarts. A MESSAGE_CREATE replayed after a gateway RESUME has the
same message id, which the engine's dedupe drops.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import discord

from adapters.discord.commands import (
    application_command,
    interaction_call,
    interaction_text,
)
from adapters.discord.delivery import ChannelDelivery, InteractionDelivery
from adapters.discord.render import CONFIRM_PREFIX, FEEDBACK_PREFIX, FOLLOW_UP_PREFIX
from core.engine import Engine, Rating, UnknownTenant
from core.messages import Author, Binding, CommandCall, InboundMessage
from core.tenants.models import TenantConfig
from observability.metrics import PLATFORM_RATE_LIMITED

if TYPE_CHECKING:  # discord.types is for type checkers only (it cannot be imported)
    from discord.types.interactions import (
        ButtonMessageComponentInteractionData,
        ChatInputApplicationCommandInteractionData,
    )

log = logging.getLogger("switchboard.discord")
REDELIVERY_WAIT_S = 120.0
_IDS = re.compile(r"/\d{5,}")


def rate_limit_trace() -> aiohttp.TraceConfig:
    """Counts Discord's 429s per route (discord.py itself waits and retries)."""
    trace = aiohttp.TraceConfig()

    async def on_end(session: aiohttp.ClientSession, context: Any,
                     params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status == 429:
            route = _IDS.sub("/{id}", params.url.path)
            PLATFORM_RATE_LIMITED.labels("discord", f"{params.method} {route}").inc()
            log.warning("Discord rate limit on %s %s", params.method, route)

    trace.on_request_end.append(on_end)
    return trace


class DiscordAdapter:
    def __init__(self, engine: Engine, *,
                 only_tenant: str | None = None, min_interval_s: float = 1.0,
                 sharded: bool = False, shard_ids: tuple[int, ...] = (),
                 shard_count: int = 0) -> None:
        self._engine = engine
        self._only = only_tenant
        self._interval = min_interval_s
        intents = discord.Intents.default()
        intents.message_content = True
        options: dict[str, Any] = {"intents": intents, "chunk_guilds_at_startup": False,
                                   "http_trace": rate_limit_trace()}
        if sharded and shard_count:  # this process runs some of the shards (--shard-ids)
            options.update(shard_ids=list(shard_ids), shard_count=shard_count)
        kind = ShardedSwitchboardClient if sharded else SwitchboardClient
        self.client: discord.Client = kind(self, **options)

    @property
    def bot_key(self) -> str:
        """Which bot this is, as journaled addresses name it: the tenant of an own bot,
        empty for the shared one."""
        return self._only or ""

    async def redelivery(self, address: dict[str, object]) -> ChannelDelivery | None:
        """A sink for a journaled address, once this bot's gateway session is ready;
        None if the channel is gone or the bot cannot see it any more."""
        try:
            await asyncio.wait_for(self.client.wait_until_ready(), REDELIVERY_WAIT_S)
            channel_id = int(str(address.get("channel_id", "")))
            channel = self.client.get_channel(channel_id) or \
                await self.client.fetch_channel(channel_id)
        except (TimeoutError, ValueError, discord.HTTPException) as exc:
            log.warning("cannot post a replayed answer to Discord: %s", exc)
            return None
        if not isinstance(channel, discord.abc.Messageable):
            return None
        return ChannelDelivery(channel, min_interval_s=self._interval, bot=self.bot_key)

    # -- tenants -------------------------------------------------------------------------

    def tenant_of(self, guild_id: int | None) -> TenantConfig | None:
        if guild_id is None:
            if self._only is not None:
                return self._engine.tenant(self._only)
            return None
        try:
            tenant = self._engine.tenant_for(Binding("discord", str(guild_id)))
        except UnknownTenant:
            log.warning("Discord event from a guild bound to no tenant",
                        extra={"channel": "discord", "guild_id": str(guild_id)})
            return None
        if self._only is not None and tenant.id != self._only:
            log.warning("guild %s belongs to tenant %s, not to this bot's tenant %s; refused",
                        guild_id, tenant.id, self._only, extra={"channel": "discord"})
            return None
        if self._only is None and tenant.discord.bot_token_env:
            return None  # that tenant's own bot answers there
        return tenant

    def _binding(self, tenant: TenantConfig) -> Binding:
        return Binding("discord", tenant.discord.guild_ids[0]) if tenant.discord.guild_ids \
            else Binding("discord", "")

    def _author(self, user: discord.abc.User, tenant: TenantConfig) -> Author:
        roles: set[str] = set()
        if isinstance(user, discord.Member):
            if user.guild_permissions.manage_guild:
                roles.add("platform_admin")
            roles.update(f"role:{r.id}" for r in user.roles)
        return Author(str(user.id), display_name=user.display_name, roles=frozenset(roles),
                      is_bot=user.bot)

    # -- commands ------------------------------------------------------------------------

    async def sync_commands(self, guild: discord.Guild) -> None:
        tenant = self.tenant_of(guild.id)
        if tenant is None or self.client.application_id is None:
            return
        payload = [application_command(c) for c in self._engine.commands_for(
            tenant, admin=True)]
        try:
            await self.client.http.bulk_upsert_guild_commands(
                self.client.application_id, guild.id, payload)
        except discord.HTTPException as exc:
            log.warning("could not sync commands to guild %s: %s", guild.id, exc,
                        extra={"tenant": tenant.id, "channel": "discord"})
            return
        log.info("synced %d commands to guild %s", len(payload), guild.id,
                 extra={"tenant": tenant.id, "channel": "discord"})

    # -- messages ------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        me = self.client.user
        if me is not None:
            text = text.replace(f"<@{me.id}>", " ").replace(f"<@!{me.id}>", " ")
        return " ".join(text.split())

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        tenant = self.tenant_of(message.guild.id if message.guild else None)
        if tenant is None:
            return
        channel = message.channel
        settings = tenant.discord
        mentioned = me in message.mentions
        configured = str(channel.id) in settings.channel_ids or (
            isinstance(channel, discord.Thread) and str(channel.parent_id) in settings.channel_ids)
        target: discord.abc.Messageable = channel
        reference: discord.Message | None = message
        if message.guild is None:
            if not settings.answer_dms:
                return
        elif isinstance(channel, discord.Thread):
            # A thread the bot opened is its conversation; in others it answers once it
            # has taken part.
            if not (mentioned or configured or channel.owner_id == me.id
                    or await self._engine.conversation_exists(tenant.id, "discord",
                                                              str(channel.id))):
                return
        elif mentioned or configured:
            opened = message.guild.get_thread(message.id)  # a redelivered mention
            if opened is not None:
                target, reference = opened, None
            elif settings.open_threads:
                try:
                    target = await message.create_thread(
                        name=(self._clean(message.content) or "Question")[:90],
                        auto_archive_duration=1440)
                    reference = None
                except discord.HTTPException as exc:
                    log.warning("could not open a thread, answering in the channel: %s", exc,
                                extra={"tenant": tenant.id, "channel": "discord"})
        else:
            return
        inbound = InboundMessage(
            binding=self._binding(tenant), tenant_id=tenant.id,
            thread=str(getattr(target, "id", channel.id)),
            author=self._author(message.author, tenant), text=self._clean(message.content),
            platform_message_id=str(message.id), received_at=message.created_at)
        await self._deliver(inbound, ChannelDelivery(target, reference=reference,
                                                 min_interval_s=self._interval,
                                                 bot=self.bot_key))

    async def _deliver(self, message: InboundMessage, sink: ChannelDelivery) -> None:
        try:
            await self._engine.handle(message, sink)
        finally:
            sink.close()

    def _session_of(self, channel_id: int, message_id: int) -> str:
        """A question that opened a thread lives in the channel, but its conversation is
        the thread, whose id Discord makes equal to the message's."""
        opened = self.client.get_channel(message_id)
        return str(message_id if isinstance(opened, discord.Thread) else channel_id)

    async def on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edited question is answered again by editing the same reply."""
        data = payload.data
        if "content" not in data or (data.get("author") or {}).get("bot"):
            return
        tenant = self.tenant_of(payload.guild_id)
        session = self._session_of(payload.channel_id, payload.message_id)
        channel = self.client.get_channel(int(session))  # where the answer is
        if tenant is None or channel is None or not isinstance(channel, discord.abc.Messageable):
            return
        author = data.get("author") or {}
        message = InboundMessage(
            binding=self._binding(tenant), tenant_id=tenant.id, thread=session,
            author=Author(str(author.get("id", ""))), text=self._clean(str(data["content"])),
            platform_message_id=str(payload.message_id),
            revision=str(data.get("edited_timestamp") or ""))
        removed = await self._engine.remove_turn(message)
        if removed is None:
            return
        reply_id = int(removed[1]) if removed[1].isdigit() else None
        await self._deliver(message, ChannelDelivery(channel, reply_id=reply_id,
                                                 min_interval_s=self._interval,
                                                 bot=self.bot_key))

    async def on_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A deleted question leaves the session, and its answer is deleted."""
        tenant = self.tenant_of(payload.guild_id)
        if tenant is None:
            return
        session = self._session_of(payload.channel_id, payload.message_id)
        message = InboundMessage(binding=self._binding(tenant), tenant_id=tenant.id, thread=session,
                                 author=Author(""), text="",
                                 platform_message_id=str(payload.message_id))
        removed = await self._engine.remove_turn(message)
        channel = self.client.get_channel(int(session))
        if removed and removed[1].isdigit() and isinstance(channel, discord.abc.Messageable) \
                and hasattr(channel, "get_partial_message"):
            try:
                await channel.get_partial_message(int(removed[1])).delete()
            except discord.HTTPException as exc:
                log.warning("could not delete the answer: %s", exc)

    # -- interactions --------------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        tenant = self.tenant_of(interaction.guild_id)
        if tenant is None:
            return
        if interaction.type == discord.InteractionType.application_command:
            await self._command(interaction, tenant)
        elif interaction.type == discord.InteractionType.component:
            await self._button(interaction, tenant)

    async def _command(self, interaction: discord.Interaction, tenant: TenantConfig) -> None:
        data = cast("ChatInputApplicationCommandInteractionData", interaction.data or {})
        command = self._engine.command(str(data.get("name", "")))
        private = command is None or command.ephemeral or command.permission == "admin"
        await interaction.response.defer(ephemeral=private, thinking=True)
        message = InboundMessage(
            binding=self._binding(tenant), tenant_id=tenant.id,
            thread=f"{interaction.channel_id}:command:{interaction.user.id}",
            author=self._author(interaction.user, tenant), text=interaction_text(data),
            platform_message_id=f"interaction:{interaction.id}",
            command=interaction_call(data))
        await self._engine.handle(message, InteractionDelivery(interaction))

    async def _button(self, interaction: discord.Interaction, tenant: TenantConfig) -> None:
        data = cast("ButtonMessageComponentInteractionData", interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        channel = interaction.channel
        base = InboundMessage(
            binding=self._binding(tenant), tenant_id=tenant.id, thread=str(interaction.channel_id),
            author=self._author(interaction.user, tenant), text="",
            platform_message_id=f"interaction:{interaction.id}")
        if custom_id.startswith(FEEDBACK_PREFIX):
            rating, _, turn_id = custom_id.removeprefix(FEEDBACK_PREFIX).partition(":")
            if rating not in ("up", "down"):
                return
            stored = await self._engine.record_feedback(base, turn_id, _rating(rating))
            await interaction.response.send_message(
                "Thanks for the feedback!" if stored else
                "Sorry — I couldn't find that answer to record your feedback.", ephemeral=True)
        elif custom_id.startswith(CONFIRM_PREFIX) and isinstance(channel,
                                                                  discord.abc.Messageable):
            decision, _, action_id = custom_id.removeprefix(CONFIRM_PREFIX).partition(":")
            await interaction.response.defer()
            yes = decision == "yes"
            await self._deliver(replace(base, text="Confirm" if yes else "Cancel",
                                        command=CommandCall.confirmation(action_id, yes)),
                                ChannelDelivery(channel, min_interval_s=self._interval,
                                                bot=self.bot_key))
        elif custom_id.startswith(FOLLOW_UP_PREFIX) and isinstance(channel,
                                                                    discord.abc.Messageable):
            question = _button_label(interaction, custom_id)
            await interaction.response.defer()
            if question:
                message = InboundMessage(
                    binding=base.binding, tenant_id=base.tenant_id, thread=base.thread,
                    author=base.author,
                    text=question, platform_message_id=base.platform_message_id)
                await self._deliver(message, ChannelDelivery(channel,
                                                         min_interval_s=self._interval,
                                                         bot=self.bot_key))


def _rating(value: str) -> Rating:
    return "up" if value == "up" else "down"


def _button_label(interaction: discord.Interaction, custom_id: str) -> str:
    message = interaction.message
    for row in (message.components if message else []):
        for item in getattr(row, "children", []):
            if getattr(item, "custom_id", None) == custom_id:
                return str(getattr(item, "label", "") or "")
    return ""


class _Handlers:
    """The gateway events the adapter handles, shared by the plain and sharded clients."""

    adapter: DiscordAdapter

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.adapter.sync_commands(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.adapter.sync_commands(guild)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_delete(payload)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.adapter.on_interaction(interaction)


class SwitchboardClient(_Handlers, discord.Client):
    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter


class ShardedSwitchboardClient(_Handlers, discord.AutoShardedClient):
    """For a bot in many guilds: Discord requires shards from 2,500 guilds on, and
    ``GET /gateway/bot`` says how many."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter
