"""Knowledge commands: admin ``/ingest URL`` (or files sent with it) and ``/sources``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from core.commands.context import CommandContext
from core.commands.registry import Command, CommandResult
from core.knowledge.ingest import IngestReport
from core.knowledge.models import SourceDocument
from core.knowledge.sources import SourceFailure
from core.messages import Attachment

log = logging.getLogger("switchboard.commands")

NOT_CONFIGURED = "Knowledge is not available in this process."


class IngestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl | None = Field(
        None, description="the page or document to add; or send files with the command")


class SourcesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: int = Field(1, ge=1, description="20 documents per page")


async def ingest_command(ctx: CommandContext, args: IngestArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if not knowledge.available:
        return CommandResult(NOT_CONFIGURED, True)
    files = ctx.message.attachments
    if args.url is None and not files:
        return CommandResult("Give a URL (`/ingest url=https://…`) or send files with "
                             "the command.", True)
    lines: list[str] = []
    if args.url is not None:
        report = await knowledge.ingest_urls([str(args.url)])
        lines += report_lines(report) or [f"Could not ingest {args.url}: nothing was "
                                           "found there"]
    if files:
        limit = ctx.tenant.knowledge.max_file_mb * 1024 * 1024
        report = await knowledge.ingest_files(_downloads(files, limit, ctx.tenant.id))
        lines += report_lines(report)
    return CommandResult("\n".join(lines), True)


def report_lines(report: IngestReport) -> list[str]:
    lines = []
    for outcome in report.outcomes:
        name = outcome.source.removeprefix("inline:")
        if outcome.status == "failed":
            lines.append(f"Could not ingest {name}: {outcome.reason}")
        else:
            lines.append(f"{outcome.status.capitalize()}: {name} ({outcome.chunks} chunks).")
    return lines


async def _downloads(files: tuple[Attachment, ...], limit: int, tenant: str
                     ) -> AsyncIterator[SourceDocument | SourceFailure]:
    """Each attached file as a document; a file that is too big or cannot be downloaded
    is reported, and the others still go in. The source is the file name, so sharing a
    new version of a file replaces the old one."""
    for file in files:
        source = f"inline:{file.name or 'file'}"
        if file.size > limit:
            yield SourceFailure(source, f"larger than the {limit // (1024 * 1024)} MB limit")
            continue
        if file.fetch is None:
            yield SourceFailure(source, "this channel cannot download files")
            continue
        try:
            content = await file.fetch()
        except Exception as exc:
            log.warning("could not download %s: %s", file.name, exc, extra={"tenant": tenant})
            yield SourceFailure(source, "could not be downloaded")
            continue
        if len(content) > limit:
            yield SourceFailure(source, f"larger than the {limit // (1024 * 1024)} MB limit")
            continue
        yield SourceDocument(source=source, content=content, content_type=file.content_type,
                             title=file.name)


async def sources_command(ctx: CommandContext, args: SourcesArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if not knowledge.available:
        return CommandResult(NOT_CONFIGURED, True)
    records = await knowledge.documents()
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
            IngestArgs, permission="admin", ephemeral=True, surface="command"),
    Command("sources", "list the documents I answer from", sources_command, SourcesArgs,
            ephemeral=True, label="Listing the documents"),
)
