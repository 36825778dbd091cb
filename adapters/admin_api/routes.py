"""The admin API's HTTP handlers: authenticate the tenant, validate, call the core.

A request names its tenant in the path and proves it with that tenant's own key
(``Authorization: Bearer``), compared in constant time. An unknown tenant and a wrong key
get the same 401, so the API does not reveal which tenants exist. Every body is a
pydantic model; malformed JSON is a 400, an invalid body a 422 with the field errors.
POSTs honour ``Idempotency-Key`` (processed once; a key reused for another body is a
409).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from adapters.admin_api import models as m
from adapters.admin_api.openapi import openapi_document
from adapters.http_input import BadInput, bearer_token, header_bytes, read_json_object
from core.engine import (
    Engine,
    FileDocument,
    IngestReport,
    KeptResponse,
    KnowledgeUnavailable,
    SchemaProblem,
    SearchFilters,
    TextDocument,
    UnknownTenant,
)
from core.tenants.models import TenantConfig
from observability import metrics
from observability.logging import log_context

log = logging.getLogger("switchboard.api")

Body = TypeVar("Body", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, details: list[dict[str, object]] | None = None
           ) -> web.Response:
    return web.json_response(m.ErrorOut(error=message, details=details).model_dump(
        exclude_none=True), status=status)


def _ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status,
                        content_type="application/json")


class ApiError(Exception):
    def __init__(self, status: int, message: str,
                 details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under /api/ is JSON, including aiohttp's own (404, 405, 413)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.details)
    except BadInput as exc:
        return _error(exc.status, exc.message)
    except KnowledgeUnavailable as exc:
        return _error(503, str(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        message = "request body too large" if exc.status == 413 else exc.reason
        return _error(exc.status, message)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``switchboard_admin_api_requests_total`` by route pattern (never the tenant's id
    or a document's), method and status."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.ADMIN_API_REQUESTS.labels(route, request.method, str(status)).inc()


MAX_UPLOAD_FILES = 20


def _problems(exc: ValidationError) -> list[dict[str, object]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_url=False)]


def _ingest_response(report: IngestReport) -> m.IngestResponse:
    return m.IngestResponse(summary=report.summary(), outcomes=[
        m.Outcome(source=o.source, status=o.status, chunks=o.chunks, reason=o.reason,
                  doc_id=o.doc_id) for o in report.outcomes])


async def _read_upload(request: web.Request, max_file_mb: int
                       ) -> tuple[list[FileDocument], tuple[str, ...], str]:
    """The uploaded files, read part by part with the tenant's size limit per file (the
    JSON body limit does not apply to uploads)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send the files as multipart/form-data, one 'file' part each "
                            "(curl -F file=@handbook.pdf)")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    limit = max_file_mb * 1024 * 1024
    files: list[FileDocument] = []
    fields: dict[str, object] = {}
    try:
        await _read_parts(reader, limit, max_file_mb, files, fields)
    except (HttpProcessingError, ValueError) as exc:
        raise ApiError(400, f"malformed multipart body: {type(exc).__name__}") from None
    if not files:
        raise ApiError(400, "no 'file' part in the form (curl -F file=@handbook.pdf)")
    try:
        form = m.UploadForm.model_validate(fields)
    except ValidationError as exc:
        raise ApiError(422, "invalid form field", _problems(exc)) from None
    return files, tuple(form.tags), form.kb


