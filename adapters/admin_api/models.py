"""Request and response bodies of the admin API. Unknown fields are rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,199}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InlineDocument(_Body):
    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=2_000_000, description="Markdown or plain text")
    source: str | None = Field(None, pattern=_NAME,
                               description="stable name; re-posting it replaces the document")


class UploadForm(_Body):
    """The form fields beside the ``file`` parts of ``POST …/files``."""

    tags: list[str] = Field(default_factory=list, max_length=20)
    kb: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$")


class IngestRequest(_Body):
    urls: list[HttpUrl] = Field(default_factory=list, max_length=20)
    documents: list[InlineDocument] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=20)
    kb: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$")

    @model_validator(mode="after")
    def _something_to_ingest(self) -> IngestRequest:
        if not self.urls and not self.documents:
            raise ValueError("give at least one of `urls` or `documents`")
        return self


class Outcome(_Body):
    source: str
    status: str
    chunks: int
    reason: str = ""
    doc_id: str = ""


class IngestResponse(_Body):
    summary: dict[str, int]
    outcomes: list[Outcome]


class DocumentOut(_Body):
    doc_id: str
    kb: str
    source: str
    title: str
    url: str
    chunks: int
    tags: list[str]
    ingested_at: datetime


class DocumentList(_Body):
    documents: list[DocumentOut]


class SearchFiltersIn(_Body):
    sources: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=20)


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=2000)
    filters: SearchFiltersIn | None = None
    top_k: int | None = Field(None, ge=1, le=50)


class SourceOut(_Body):
    number: int
    title: str
    source: str
    url: str
    snippet: str


class SearchResponse(_Body):
    answer: str
    sources: list[SourceOut]
    confidence: float
    follow_ups: list[str]


class AnalyzeRequest(_Body):
    """Text to turn into JSON, and the schema it must validate against: one of the named
    schemas (``schema_name``) or an inline JSON Schema (``json_schema``)."""

    text: str = Field(min_length=1, max_length=50_000)
    schema_name: str | None = Field(None, pattern=r"^[a-z_]{1,32}$")
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    repairs: int = Field(2, ge=0, le=5, description="attempts after the first that feed "
                                                    "the validation errors back")

    @model_validator(mode="after")
    def _one_schema(self) -> AnalyzeRequest:
        if (self.schema_name is None) == (self.json_schema is None):
            raise ValueError("give exactly one of schema_name and schema")
        return self


class AnalyzeResponse(_Body):
    data: Any
    attempts: int
    tokens: int


class ErrorOut(_Body):
    error: str
    details: list[dict[str, object]] | None = None
