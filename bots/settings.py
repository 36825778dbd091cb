"""Process settings from the environment (see .env.example). Read once, at start."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SECRET_VARIABLES = (
    "OPENAI_API_KEY", "QDRANT_API_KEY", "SLACK_SIGNING_SECRET", "SLACK_CLIENT_SECRET",
    "SLACK_TOKEN_ENCRYPTION_KEY", "DISCORD_BOT_TOKEN", "SWITCHBOARD_OPERATOR_TOKEN",
)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    mongodb_uri: str = ""
    redis_url: str = ""
    redis_max_connections: int = Field(64, ge=1, le=10_000)
    redis_pool_timeout_s: float = Field(10.0, gt=0, le=300)
    journal_fsync: bool = False
    operator_token: str = ""
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    tenants_dir: Path = Path("tenants")
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    slack_api_url: str = "https://slack.com/api/"
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = ""
    public_url: str = ""
    """Where the public reaches ``serve`` (https://…): cited files link to their source
    page there in every channel. Unset: only the widget links them (under its origin)."""
    tenant_watch_interval_s: float = Field(2.0, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(name, "").strip() or default

        return cls(
            mongodb_uri=get("MONGODB_URI"), redis_url=get("REDIS_URL"),
            redis_max_connections=int(get("REDIS_MAX_CONNECTIONS", "64")),
            redis_pool_timeout_s=float(get("REDIS_POOL_TIMEOUT_S", "10")),
            journal_fsync=get("SWITCHBOARD_JOURNAL_FSYNC", "0").lower() in ("1", "true", "yes"),
            operator_token=get("SWITCHBOARD_OPERATOR_TOKEN"),
            qdrant_url=get("QDRANT_URL"), qdrant_api_key=get("QDRANT_API_KEY"),
            openai_api_key=get("OPENAI_API_KEY"), openai_base_url=get("OPENAI_BASE_URL"),
            tenants_dir=Path(get("SWITCHBOARD_TENANTS_DIR", "tenants")),
            data_dir=Path(get("SWITCHBOARD_DATA_DIR", "var")),
            log_level=get("LOG_LEVEL", "INFO"),
            # Console lines for a person at a terminal, JSON for a log collector.
            log_format="console" if get("LOG_FORMAT") == "console" or (
                not get("LOG_FORMAT") and sys.stderr.isatty()) else "json",
            slack_api_url=get("SLACK_API_URL", "https://slack.com/api/"),
            discord_api_url=get("DISCORD_API_URL", "https://discord.com/api/v10"),
            discord_gateway_url=get("DISCORD_GATEWAY_URL"),
            public_url=get("SWITCHBOARD_PUBLIC_URL").rstrip("/"),
        )

    def secrets(self, env: Mapping[str, str] | None = None) -> list[str]:
        env = os.environ if env is None else env
        return [env[name] for name in SECRET_VARIABLES if env.get(name)]
