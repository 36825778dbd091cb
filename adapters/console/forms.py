"""Reading what the console's pages are sent: query parameters, posted forms, uploads.

A form is read whole (64 KB at most) as strict UTF-8 before anything answers, since a
refusal sent while a body is still arriving resets the connection; anything that is not
a readable form is a clear 4xx. Uploads are read part by part within the tenant's size
limit per file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from adapters.http_input import BadInput, decode_utf8, read_bytes
from core.engine import FileDocument, IngestReport


def days(request: web.Request, default: int) -> int:
    raw = request.query.get("days", "")
    return min(max(int(raw), 1), 90) if raw.isdigit() else default


def count(report: IngestReport, *statuses: str) -> int:
    return sum(1 for o in report.outcomes if o.status in statuses)


async def form(request: web.Request) -> Mapping[str, str]:
    """A posted form's fields. The whole body is read first (a refusal sent while a body
    is still arriving resets the connection), as strict UTF-8; anything that is not a
    readable form is a clear 4xx."""
    raw = await read_bytes(request, 64 * 1024)
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadInput(415, "the console takes HTML form posts only")
    try:
        return dict(parse_qsl(decode_utf8(raw), keep_blank_values=True, max_num_fields=50))
    except ValueError:
        raise BadInput(400, "malformed form") from None


async def form_csrf(request: web.Request) -> str:
    if request.content_type == "multipart/form-data":
        return ""  # the upload form sends its token in the query string
    return str((await form(request)).get("csrf", ""))


async def read_upload(request: web.Request, max_mb: int) -> tuple[list[FileDocument], str]:
    if not request.content_type.startswith("multipart/form-data"):
        raise web.HTTPUnsupportedMediaType(text="send the form as multipart/form-data")
    reader = await request.multipart()
    files: list[FileDocument] = []
    url = ""
    limit = max_mb * 1024 * 1024
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise web.HTTPBadRequest(text="nested multipart bodies are not supported")
        if part.name == "file" and part.filename:
            name = PurePosixPath(part.filename.replace("\\", "/")).name
            content = bytearray()
            while chunk := await part.read_chunk(1 << 16):
                content += chunk
                if len(content) > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit,
                                                        actual_size=len(content))
            if name and content:
                files.append(FileDocument(name, bytes(content),
                                          part.headers.get("Content-Type", "")))
        elif part.name == "url":
            url = (await part.text()).strip()[:2000]
        else:
            await part.release()
    if url and not url.startswith(("http://", "https://")):
        raise web.HTTPBadRequest(text="the URL must start with http:// or https://")
    return files, url

