"""Pydantic models for ``tenants/<id>.toml``.

Field names follow the interface contract. Every model forbids unknown keys so a typo is
reported with its file and field instead of being silently ignored. Secrets never live
here: fields ending in ``_env`` name an environment variable.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _env_name(value: str) -> str:
    if value and not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the NAME of an environment variable (A-Z, 0-9, _), never the secret itself"
        )
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Persona(_Section):
    system_prompt: str = "You are a helpful assistant. Answer from the provided sources."
    greeting: str = "Hi! Ask me anything."


class LLMSettings(_Section):
    model: str = "gpt-4o-mini"
    fallback_models: list[str] = []
    monthly_token_budget: int = Field(2_000_000, ge=0, description="0 disables the LLM")
    max_output_tokens: int = Field(800, gt=0, le=32_000)
    temperature: float = Field(0.2, ge=0, le=2)
    timeout_s: float = Field(30.0, gt=0, le=600, description="per attempt, whole stream")
    answer_budget_s: float = Field(
        45.0, gt=0, le=900,
        description="one answer's total time across attempts and fallback models; then "
        "the user gets an apology")
    max_attempts: int = Field(3, ge=1, le=6, description="per model, on 429/5xx/timeouts")
    price_input_per_mtok: float | None = Field(None, ge=0, description="USD; default table")
    price_output_per_mtok: float | None = Field(None, ge=0, description="USD; default table")


class Limits(_Section):
    user_per_minute: int = Field(10, gt=0)
    tenant_per_minute: int = Field(600, gt=0)
    when_state_down: Literal["local", "open", "closed"] = Field(
        "local", description="while Redis is unreachable: per-process buckets (local), "
        "no limits (open), or refuse new messages (closed)")


class KnowledgeSource(_Section):
    path: str = Field(min_length=1, description="relative path, folder, URL or URL list")
    schedule: str = Field("", description="cron expression for re-ingestion; empty = never")
    kb: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$")
    url_base: HttpUrl | None = Field(
        None, description="web address of this folder (e.g. the repository's web view): "
                          "citations of its files link there")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if value:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"not a valid cron expression: {exc}") from None
        return value


class Knowledge(_Section):
    embedder: str = Field("all-MiniLM-L6-v2", pattern=r"^(all-MiniLM-L6-v2|openai:[\w.-]+)$",
                          description="all-MiniLM-L6-v2 (offline) or openai:<model>")
    embedding_dimension: int | None = Field(None, gt=0, le=8192,
                                            description="for openai:<model> embedders")
    chunk_tokens: int = Field(350, ge=32, le=4000)
    chunk_overlap: int = Field(50, ge=0, le=1000)
    top_k: int = Field(6, ge=1, le=50)
    score_threshold: float = Field(0.25, ge=0, le=1)
    sources: list[KnowledgeSource] = []
    context_tokens: int = Field(1500, ge=100, le=100_000,
                                description="token budget of the passages sent to the model")
    allow_private_urls: bool = Field(
        False, description="allow ingesting URLs on private, loopback or link-local addresses")
    max_file_mb: int = Field(20, ge=1, le=500)
    hybrid_alpha: float = Field(0.5, ge=0, le=1,
                                description="weight of dense vs sparse scores in fusion")

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> Knowledge:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return self


class Sessions(_Section):
    retention_days: int = Field(90, ge=1, le=3650)
    history_turns: int = Field(20, ge=0, le=200, description="messages loaded per turn")
    history_tokens: int = Field(2000, ge=0, le=100_000, description="token budget of history")


class Admins(_Section):
    slack: list[str] = []
    discord: list[str] = []
    widget: list[str] = []
    terminal: list[str] = Field(
        default_factory=list,
        description="terminal users who are admins; the local operator always is",
    )


class SlackBinding(_Section):
    team_ids: list[str] = []
    bot_token_env: EnvName = ""
    signing_secret_env: EnvName = ""
    allowed_channels: list[str] = Field(
        default_factory=list, description="channel ids the bot answers in; empty = all")
    mentions_only: bool = Field(
        False, description="answer only when mentioned, also inside threads")
    answer_dms: bool = True
    ingest_channels: list[str] = Field(
        default_factory=list,
        description="channel ids where files shared by an admin are ingested")
    external_users: Literal["ignore", "answer"] = Field(
        "ignore", description="Slack Connect: whether people from other organizations in "
        "a shared channel are answered (never as admins)")


class DiscordBinding(_Section):
    guild_ids: list[Annotated[str, Field(pattern=r"^\d{5,25}$")]] = []
    admin_role_ids: list[str] = []
    bot_token_env: EnvName = Field(
        "", description="this tenant's own bot token; empty = the shared DISCORD_BOT_TOKEN")
    channel_ids: list[str] = Field(
        default_factory=list, description="channels where every message is answered")
    open_threads: bool = Field(
        True, description="answer a mention in a channel in a new thread (the session)")
    answer_dms: bool = True


class WidgetBinding(_Section):
    public_key: str = Field("", pattern=r"^(|pk_[A-Za-z0-9_]{4,64})$")
    secret_env: EnvName = ""
    allowed_origins: list[HttpUrl] = []
    title: str = "Assistant"
    accent_color: str = Field("#4f46e5", pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    avatar_url: HttpUrl | None = Field(None, description="image shown beside answers")
    allow_own_origin: bool = Field(
        False, description="also accept pages served by Switchboard itself (the demo page)")
    ip_per_minute: int = Field(30, ge=1, description="messages per minute from one IP")
    max_message_chars: int = Field(2000, ge=1, le=20000)


class AdminApi(_Section):
    key_env: EnvName = Field(
        "", description="environment variable holding this tenant's admin API key")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Digest(_Section):
    """Where the tenant's admins get the weekly digest (usage, cost, top knowledge gaps,
    feedback) and the daily deployment-drift notice, if anything drifted."""

    slack_channel: str = Field("", pattern=r"^(|[CDG][A-Z0-9]{6,20})$",
                               description="Slack channel id (posted with the tenant's bot)")
    discord_channel_id: str = Field("", pattern=r"^(|\d{15,21})$",
                                    description="Discord channel id")
    weekday: Weekday = "mon"
    hour: int = Field(9, ge=0, le=23, description="UTC hour of the weekly digest")
    drift_check: bool = Field(True, description="post when the daily drift check finds any")

    @property
    def configured(self) -> bool:
        return bool(self.slack_channel or self.discord_channel_id)


class Commands(_Section):
    enabled: list[str] | Literal["all"] = "all"
    slack_command: str = Field("/switchboard", pattern=r"^/[a-z0-9_-]{1,31}$")


DEFAULT_TOOLS = ("search_knowledge", "summarize_thread", "extract_entities",
                 "classify_intent", "calculator")
"""Tools offered when a tenant names none: the built-ins that read and compute. Every
offered tool's schema is sent with every model call, so commands written for people
(``sources``, ``stats``, ``help`` …) are offered only when listed; tools that change
something (``ingest_url``, ``tag_document``, ``forget``, ``reload``) must be listed
explicitly, and admin tools are offered to admins only."""


class Tools(_Section):
    """Tool calling: which of the tenant's commands and built-in tools the model may be
    offered, and the bounds of the agent loop."""

    enabled: bool = Field(True, description="offer tools when the model supports them")
    allow: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]] = Field(
        list(DEFAULT_TOOLS), description="tools the model may be offered (by name)")
    max_steps: int = Field(5, ge=1, le=20, description="model calls per turn")
    max_calls_per_step: int = Field(4, ge=1, le=16)
    budget_s: float = Field(60.0, gt=0, le=600, description="the whole loop, every step")
    token_budget: int = Field(20_000, ge=500, le=1_000_000, description="tokens per turn")
    max_result_chars: int = Field(4000, ge=200, le=50_000,
                                  description="a tool's result as the model sees it")

    def allows(self, name: str) -> bool:
        return self.enabled and name in self.allow


PiiAction = Literal["redact", "refuse", "allow"]


class Safety(_Section):
    """What a message may contain before it is stored or sent to a model."""

    pii_action: PiiAction = Field(
        "redact", description="e-mail addresses, phone numbers, card numbers (Luhn), "
                              "IBANs and API keys in a message: redact them before "
                              "storing and before the model, refuse the message, or allow")
    blocked_terms: list[Annotated[str, Field(min_length=2, max_length=200)]] = Field(
        default_factory=list, max_length=500,
        description="words or phrases (case-insensitive, whole words) a message may not "
                    "contain")
    blocked_patterns: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=100,
        description="regular expressions (Python syntax) a message may not match")
    max_message_chars: int = Field(
        8000, ge=100, le=100_000,
        description="longer messages are refused before any model reads them (the widget "
                    "has its own, smaller limit)")
    blocked_reply: str = Field(
        "I can't help with that here.", min_length=1, max_length=1000,
        description="the reply to a message with a blocked term or pattern")
    allowed_link_domains: list[Annotated[str, Field(pattern=r"^[a-z0-9.-]{1,253}$")]] = Field(
        default_factory=list, max_length=200,
        description="hosts (and their subdomains) an answer may link to or show images "
                    "from; links elsewhere lose their address")
    grounded_only: bool = Field(
        False, description="answer only from the tenant's documents: an answer that cites "
                           "no passage is replaced with 'I found no source for that'")
    moderation: bool = Field(
        False, description="also ask the model provider's moderation endpoint "
                           "(omni-moderation) about each message and each answer; answers "
                           "are then shown whole once checked instead of streamed. Needs "
                           "OPENAI_API_KEY; when the endpoint fails, text goes through")

    @field_validator("blocked_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class TenantConfig(_Section):
    """One tenant. ``id`` must equal the file name without ``.toml``."""

    id: str = Field(pattern=_TENANT_ID)
    name: str = Field(min_length=1)
    persona: Persona = Persona()
    llm: LLMSettings = LLMSettings()
    limits: Limits = Limits()
    knowledge: Knowledge = Knowledge()
    sessions: Sessions = Sessions()
    admins: Admins = Admins()
    slack: SlackBinding = SlackBinding()
    discord: DiscordBinding = DiscordBinding()
    widget: WidgetBinding = WidgetBinding()
    commands: Commands = Commands()
    tools: Tools = Tools()
    api: AdminApi = AdminApi()
    safety: Safety = Safety()
    digest: Digest = Digest()

    def admin_ids(self, channel: str) -> frozenset[str]:
        return frozenset(getattr(self.admins, channel, ()) or ())

    def command_enabled(self, name: str) -> bool:
        return self.commands.enabled == "all" or name in self.commands.enabled