async def _read_parts(reader: MultipartReader, limit: int, max_file_mb: int,
                      files: list[FileDocument], fields: dict[str, object]) -> None:
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "nested multipart bodies are not supported")
        if part.name == "file":
            if len(files) == MAX_UPLOAD_FILES:
                raise ApiError(413, f"at most {MAX_UPLOAD_FILES} files per request")
            name = PurePosixPath((part.filename or "").replace("\\", "/")).name
            if not name:
                raise ApiError(400, "each 'file' part needs a file name")
            content = bytearray()
            while chunk := await part.read_chunk(1 << 16):
                content += chunk
                if len(content) > limit:
                    raise ApiError(413, f"{name} is over this tenant's {max_file_mb} MB "
                                        "limit (knowledge.max_file_mb)")
            files.append(FileDocument(name, bytes(content),
                                      part.headers.get("Content-Type", "")))
        elif part.name == "tags":
            fields["tags"] = [t.strip() for t in (await _text(part)).split(",") if t.strip()]
        elif part.name == "kb":
            fields["kb"] = (await _text(part)).strip() or "default"
        else:
            raise ApiError(400, f"unknown form field {part.name!r}: expected file, tags or kb")


async def _text(part: BodyPartReader) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(4096):
        raw += chunk
        if len(raw) > 4096:
            raise ApiError(413, f"the form field {part.name!r} is over 4 KB")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ApiError(400, f"the form field {part.name!r} is not UTF-8 text") from None


def _refusal(tenant: TenantConfig, expected: str, given: str | None) -> str:
    if not tenant.api.key_env:
        return ("this tenant has no admin API key: set [api] key_env in its tenant file to "
                "the name of an environment variable holding the key")
    if not expected:
        return (f"the environment variable {tenant.api.key_env} named by [api] key_env is "
                "not set in this process")
    if not given:
        return "no Authorization: Bearer header"
    return "wrong key"


