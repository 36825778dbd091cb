"""The admin REST API against a real `switchboard serve`, as an operator's script uses it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"acme": "acme-admin-key-123456", "globex": "globex-admin-key-654321"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("api")
    tenants = home / "tenants"
    tenants.mkdir()
    for tenant_id in KEYS:
        (tenants / f"{tenant_id}.toml").write_text(
            f'id = "{tenant_id}"\nname = "{tenant_id.title()}"\n'
            f'[api]\nkey_env = "{tenant_id.upper()}_API_KEY"\n')
    (tenants / "nokey.toml").write_text('id = "nokey"\nname = "No key"\n')
    (tenants / "tiny.toml").write_text('id = "tiny"\nname = "Tiny"\n[knowledge]\n'
                                       'max_file_mb = 1\n[api]\nkey_env = "TINY_API_KEY"\n')
    (tenants / "unset.toml").write_text('id = "unset"\nname = "Unset"\n'
                                        '[api]\nkey_env = "UNSET_API_KEY"\n')
    SERVE_LOG.append(home / "serve.log")
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "TINY_API_KEY": TINY_KEY, **{f"{t.upper()}_API_KEY": k for t, k in KEYS.items()}}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    process.communicate(timeout=30)


SERVE_LOG: list[Path] = []
TINY_KEY = "tiny-admin-key-0123456789"


async def upload(url: str, key: str, *files: tuple[str, bytes], **fields: str
                 ) -> tuple[int, Any]:
    import aiohttp
    form = aiohttp.FormData(default_to_multipart=True)
    for name, content in files:
        form.add_field("file", content, filename=name)
    for name, value in fields.items():
        form.add_field(name, value)
    async with aiohttp.ClientSession() as http, http.post(
            url, data=form, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, await response.json()


async def test_files_are_uploaded_with_the_same_results_as_the_cli(api: str) -> None:
    from tests.documents import make_pdf
    base = f"{api}/api/v1/tenants/tiny"
    pdf = make_pdf(["Cover page of the handbook.",
                    "Night shifts are paid a 25 percent premium on the base rate."],
                   title="Staff handbook")
    status, body = await upload(f"{base}/files", TINY_KEY, ("handbook.pdf", pdf),
                                ("notes.md", b"# Notes\n\nThe canteen opens at 11:30."),
                                ("broken.pdf", b"%PDF-1.4 not really"), tags="staff")
    assert status == 200, body
    outcomes = {o["source"]: o for o in body["outcomes"]}
    assert outcomes["inline:handbook.pdf"]["status"] == "added"
    assert outcomes["inline:notes.md"]["status"] == "added"
    assert outcomes["inline:broken.pdf"]["status"] == "failed"
    assert outcomes["inline:broken.pdf"]["reason"].startswith("not a readable PDF")
    status, found = call("POST", f"{base}/search", {"query": "What premium do night shifts "
                                                    "get?"}, TINY_KEY)
    assert status == 200 and "25 percent" in found["answer"]
    assert found["sources"][0]["source"] == "inline:handbook.pdf"
    status, again = await upload(f"{base}/files", TINY_KEY, ("handbook.pdf", pdf),
                                 tags="staff")
    assert again["outcomes"][0]["status"] == "unchanged"
    status, listing = call("GET", f"{base}/documents", key=TINY_KEY)
    assert {d["source"]: d["tags"] for d in listing["documents"]
            if d["source"].startswith("inline:h")} == {"inline:handbook.pdf": ["staff"]}
    # what operators watch: requests by route pattern (no tenant id), ingestion outcomes
    async with aiohttp.ClientSession() as http, http.get(f"{api}/metrics") as response:
        exposed = await response.text()
    assert ('switchboard_admin_api_requests_total{method="POST",'
            'route="/api/v1/tenants/{tenant}/files",status="200"}') in exposed
    assert 'switchboard_ingested_documents_total{status="failed",tenant="tiny"}' in exposed
    assert 'switchboard_last_ingest_timestamp_seconds{tenant="tiny"}' in exposed


async def test_uploads_that_cannot_be_taken_get_a_clear_4xx(api: str) -> None:
    base = f"{api}/api/v1/tenants"
    status, body = await upload(f"{base}/tiny/files", TINY_KEY,
                                ("big.txt", b"word " * 300_000))
    assert status == 413 and "over this tenant's 1 MB limit" in body["error"]
    status, body = await upload(f"{base}/tiny/files", TINY_KEY, tags="a")
    assert status == 400 and "no 'file' part" in body["error"]
    status, body = await upload(f"{base}/tiny/files", TINY_KEY, ("a.md", b"# A\n\nText."),
                                kb="Not A Name")
    assert status == 422 and body["details"][0]["field"] == "kb"
    status, body = await upload(f"{base}/tiny/files", TINY_KEY, ("a.md", b"x"), color="red")
    assert status == 400 and "unknown form field 'color'" in body["error"]
    status, body = await upload(f"{base}/acme/files", TINY_KEY, ("a.md", b"# A\n\nText."))
    assert status == 401  # another tenant's key
    status, body = call("POST", f"{base}/tiny/files", {"file": "a.md"}, TINY_KEY)
    assert status == 415 and "multipart/form-data" in body["error"]


def test_a_refused_key_is_logged_with_the_reason_the_caller_is_not_told(api: str) -> None:
    answers = [call("GET", f"{api}/api/v1/tenants/nokey/documents", key="anything"),
               call("GET", f"{api}/api/v1/tenants/unset/documents", key="anything"),
               call("GET", f"{api}/api/v1/tenants/acme/documents"),
               call("GET", f"{api}/api/v1/tenants/acme/documents", key="wrong-key")]
    assert {status for status, _ in answers} == {401}
    assert {body["error"] for _, body in answers} == {"missing or wrong API key"}
    log = SERVE_LOG[-1].read_text()
    assert "this tenant has no admin API key: set [api] key_env" in log
    assert "UNSET_API_KEY named by [api] key_env is not set" in log
    assert "no Authorization: Bearer header" in log and "wrong key" in log
    assert "wrong-key" not in log and "anything" not in log  # never the key given


def call(method: str, url: str, body: Any = None, key: str | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                        else None)
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, json.loads(text) if text else None


DOCS = {"documents": [
    {"title": "Return policy", "source": "returns",
     "text": "# Returns\n\nItems can be returned within 45 days with the receipt."},
    {"title": "Loyalty programme", "source": "loyalty",
     "text": "# Loyalty\n\nMembers earn one point per euro spent; 100 points give a voucher."},
], "tags": ["policies"]}


def test_documents_lifecycle_and_grounded_search(api: str) -> None:
    base = f"{api}/api/v1/tenants/acme"
    status, body = call("POST", f"{base}/documents", DOCS, KEYS["acme"])
    assert status == 200 and body["summary"]["added"] == 2, body
    status, again = call("POST", f"{base}/documents", DOCS, KEYS["acme"])
    assert again["summary"]["unchanged"] == 2
    status, listing = call("GET", f"{base}/documents", key=KEYS["acme"])
    assert status == 200 and {d["source"] for d in listing["documents"]} == {
        "inline:returns", "inline:loyalty"}
    assert all(d["tags"] == ["policies"] for d in listing["documents"])
    status, found = call("POST", f"{base}/search",
                         {"query": "How many days do I have to return an item?"},
                         KEYS["acme"])
    assert status == 200 and "45 days" in found["answer"]
    assert found["sources"][0]["source"] == "inline:returns" and found["confidence"] > 0
    assert set(found) == {"answer", "sources", "confidence", "follow_ups"}
    loyalty = next(d for d in listing["documents"] if d["source"] == "inline:loyalty")
    assert call("DELETE", f"{base}/documents/{loyalty['doc_id']}", key=KEYS["acme"])[0] == 204
    assert call("DELETE", f"{base}/documents/{loyalty['doc_id']}", key=KEYS["acme"])[0] == 404
    status, after = call("POST", f"{base}/search", {"query": "loyalty points voucher"},
                         KEYS["acme"])
    assert all(s["source"] != "inline:loyalty" for s in after["sources"])


def test_keys_are_per_tenant_and_unknown_tenants_look_the_same(api: str) -> None:
    acme = f"{api}/api/v1/tenants/acme/documents"
    assert call("GET", acme)[0] == 401
    assert call("GET", acme, key="wrong")[0] == 401
    assert call("GET", acme, key=KEYS["globex"])[0] == 401
    status, body = call("GET", f"{api}/api/v1/tenants/nobody/documents", key=KEYS["acme"])
    assert (status, body) == (401, {"error": "missing or wrong API key"})


def test_another_tenant_cannot_reach_documents_even_with_crafted_filters(api: str) -> None:
    call("POST", f"{api}/api/v1/tenants/acme/documents", DOCS, KEYS["acme"])
    base = f"{api}/api/v1/tenants/globex"
    status, body = call("POST", f"{base}/search", {
        "query": "return within 45 days", "filters": {"sources": ["inline:returns"]}},
        KEYS["globex"])
    assert status == 200 and body["sources"] == []
    status, body = call("POST", f"{base}/search", {
        "query": "returns", "filters": {"tenant": "acme"}}, KEYS["globex"])
    assert status == 422 and body["details"][0]["field"] == "filters.tenant"
    assert call("GET", f"{base}/documents", key=KEYS["globex"])[1] == {"documents": []}


def test_bad_bodies_get_clear_errors(api: str) -> None:
    base = f"{api}/api/v1/tenants/acme"
    status, body = call("POST", f"{base}/search", raw=b"{not json", key=KEYS["acme"])
    assert status == 400 and body["error"].startswith("the body is not valid JSON")
    for raw, problem in ((b"\xff\xfe{}", "not valid UTF-8"), (b"[1, 2]", "must be a JSON object"),
                         (b"[" * 10_000 + b"]" * 10_000, "nests deeper")):
        status, body = call("POST", f"{base}/search", raw=raw, key=KEYS["acme"])
        assert status == 400 and problem in body["error"], body
    status, body = call("POST", f"{base}/documents", {}, KEYS["acme"])
    assert status == 422 and "at least one" in body["details"][0]["problem"]
    status, body = call("POST", f"{base}/documents", raw=b"x" * (2 << 20), key=KEYS["acme"])
    assert status == 413 and body["error"].startswith("request body too large")
    status, body = call("POST", f"{base}/documents", {"urls": ["http://127.0.0.1:1/x"]},
                        KEYS["acme"])
    assert status == 200 and body["outcomes"][0]["status"] == "failed"
    assert "refused" in body["outcomes"][0]["reason"]


def test_openapi_document_describes_the_routes(api: str) -> None:
    status, spec = call("GET", f"{api}/api/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/api/v1/tenants/{tenant}/documents",
                                  "/api/v1/tenants/{tenant}/documents/{doc_id}",
                                  "/api/v1/tenants/{tenant}/search",
                                  "/api/v1/tenants/{tenant}/analyze",
                                  "/api/v1/tenants/{tenant}/files"}
    assert {"SearchRequest", "SearchResponse", "IngestRequest", "AnalyzeRequest"} <= set(
        spec["components"]["schemas"])


def test_analyze_needs_a_language_model(api: str) -> None:
    status, body = call("POST", f"{api}/api/v1/tenants/acme/analyze",
                        {"text": "Invoice for Ada", "schema_name": "summary"}, KEYS["acme"])
    assert status == 422 and "language model" in body["error"]
