"""The OpenAPI 3.1 document of the admin API, built from the pydantic body models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from adapters.admin_api import models as m

_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "malformed JSON or form", 401: "missing or wrong API key", 404: "not found",
               409: "Idempotency-Key reused for another request", 413: "body too large",
               422: "invalid body, a schema that cannot be used, output that did not "
                    "validate, or no language model configured",
               415: "not multipart/form-data", 429: "token budget used up",
               503: "a dependency failed"}
    return {str(c): {"description": reasons[c], **_json(m.ErrorOut)} for c in codes}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (m.IngestRequest, m.IngestResponse, m.DocumentList, m.SearchRequest,
                  m.SearchResponse, m.AnalyzeRequest, m.AnalyzeResponse, m.ErrorOut):
        schema = model.model_json_schema(ref_template=_REF, by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    tenant = {"name": "tenant", "in": "path", "required": True, "schema": {"type": "string"}}
    doc = {"name": "doc_id", "in": "path", "required": True, "schema": {"type": "string"}}
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "description": "process this POST at most once; a retry with the same key "
                           "and body gets the first response",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard admin API", "version": "1",
                 "description": "Per-tenant knowledge administration. Authenticate with "
                                "`Authorization: Bearer <key>`, the key held in the "
                                "environment variable the tenant file names in "
                                "`api.key_env`."},
        "components": {"schemas": schemas, "securitySchemes": {
            "tenantKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"tenantKey": []}],
        "paths": {
            "/api/v1/tenants/{tenant}/documents": {
                "parameters": [tenant],
                "get": {"summary": "List the tenant's documents", "responses": {
                    "200": {"description": "documents", **_json(m.DocumentList)},
                    **_errors(401, 503)}},
                "post": {"summary": "Ingest URLs and inline documents", "parameters": [idem],
                         "requestBody": {"required": True, **_json(m.IngestRequest)},
                         "responses": {"200": {"description": "what happened to each source",
                                               **_json(m.IngestResponse)},
                                       **_errors(400, 401, 409, 413, 422, 503)}}},
            "/api/v1/tenants/{tenant}/files": {
                "parameters": [tenant],
                "post": {"summary": "Upload files (PDF, DOCX, HTML, Markdown, text)",
                         "requestBody": {"required": True, "content": {
                             "multipart/form-data": {"schema": {
                                 "type": "object", "required": ["file"], "properties": {
                                     "file": {"type": "array", "maxItems": 20, "items": {
                                         "type": "string", "format": "binary"}},
                                     "tags": {"type": "string",
                                              "description": "comma-separated tags"},
                                     "kb": {"type": "string",
                                            "pattern": "^[a-z0-9_-]{1,32}$"}}}}}},
                         "responses": {"200": {"description": "what happened to each file",
                                               **_json(m.IngestResponse)},
                                       **_errors(400, 401, 413, 415, 422, 503)}}},
            "/api/v1/tenants/{tenant}/documents/{doc_id}": {
                "parameters": [tenant, doc],
                "delete": {"summary": "Remove a document, its chunks and vectors",
                           "responses": {"204": {"description": "removed"},
                                         **_errors(401, 404, 503)}}},
            "/api/v1/tenants/{tenant}/search": {
                "parameters": [tenant],
                "post": {"summary": "Answer a question from the tenant's knowledge",
                         "parameters": [idem],
                         "requestBody": {"required": True, **_json(m.SearchRequest)},
                         "responses": {"200": {"description": "a grounded answer",
                                               **_json(m.SearchResponse)},
                                       **_errors(400, 401, 409, 413, 422, 503)}}},
            "/api/v1/tenants/{tenant}/analyze": {
                "parameters": [tenant],
                "post": {"summary": "Turn text into JSON that validates against a schema",
                         "parameters": [idem],
                         "requestBody": {"required": True, **_json(m.AnalyzeRequest)},
                         "responses": {"200": {"description": "JSON that validates",
                                               **_json(m.AnalyzeResponse)},
                                       **_errors(400, 401, 409, 413, 422, 429, 503)}}},
        },
    }