class AdminApi:
    """Handlers over the engine's interface, looked up per request (the engine is opened
    after the routes are registered, in the web app's startup)."""

    def __init__(self, resolve: Callable[[], Engine]) -> None:
        self._resolve = resolve

    @property
    def _engine(self) -> Engine:
        return self._resolve()

    def register(self, app: web.Application) -> None:
        app.middlewares.append(count_requests)
        app.middlewares.append(json_errors)
        app.router.add_get("/api/v1/openapi.json", self.openapi)
        base = "/api/v1/tenants/{tenant}"
        app.router.add_get(f"{base}/documents", self.list_documents)
        app.router.add_post(f"{base}/documents", self._idempotent(self.ingest))
        app.router.add_post(f"{base}/files", self.upload)  # re-uploading is idempotent
        app.router.add_delete(f"{base}/documents/{{doc_id}}", self.delete_document)
        app.router.add_post(f"{base}/search", self._idempotent(self.search))
        app.router.add_post(f"{base}/analyze", self._idempotent(self.analyze))

    def _idempotent(self, handler: Callable[[web.Request], Awaitable[web.Response]]
                    ) -> Handler:
        """``Idempotency-Key``: the same key and request get the first response again,
        processed once; the same key with another request is a 409. The key lives in the
        authenticated tenant's namespace, so it is checked only after the key is."""
        async def run(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("Idempotency-Key")
            if key is None:
                return await handler(request)
            if not 1 <= len(key) <= 255 or not key.isprintable():
                raise ApiError(400, "Idempotency-Key must be 1 to 255 printable characters")
            tenant = self._tenant(request)
            body = await request.read()
            fingerprint = hashlib.sha256(
                f"{request.method} {request.path}\n".encode() + body).hexdigest()

            async def first() -> KeptResponse:
                response = await handler(request)
                return KeptResponse(response.status, response.text or "",
                                    response.content_type)

            kept = await self._engine.once(tenant, key, fingerprint, first)
            answer = web.Response(status=kept.status, text=kept.body,
                                  content_type=kept.content_type)
            if kept.replayed:
                answer.headers["Idempotent-Replayed"] = "true"
            return answer
        return run

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    def _tenant(self, request: web.Request) -> TenantConfig:
        tenant_id = request.match_info["tenant"]
        given = bearer_token(request)
        try:
            tenant = self._engine.tenant(tenant_id)
        except UnknownTenant:
            log.warning("admin API request for unknown tenant", extra={"tenant": tenant_id})
            raise ApiError(401, "missing or wrong API key") from None
        expected = os.environ.get(tenant.api.key_env, "") if tenant.api.key_env else ""
        if not expected or not given or not hmac.compare_digest(header_bytes(given),
                                                                expected.encode()):
            # The answer is the same whatever the reason (it must not tell a caller
            # which tenants exist or have keys); the log tells the operator the reason.
            log.warning("admin API request refused: %s", _refusal(tenant, expected, given),
                        extra={"tenant": tenant_id})
            raise ApiError(401, "missing or wrong API key")
        return tenant

    @staticmethod
    async def _body(request: web.Request, model: type[Body]) -> Body:
        raw = await read_json_object(request)
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(422, "invalid request body", _problems(exc)) from None

    async def list_documents(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        records = await self._engine.documents(tenant)
        return _ok(m.DocumentList(documents=[m.DocumentOut(
            doc_id=r.doc_id, kb=r.kb, source=r.source, title=r.title, url=r.url,
            chunks=len(r.chunk_ids), tags=r.tags, ingested_at=r.ingested_at)
            for r in records]))

    async def ingest(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await self._body(request, m.IngestRequest)
        with log_context(tenant=tenant.id, channel="api"):
            report = await self._engine.ingest(
                tenant, [str(u) for u in body.urls],
                [TextDocument(d.title, d.text, d.source or "") for d in body.documents],
                body.kb, tuple(body.tags))
        return _ok(_ingest_response(report))

    async def upload(self, request: web.Request) -> web.Response:
        """``multipart/form-data``: ``file`` parts (PDF, DOCX, HTML, Markdown, text), and
        optional ``tags`` (comma-separated) and ``kb`` fields; the same per-file results
        as ``switchboard ingest``."""
        tenant = self._tenant(request)
        files, tags, kb = await _read_upload(request, tenant.knowledge.max_file_mb)
        with log_context(tenant=tenant.id, channel="api"):
            report = await self._engine.ingest_files(tenant, files, kb, tags)
        return _ok(_ingest_response(report))

    async def delete_document(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        doc_id = request.match_info["doc_id"]
        if await self._engine.remove_document(tenant, doc_id):
            return web.Response(status=204)
        return _error(404, f"no document {doc_id} in this tenant")

    async def search(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await self._body(request, m.SearchRequest)
        filters = SearchFilters(tuple(body.filters.sources), tuple(body.filters.tags)) \
            if body.filters else None
        with log_context(tenant=tenant.id, channel="api"):
            result = await self._engine.search(tenant, body.query, filters, body.top_k)
        if result.refused:
            return _error(503, f"no answer: {result.refused}")
        return _ok(m.SearchResponse(
            answer=result.answer, confidence=result.confidence,
            follow_ups=list(result.follow_ups),
            sources=[m.SourceOut(number=c.number, title=c.title, source=c.source, url=c.url,
                                 snippet=c.snippet) for c in result.citations]))


    async def analyze(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await self._body(request, m.AnalyzeRequest)
        with log_context(tenant=tenant.id, channel="api"):
            try:
                result = await self._engine.analyze(tenant, body.text, body.json_schema,
                                                    body.schema_name, body.repairs)
            except SchemaProblem as exc:
                return _error(422, str(exc))
        if result.outcome == "ok":
            return _ok(m.AnalyzeResponse(data=result.value, attempts=result.attempts,
                                         tokens=result.usage.total_tokens))
        if result.outcome == "invalid":
            return _error(422, f"the model's output did not validate after "
                               f"{result.attempts} attempts",
                          [{"field": e.split(": ", 1)[0], "problem": e.split(": ", 1)[-1]}
                           for e in result.errors])
        if result.outcome == "unsupported":
            return _error(422, "structured output needs a language model: set "
                               "OPENAI_API_KEY (the offline answerer cannot do it)")
        if result.outcome == "budget_exhausted":
            return _error(429, "this tenant's monthly token budget is used up")
        return _error(503, "no answer from the language model; try again")
