"""Structured output and ``Idempotency-Key`` on the admin API, against a real
``switchboard serve`` and the stand-in model (which writes what each test scripts)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI, Plan, start_fake_openai
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
KEY = "acme-admin-key-for-analyze"
OTHER_KEY = "globex-admin-key-for-analyze"


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    _, runner = await start_fake_openai(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture(scope="module")
async def api(model: FakeOpenAI, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[str]:
    home = tmp_path_factory.mktemp("analyze")
    tenants = home / "tenants"
    tenants.mkdir()
    for tenant_id in ("acme", "globex"):
        (tenants / f"{tenant_id}.toml").write_text(
            f'id = "{tenant_id}"\nname = "{tenant_id.title()}"\n'
            f'[api]\nkey_env = "{tenant_id.upper()}_API_KEY"\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/analyze_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.url,
           "ACME_API_KEY": KEY, "GLOBEX_API_KEY": OTHER_KEY}
    base, process = await asyncio.to_thread(start_switchboard, env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    await asyncio.to_thread(process.wait, 30)


@pytest.fixture
def scripted(model: FakeOpenAI) -> AsyncIterator[FakeOpenAI]:
    model.reset()
    yield model  # type: ignore[misc]
    model.reset()


async def post(url: str, body: Any, key: str = KEY, headers: dict[str, str] | None = None
               ) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(
            url, json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    ) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None, dict(response.headers)


INVOICE = {"type": "object", "additionalProperties": False,
           "required": ["customer", "total"],
           "properties": {"customer": {"type": "string"},
                          "total": {"type": "number", "minimum": 0}}}


def replies(*texts: str) -> Any:
    """The model's successive replies within one request (first try, then repairs)."""
    def script(body: dict[str, Any], step: int) -> Plan:
        attempt = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return Plan(texts[min(attempt, len(texts) - 1)])
    return script


async def test_an_inline_schema_is_repaired_with_the_validation_errors(
        api: str, scripted: FakeOpenAI) -> None:
    scripted.script = replies("Sure! Here it is: {customer: Ada}",
                              '{"customer": "Ada", "total": "12"}',
                              '```json\n{"customer": "Ada Lovelace", "total": 12.5}\n```')
    status, body, _ = await post(f"{api}/api/v1/tenants/acme/analyze",
                                 {"text": "Invoice for Ada Lovelace, 12.50 EUR",
                                  "schema": INVOICE})
    assert status == 200, body
    assert body["data"] == {"customer": "Ada Lovelace", "total": 12.5} and body["attempts"] == 3
    last = scripted.requests[-1]["messages"]
    assert "not JSON" in last[3]["content"] and "total" in last[5]["content"]
    assert "is not of type" in last[5]["content"]


async def test_still_invalid_after_the_repairs_is_a_clear_422(
        api: str, scripted: FakeOpenAI) -> None:
    scripted.script = replies('{"customer": 7}')
    status, body, _ = await post(f"{api}/api/v1/tenants/acme/analyze",
                                 {"text": "x", "schema": INVOICE, "repairs": 1})
    assert status == 422 and "after 2 attempts" in body["error"]
    assert {d["field"] for d in body["details"]} >= {"customer", "(root)"}
    assert len(scripted.requests) == 2


async def test_named_schemas_and_unusable_schemas(api: str, scripted: FakeOpenAI) -> None:
    scripted.script = replies('{"intent": "complaint", "confidence": 0.9}')
    status, body, _ = await post(f"{api}/api/v1/tenants/acme/analyze",
                                 {"text": "My parcel is broken!", "schema_name": "intent"})
    assert status == 200 and body["data"]["intent"] == "complaint"
    for bad, expected in (({"schema_name": "nope"}, "no schema named"),
                          ({"schema": {"type": "nope"}}, "not a valid JSON Schema"),
                          ({"schema": {"$ref": "http://169.254.169.254/latest"}},
                           "may not reference"),
                          ({"schema": INVOICE, "schema_name": "intent"}, "exactly one")):
        status, body, _ = await post(f"{api}/api/v1/tenants/acme/analyze",
                                     {"text": "x", **bad})
        assert status == 422 and expected in json.dumps(body), body


async def test_an_idempotency_key_processes_a_post_once(api: str,
                                                        scripted: FakeOpenAI) -> None:
    url = f"{api}/api/v1/tenants/acme/documents"
    doc = {"documents": [{"title": "Hours", "source": f"hours-{uuid.uuid4().hex[:6]}",
                          "text": "# Hours\n\nOpen 9 to 5."}]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    results = await asyncio.gather(*(post(url, doc, headers=key) for _ in range(5)))
    assert [r[0] for r in results] == [200] * 5
    assert all(r[1] == results[0][1] for r in results)
    assert results[0][1]["summary"]["added"] == 1  # the one run: added, not "unchanged"
    assert sum(r[2].get("Idempotent-Replayed") == "true" for r in results) == 4
    other = {"documents": [{**doc["documents"][0], "text": "# Hours\n\nOpen 8 to 4."}]}
    status, body, _ = await post(url, other, headers=key)
    assert status == 409 and "different request" in body["error"]
    # Keys are per tenant: the same key is new for another tenant.
    status, body, _ = await post(f"{api}/api/v1/tenants/globex/documents", doc,
                                 key=OTHER_KEY, headers=key)
    assert status == 200 and body["summary"]["added"] == 1
    # No key, no replay: the same ingest again reports the document unchanged.
    status, body, _ = await post(url, doc)
    assert status == 200 and body["summary"]["unchanged"] == 1
    status, _, _ = await post(url, doc, key="wrong-key", headers=key)
    assert status == 401


async def test_a_bad_idempotency_key_is_a_400(api: str) -> None:
    status, body, _ = await post(f"{api}/api/v1/tenants/acme/search", {"query": "x"},
                                 headers={"Idempotency-Key": "x" * 300})
    assert status == 400 and "Idempotency-Key" in body["error"]
