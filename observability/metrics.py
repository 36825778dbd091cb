"""The Prometheus metrics operators watch. Defined once, on the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "switchboard_messages_total", "Inbound messages by outcome",
    ["tenant", "channel", "outcome"],
)
STAGE_SECONDS = Histogram(
    "switchboard_stage_seconds", "Time spent in each pipeline stage", ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TURN_SECONDS = Histogram(
    "switchboard_turn_seconds", "Whole-turn latency", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens_total", "LLM tokens used", ["tenant", "model", "kind"],
)
LLM_ERRORS = Counter(
    "switchboard_llm_errors_total", "LLM attempts that failed", ["model", "reason"],
)
RATE_LIMITED = Counter(
    "switchboard_rate_limited_total", "Messages refused by a rate limit",
    ["tenant", "channel", "scope"],
)
DEDUPE_HITS = Counter(
    "switchboard_dedupe_hits_total", "Redelivered messages dropped", ["tenant", "channel"],
)
UNKNOWN_TENANT = Counter(
    "switchboard_unknown_tenant_total", "Messages whose binding maps to no tenant", ["channel"],
)
BUDGET_REFUSED = Counter(
    "switchboard_budget_refused_total", "Turns refused for an exhausted token budget", ["tenant"],
)
PLATFORM_RATE_LIMITED = Counter(
    "switchboard_platform_rate_limited_total",
    "429 answers from a platform's API (the client retries after the wait it names)",
    ["platform", "route"],
)
DEGRADED = Gauge(
    "switchboard_dependency_degraded",
    "1 while a shared dependency is unreachable and the process serves without it",
    ["dependency"],
)
JOURNALED = Gauge(
    "switchboard_journal_pending_turns",
    "Accepted turns in this process's local journal not yet answered and stored",
)
RECOVERED = Counter(
    "switchboard_recovered_turns_total",
    "Turns finished from the local journal: replayed after a crash, or written back to "
    "MongoDB after an outage", ["how"],
)
TURN_EVENTS = Counter(
    "switchboard_turn_events_total", "Turn events sent towards channels, by type", ["type"],
)
TOOL_CALLS = Counter(
    "switchboard_tool_calls_total", "Tool calls the model made, by outcome",
    ["tenant", "tool", "outcome"],
)
AGENT_STEPS = Histogram(
    "switchboard_agent_steps", "Model steps per tool-using turn", ["tenant"],
    buckets=(1, 2, 3, 4, 5, 6, 8, 10),
)
SAFETY_EVENTS = Counter(
    "switchboard_safety_events_total",
    "Safety rules that matched a message, by rule and what was done (never the content)",
    ["tenant", "channel", "rule", "action"],
)
ANSWERS = Counter(
    "switchboard_answers_total",
    "Chat answers by grounding: cited (it names a source), no_source (nothing was found, "
    "or a grounded-only tenant got 'I found no source'), uncited (an answer citing nothing)",
    ["tenant", "channel", "grounding"],
)
FIRST_DELTA_SECONDS = Histogram(
    "switchboard_first_delta_seconds",
    "From a message's arrival to the first text of its answer on its way to the channel",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30),
)
SLACK_ACK_SECONDS = Histogram(
    "switchboard_slack_ack_seconds",
    "From a Slack request's arrival to its HTTP answer (Slack retries after 3 s)", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5),
)
COST_USD = Counter(
    "switchboard_llm_cost_usd_total", "Estimated LLM cost in US dollars", ["tenant", "model"],
)
ADMIN_API_REQUESTS = Counter(
    "switchboard_admin_api_requests_total", "Admin API requests by route and status",
    ["route", "method", "status"],
)
INGESTED_DOCUMENTS = Counter(
    "switchboard_ingested_documents_total",
    "Documents seen by ingestion, by outcome (added, replaced, unchanged, removed, failed)",
    ["tenant", "status"],
)
LAST_INGEST = Gauge(
    "switchboard_last_ingest_timestamp_seconds",
    "When the tenant's last ingestion run finished without a failed document (Unix time)",
    ["tenant"],
)
DIGEST_POSTS = Counter(
    "switchboard_digest_posts_total",
    "Scheduled posts to tenants' admin channels (weekly digest, drift check), by outcome",
    ["tenant", "job", "outcome"],
)
