"""Knowledge commands: admin ``/ingest URL`` and ``/sources``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from core.commands.registry import Command, CommandContext, CommandResult

NOT_CONFIGURED = "Knowledge is not available in this process."


class IngestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl = Field(description="the page or document to add to the knowledge base")


class SourcesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: int = Field(1, ge=1, description="20 documents per page")


async def ingest_command(ctx: CommandContext, args: IngestArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if knowledge is None:
        return CommandResult(NOT_CONFIGURED, True)
    report = await knowledge.ingestor.ingest(ctx.tenant, [str(args.url)], knowledge.root)
    outcome = report.outcomes[0] if report.outcomes else None
    if outcome is None or outcome.status == "failed":
        reason = outcome.reason if outcome else "nothing was found there"
        return CommandResult(f"Could not ingest {args.url}: {reason}", True)
    return CommandResult(f"{outcome.status.capitalize()}: {args.url} "
                         f"({outcome.chunks} chunks).", True)


async def sources_command(ctx: CommandContext, args: SourcesArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if knowledge is None:
        return CommandResult(NOT_CONFIGURED, True)
    records = await knowledge.catalog.list(ctx.tenant.id)
    if not records:
        return CommandResult(f"No documents are loaded for {ctx.tenant.name} yet.", True)
    start = (args.page - 1) * 20
    shown = records[start:start + 20]
    lines = [f"• {r.title} — `{r.url or r.source}` ({len(r.chunk_ids)} chunks)" for r in shown]
    more = f"\n…and {len(records) - start - len(shown)} more (`/sources page={args.page + 1}`)" \
        if len(records) > start + len(shown) else ""
    return CommandResult(f"{len(records)} documents in {ctx.tenant.name}'s knowledge base:\n"
                         + "\n".join(lines) + more, True)


KNOWLEDGE_COMMANDS = (
    Command("ingest", "add a web page or document to the knowledge base", ingest_command,
            IngestArgs, permission="admin", ephemeral=True),
    Command("sources", "list the documents I answer from", sources_command, SourcesArgs,
            ephemeral=True),
)
