"""Slack files into the knowledge base: which shared files to ingest, and how to get them.

Files shared with "ingest" (to the bot) or in a channel the tenant designates go to the
knowledge base; ``/switchboard ingest <file link>`` names one by its link or ``F…`` id.
Slack files are private: they are downloaded with the bot token, which is sent only to
Slack's own hosts, and never read past the tenant's size limit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.messages import Attachment, InboundMessage
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.slack")
FILE_ID = re.compile(r"(?:^|[/-])(F[A-Z0-9]{6,})(?:/|$)")


def wants_ingest(message: InboundMessage, event: dict[str, Any], tenant: TenantConfig) -> bool:
    if not message.attachments:
        return False
    asked = message.text.strip().lower().lstrip("/") == "ingest"
    return asked or event.get("channel") in tenant.slack.ingest_channels


async def shared_file(client: AsyncWebClient, file_id: str, token: str, tenant: TenantConfig,
                      api_url: str) -> Attachment | None:
    try:
        info = await client.files_info(file=file_id)
    except SlackApiError as exc:
        log.warning("files.info %s failed: %s", file_id, exc.response.get("error", ""),
                    extra={"tenant": tenant.id, "channel": "slack"})
        return None
    file = info.get("file") or {}
    return with_fetch(Attachment(
        name=str(file.get("name", file_id)),
        url=str(file.get("url_private_download") or file.get("url_private", "")),
        content_type=str(file.get("mimetype", "")), size=int(file.get("size", 0))),
        token, tenant.knowledge.max_file_mb, api_url)


def with_fetch(attachment: Attachment, token: str, max_mb: int, api_url: str) -> Attachment:
    url = attachment.url
    host = urlsplit(url).hostname or ""
    trusted = host == "slack.com" or host.endswith(".slack.com") or \
        host == urlsplit(api_url).hostname
    limit = max_mb * 1024 * 1024

    async def fetch() -> bytes:
        if not trusted:
            raise ValueError(f"not a Slack file URL: {host}")
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
                url, headers={"Authorization": f"Bearer {token}"}) as response:
            response.raise_for_status()
            content = await response.content.read(limit + 1)
        if len(content) > limit:
            raise ValueError(f"larger than {max_mb} MB")
        return content

    return replace(attachment, fetch=fetch)
