"""The commands every tenant has: /help, /forget, /whoami, and admin /reload, /stats;
the knowledge commands; and the built-in tools offered to the model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.commands.context import CommandContext
from core.commands.knowledge import KNOWLEDGE_COMMANDS
from core.commands.registry import Command, CommandRegistry, CommandResult
from core.tools.builtins import BUILTIN_TOOLS


class HelpArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str | None = Field(None, description="show the usage of one command")


class ForgetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["thread", "me"] = Field(
        "thread", description="'thread' forgets this conversation, 'me' everything you said")


class StatsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                              description="YYYY-MM, default the current month")


async def help_command(ctx: CommandContext, args: HelpArgs) -> CommandResult:
    available = ctx.services.commands.available(ctx.tenant, ctx.is_admin)
    if args.command:
        wanted = args.command.lstrip("/").lower()
        match = [c for c in available if c.name == wanted]
        if not match:
            return CommandResult(f"There is no command `/{args.command.lstrip('/')}`.", True)
        return CommandResult(match[0].help_line(), True)
    lines = [c.help_line() for c in available]
    return CommandResult(
        f"I answer questions for **{ctx.tenant.name}**: ask in plain words, and I reply in "
        "this thread with sources when I have them.\n\nCommands:\n"
        + "\n".join(f"• {line}" for line in lines), True)


async def forget_command(ctx: CommandContext, args: ForgetArgs) -> CommandResult:
    sessions = ctx.services.sessions
    if args.scope == "me":
        count = await sessions.forget_user(ctx.message.author.id)
        return CommandResult(f"Done: I forgot everything you said in {ctx.tenant.name} "
                             f"({count} messages removed or redacted).", True)
    count = await sessions.forget_thread(ctx.key)
    return CommandResult(f"Done: I forgot this conversation ({count} messages).", True)


async def whoami_command(ctx: CommandContext, args: BaseModel) -> CommandResult:
    author = ctx.message.author
    roles = ", ".join(sorted(author.roles)) or "none"
    return CommandResult(
        f"Tenant: **{ctx.tenant.name}** (`{ctx.tenant.id}`)\n"
        f"Channel: {ctx.message.channel}, thread `{ctx.key.thread}`\n"
        f"You: `{author.id}`{f' ({author.display_name})' if author.display_name else ''}\n"
        f"Platform roles: {roles}\nAdmin here: {'yes' if ctx.is_admin else 'no'}", True)


async def reload_command(ctx: CommandContext, args: BaseModel) -> CommandResult:
    changed, problems = await ctx.services.settings.reload()
    text = "Reloaded the tenant files: " + (
        f"{ctx.tenant.name}'s settings changed" if changed else "no change to yours")
    if problems:
        text += "\nProblems in your tenant file (the last good version stays in service):\n"
        text += "\n".join(f"• {field}: {reason}" for field, reason in problems)
    return CommandResult(text + ".", True)


async def stats_command(ctx: CommandContext, args: StatsArgs) -> CommandResult:
    now = datetime.now(UTC)
    if args.month:
        year, month = (int(x) for x in args.month.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    else:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    stats = await ctx.services.sessions.stats(start)
    usage = await ctx.services.usage.month(start)
    budget = ctx.tenant.llm.monthly_token_budget
    return CommandResult(
        f"**{ctx.tenant.name}**, {start:%Y-%m}:\n"
        f"• turns: {stats.turns} in {stats.threads} threads\n"
        f"• users: {stats.users}\n"
        f"• LLM tokens: {usage.tokens:,} of {budget:,} "
        f"({usage.prompt_tokens:,} prompt, {usage.completion_tokens:,} completion)\n"
        f"• estimated cost: ${usage.cost_usd:.4f}", True)


def builtin_commands() -> CommandRegistry:
    registry = CommandRegistry()
    for command in (
        Command("help", "list the commands, or show how to use one", help_command,
                HelpArgs, ephemeral=True),
        Command("forget", "forget this conversation, or everything you said (`me`)",
                forget_command, ForgetArgs, ephemeral=True, writes=True,
                verbs=("forget", "delete", "erase"), label="Forgetting messages"),
        Command("whoami", "show who and where I think you are", whoami_command,
                ephemeral=True),
        Command("reload", "reload the tenant files now", reload_command,
                permission="admin", ephemeral=True, writes=True, verbs=("reload",),
                label="Reloading the tenant files"),
        Command("stats", "turns, users, tokens and cost for this workspace", stats_command,
                StatsArgs, permission="admin", ephemeral=True, label="Reading the usage"),
        *KNOWLEDGE_COMMANDS,
        *BUILTIN_TOOLS,
    ):
        registry.register(command)
    return registry
