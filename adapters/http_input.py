"""Reading untrusted HTTP bodies: every way a body can be wrong becomes a clear 4xx.

Handlers never call ``request.json()`` or ``request.text()``: those honour whatever
charset the client declares (an unknown one raises ``LookupError``), decode invalid
UTF-8 by raising, recurse without bound on nested JSON, and happily return a list or a
number where an object was expected — each of which used to surface as a 500. Here a
body is read as bytes (within the size limit), decoded as strict UTF-8 whatever the
header says, parsed with a depth limit, and required to be a JSON object; a failure
raises ``BadInput``, which ``input_errors`` renders as ``{"error": ...}`` with its
status.

``input_errors`` is also the last line: an exception no handler expected is logged once
with the request id and answered with a plain JSON 500 that reveals nothing of the
server, and a client that hangs up mid-body is logged at info, without a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

log = logging.getLogger("switchboard.web")

MAX_JSON_DEPTH = 64
MAX_BODY_BYTES = 1 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadInput(Exception):
    """A request the client must fix; ``status`` is a 4xx."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


async def read_bytes(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, at most ``limit`` bytes. A declared ``Content-Length`` over the
    limit is refused at once, without waiting for a body that may never come."""
    if request.content_length is not None and request.content_length > limit:
        raise BadInput(413, f"request body too large (the limit is {limit} bytes)")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadInput(413, "request body too large") from None
    except ConnectionError as exc:
        raise _ClientGone() from exc


def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(400, f"the body is not valid UTF-8 (byte {exc.start})") from None


def _depth(value: object) -> int:
    """How deeply a parsed JSON value nests; walks containers, not characters, so it
    costs little next to the parse itself."""
    deepest, level = 0, [value]
    while level:
        deepest += 1
        level = [child for v in level if isinstance(v, dict | list)
                 for child in (v.values() if isinstance(v, dict) else v)]
    return deepest - 1


def parse_json_object(text: str, what: str = "the body") -> dict[str, Any]:
    """A JSON object, or ``BadInput`` saying what is wrong with it. Nesting beyond
    ``MAX_JSON_DEPTH`` is refused; nesting deep enough to exhaust the parser's recursion
    (``RecursionError``) is refused with the same message."""
    too_deep = BadInput(400, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
        raise BadInput(400, f"{what} is not valid JSON: {detail}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(value, dict):
        raise BadInput(400, f"{what} must be a JSON object, not {type(value).__name__}")
    return value


async def read_json_object(request: web.Request) -> dict[str, Any]:
    return parse_json_object(decode_utf8(await read_bytes(request)))


def header_bytes(value: str) -> bytes:
    """Untrusted text (a header, a token from a JSON body) as bytes that
    ``hmac.compare_digest`` accepts. Any surrogate is encoded rather than refused:
    aiohttp decodes undecodable header bytes to surrogates, and JSON can carry lone
    ones (``"\\ud800"``), either of which made ``str.encode`` raise."""
    return value.encode("utf-8", "surrogatepass")


def bearer_token(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer …`` header, or "" without one."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


class _ClientGone(Exception):
    """The client closed the connection before its body arrived."""


@web.middleware
async def input_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadInput as exc:
        return web.json_response({"error": exc.message, **exc.extra}, status=exc.status)
    except _ClientGone:
        log.info("client went away before sending its body", extra={"path": request.path})
        return web.json_response({"error": "incomplete request"}, status=400)
    except ConnectionResetError:
        log.info("client went away mid-response", extra={"path": request.path})
        return web.Response(status=499)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            raise  # the connection is no longer HTTP; aiohttp closes it
        return web.json_response({"error": "internal error; it was logged"}, status=500)


class QuietProtocolErrors(logging.Filter):
    """aiohttp logs a malformed request line or header, and a peer that resets the
    connection, at error level with a traceback; both are the client's doing. They are
    kept as one warning line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage | ConnectionResetError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: " \
                         f"{str(exc).splitlines()[0] if str(exc) else ''}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_filter() -> None:
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietProtocolErrors) for f in logger.filters):
            logger.addFilter(QuietProtocolErrors())
