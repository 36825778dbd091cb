"""The built-in tools: knowledge search, the thread, entities, intent, tags, ingestion,
arithmetic. Each is a command offered only as a tool (``surface="tool"``), so it goes
through the same executor as every command: permission, validation, audit, the
tenant's own services. The model sees each result as text; ``summary`` is the short
line the user sees in the channel.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from core.commands.context import CommandContext
from core.commands.knowledge import report_lines
from core.commands.registry import Command, CommandResult
from core.tools.calculator import CalculatorError, evaluate, format_number
from core.tools.entities import classify_intent, extract_entities


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchArgs(_Args):
    query: str = Field(min_length=1, max_length=500, description="what to look for")
    top_k: int = Field(5, ge=1, le=10, description="how many passages")


class ThreadArgs(_Args):
    limit: int = Field(30, ge=1, le=200, description="how many recent messages")


class TextArgs(_Args):
    text: str = Field(min_length=1, max_length=20_000)


class TagArgs(_Args):
    source: str = Field(min_length=1, max_length=2000,
                        description="the document's path, URL or title")
    tags: list[str] = Field(max_length=20, description="the document's new tags")


class UrlArgs(_Args):
    url: HttpUrl = Field(description="the public page or document to add")


class CalculatorArgs(_Args):
    expression: str = Field(min_length=1, max_length=200,
                            description="arithmetic, e.g. (1200 * 0.15) + 40")


async def search_knowledge(ctx: CommandContext, args: SearchArgs) -> CommandResult:
    passages = await ctx.services.knowledge.search(args.query, args.top_k)
    if not passages:
        return CommandResult("No passage of the knowledge base matches that.",
                             summary="no passages")
    return CommandResult(f"{len(passages)} passages", passages=tuple(passages),
                         summary=f"{len(passages)} passage{'s' * (len(passages) != 1)}")


async def summarize_thread(ctx: CommandContext, args: ThreadArgs) -> CommandResult:
    messages = await ctx.services.sessions.transcript(ctx.key, args.limit)
    if not messages:
        return CommandResult("This conversation has no earlier messages.",
                             summary="no messages")
    lines = [f"{m.role} ({m.author_name or m.user_id or m.role}): {m.text.strip()[:1000]}"
             for m in messages]
    return CommandResult("The conversation so far, oldest first:\n" + "\n".join(lines),
                         summary=f"{len(messages)} messages")


async def entities_tool(ctx: CommandContext, args: TextArgs) -> CommandResult:
    found = extract_entities(args.text)
    count = sum(len(v) for v in found.values())
    return CommandResult(json.dumps(found), summary=f"{count} entities")


async def intent_tool(ctx: CommandContext, args: TextArgs) -> CommandResult:
    intent, confidence, scores = classify_intent(args.text)
    return CommandResult(json.dumps({"intent": intent, "confidence": confidence,
                                     "cues": scores}), summary=intent)


async def tag_document(ctx: CommandContext, args: TagArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if not knowledge.available:
        return CommandResult("Knowledge is not available in this process.", summary="n/a")
    record = await knowledge.tag(args.source, args.tags)
    if record is None:
        return CommandResult(f"No document {args.source!r} in the knowledge base.",
                             summary="no such document")
    return CommandResult(f"Tagged {record.title or record.source}: "
                         f"{', '.join(record.tags) or '(no tags)'}.", summary="tagged")


async def ingest_url(ctx: CommandContext, args: UrlArgs) -> CommandResult:
    knowledge = ctx.services.knowledge
    if not knowledge.available:
        return CommandResult("Knowledge is not available in this process.", summary="n/a")
    # Whatever the tenant allows its admins, a tool never reaches a private address.
    report = await knowledge.ingest_urls([str(args.url)], allow_private=False)
    lines = report_lines(report) or [f"Could not ingest {args.url}: nothing was found there"]
    return CommandResult("\n".join(lines), summary=lines[0][:80])


async def calculator(ctx: CommandContext, args: CalculatorArgs) -> CommandResult:
    try:
        value = format_number(evaluate(args.expression))
    except CalculatorError as exc:
        return CommandResult(f"error: {exc}", summary="error")
    return CommandResult(value, summary=f"= {value}")


BUILTIN_TOOLS = (
    Command("search_knowledge", "search this workspace's documents; cite results as [n]",
            search_knowledge, SearchArgs, surface="tool", label="Searching the documents"),
    Command("summarize_thread", "read this conversation's earlier messages to summarize",
            summarize_thread, ThreadArgs, surface="tool", label="Reading the thread"),
    Command("extract_entities", "find e-mails, URLs, dates, amounts, names in a text",
            entities_tool, TextArgs, surface="tool", label="Extracting entities"),
    Command("classify_intent", "classify a message: question, request, complaint, "
            "greeting, feedback or other", intent_tool, TextArgs, surface="tool",
            label="Classifying the intent"),
    Command("tag_document", "set the tags of a document in the knowledge base",
            tag_document, TagArgs, permission="admin", surface="tool",
            label="Tagging a document", writes=True, verbs=("tag",)),
    Command("ingest_url", "add a public web page or document to the knowledge base",
            ingest_url, UrlArgs, permission="admin", surface="tool",
            label="Adding a document", writes=True, verbs=("ingest", "add", "index", "import")),
    Command("calculator", "evaluate arithmetic exactly (+ - * / // % ** sqrt round …)",
            calculator, CalculatorArgs, surface="tool", label="Calculating"),
)
