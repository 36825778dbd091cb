"""The operators' console against a real `switchboard serve`: signing in, one tenant's
admin never seeing another's pages, forms refused without their CSRF token, knowledge
gaps grouped by meaning from real turns, and every page in Chromium, with screenshots.

The conversations are real turns through the widget protocol on the embedded answerer:
questions the handbook answers (cited), three ways of asking about parental leave and
one about parking (nothing in the documents: no source), and a "not helpful" rating.
"""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.servers import start_switchboard
from tests.test_widget_transport import Client

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://acme.example"
ACME_KEY = "acme-console-key-0123456789"
GLOBEX_KEY = "globex-console-key-0123456789"
OPERATOR = "operator-token-0123456789"
HANDBOOK = ("# Refunds\n\nRefunds are paid within five business days of approval.\n\n"
            "# Shipping\n\nParcels ship within two days; express delivery costs 9 euros.\n")
QUESTIONS = ["How long do refunds take?", "How fast do parcels ship?",
             "How many weeks of parental leave do we get?",
             "What is the parental leave policy?",
             "Can I take paternity leave after my baby is born?",
             "Where can I park my car at the office?"]


@pytest.fixture(scope="module")
async def served(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[str]:
    home = tmp_path_factory.mktemp("console")
    tenants, kb = home / "tenants", home / "kb"
    tenants.mkdir()
    kb.mkdir()
    (kb / "handbook.md").write_text(HANDBOOK)
    sources = f'sources = [{{ path = "{kb}", schedule = "0 3 * * *" }}]\n'
    for tenant_id, key_env, extra in (("acme", "ACME_ADMIN_KEY", sources),
                                      ("globex", "GLOBEX_ADMIN_KEY", "")):
        (tenants / f"{tenant_id}.toml").write_text(
            f'id = "{tenant_id}"\nname = "{tenant_id.title()} Corp"\n[api]\nkey_env = "{key_env}"\n'
            f'[limits]\nuser_per_minute = 1000\ntenant_per_minute = 10000\n'
            f'[knowledge]\nscore_threshold = 0.45\n{extra}'
            f'[widget]\npublic_key = "pk_{tenant_id}_console"\n'
            f'allowed_origins = ["https://{tenant_id}.example"]\nip_per_minute = 1000\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/console_{uuid.uuid4().hex[:8]}",
           "ACME_ADMIN_KEY": ACME_KEY, "GLOBEX_ADMIN_KEY": GLOBEX_KEY,
           "SWITCHBOARD_OPERATOR_TOKEN": OPERATOR}
    base, process = await asyncio.to_thread(start_switchboard, env, ROOT, home / "serve.log")
    await _ready(base)
    await _conversations(base)
    yield base
    process.terminate()
    await asyncio.to_thread(process.wait, 30)


async def _ready(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            async with http.get(f"{base}/readyz") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("serve never became ready (first ingestion)")


async def _conversations(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        tab = Client(base, http, key="pk_acme_console", origin=ORIGIN)
        await tab.connect()
        replies = []
        for question in QUESTIONS:
            asked = await tab.say(question)
            replies.append((await tab.events("reply", asked, wait_s=30))[-1])
        assert tab.ws is not None
        await tab.ws.send_json({"type": "feedback", "turn_id": replies[1]["turn_id"],
                                "rating": "down"})
        await tab.events("feedback")


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, base: str, key: str) -> aiohttp.ClientResponse:
    async with http.get(f"{base}/admin/login") as page:
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    return await http.post(f"{base}/admin/login", data={"csrf": token.group(1), "key": key},
                           allow_redirects=False)


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as page:
        found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)


async def test_sign_in_sets_a_strict_cookie_and_a_wrong_key_opens_nothing(served: str) -> None:
    async with session() as http:
        async with http.get(f"{served}/admin/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/login"
        async with http.post(f"{served}/admin/login", data={"key": ACME_KEY},
                             allow_redirects=False) as r:
            assert r.status == 403  # no form token: not our sign-in form
        wrong = await sign_in(http, served, "not-a-key")
        assert wrong.status == 401 and "opens nothing" in await wrong.text()
        ok = await sign_in(http, served, ACME_KEY)
        assert ok.status == 303 and ok.headers["Location"] == "/admin/t/acme/"
        cookie = next(v for k, v in ok.headers.items() if k == "Set-Cookie"
                      and v.startswith("sb_console="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        async with http.get(f"{served}/admin/t/acme/") as r:
            page = await r.text()
            assert r.status == 200 and "Acme Corp" in page
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"


async def test_a_tenants_admin_sees_only_that_tenant(served: str) -> None:
    async with session() as http:
        await sign_in(http, served, GLOBEX_KEY)
        for path in ("", "gaps", "conversations", "audit", "settings", "documents"):
            async with http.get(f"{served}/admin/t/acme/{path}") as r:
                text = await r.text()
                assert r.status == 404 and "parental" not in text and "Acme" not in text
        async with http.get(f"{served}/admin/t/nobody/") as r:
            assert r.status == 404  # the same answer as for a tenant that exists
        async with http.get(f"{served}/admin/", allow_redirects=False) as r:
            assert r.headers["Location"] == "/admin/t/globex/"  # not the operator's list


async def test_an_operator_sees_every_tenant(served: str) -> None:
    async with session() as http:
        await sign_in(http, served, OPERATOR)
        async with http.get(f"{served}/admin/") as r:
            page = await r.text()
        assert "/admin/t/acme/" in page and "/admin/t/globex/" in page
        async with http.get(f"{served}/admin/t/globex/settings") as r:
            assert r.status == 200
            assert 'key_env = "GLOBEX_ADMIN_KEY"' in html.unescape(await r.text())


async def test_knowledge_gaps_group_questions_by_meaning(served: str) -> None:
    async with session() as http:
        await sign_in(http, served, ACME_KEY)
        async with http.get(f"{served}/admin/t/acme/gaps") as r:
            page = await r.text()
        groups = re.findall(r'<span class="count" title="questions">(\d+)</span>\s*<h3>(.*?)</h3>',
                            page)
        by_label = {label: int(n) for n, label in groups}
        leave = [n for label, n in by_label.items() if "leave" in label]
        assert leave == [3], groups  # three wordings, one gap
        assert any("park" in label for label in by_label), groups
        assert "not helpful" in page  # the rated answer is a gap too
        async with http.get(f"{served}/admin/t/acme/gaps.csv") as r:
            assert r.headers["Content-Type"].startswith("text/csv")
            rows = (await r.text()).splitlines()
        assert rows[0].startswith("group,questions,reasons")
        assert any("leave" in row and ",3," in row for row in rows[1:])


async def test_forms_without_their_csrf_token_change_nothing(served: str) -> None:
    async with session() as http:
        await sign_in(http, served, ACME_KEY)
        async with http.get(f"{served}/admin/t/acme/documents") as r:
            page = await r.text()
        doc_id = re.search(r'action="documents/([^/"]+)/delete"', page)
        assert doc_id is not None
        for token in ("", "forged-token"):
            async with http.post(f"{served}/admin/t/acme/documents/{doc_id.group(1)}/delete",
                                 data={"csrf": token}, allow_redirects=False) as r:
                assert r.status == 403
        # globex's token is valid only for globex's session
        async with session() as other:
            await sign_in(other, served, GLOBEX_KEY)
            foreign = await csrf_of(other, f"{served}/admin/t/globex/documents")
        async with http.post(f"{served}/admin/t/acme/documents/{doc_id.group(1)}/delete",
                             data={"csrf": foreign}, allow_redirects=False) as r:
            assert r.status == 403
        async with http.get(f"{served}/admin/t/acme/documents") as r:
            assert doc_id.group(1) in await r.text()  # still there


async def test_every_page_in_chromium(served: str) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.test_widget_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{served}/admin/")
        await page.fill("#key", ACME_KEY)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Overview")
        await expect(page.locator("#turns-chart")).to_have_attribute("data-rendered", "true")
        drawn = await page.evaluate("document.getElementById('turns-chart').chart.data"
                                    ".datasets.map(d => d.data.reduce((a, b) => a + b, 0))")
        assert sum(drawn) == len(QUESTIONS), drawn
        await page.screenshot(path=str(ARTIFACTS / "console-overview.png"), full_page=True)
        await page.click("text=Knowledge gaps")
        await expect(page.locator(".gap").first).to_contain_text("leave")
        await page.screenshot(path=str(ARTIFACTS / "console-gaps.png"), full_page=True)
        for link, heading in (("Feedback", "Feedback"), ("Conversations", "Conversations"),
                              ("Audit log", "Audit log"), ("Settings", "Settings")):
            await page.click(f"header nav >> text={link}")
            await expect(page.locator("h1")).to_have_text(heading)
            await page.screenshot(path=str(ARTIFACTS / f"console-{link.split()[0].lower()}.png"),
                                  full_page=True)
        await page.click("header nav >> text=Conversations")
        await page.locator("table a").first.click()
        await expect(page.locator(".msg.assistant").first).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "console-transcript.png"), full_page=True)
        # an upload through the documents form
        await page.click("header nav >> text=Documents")
        await page.set_input_files("input[type=file]", files=[{
            "name": "parking.md", "mimeType": "text/markdown",
            "buffer": b"# Parking\n\nStaff park in the garage on level -2."}])
        await page.click("text=Upload and ingest")
        await expect(page.locator(".notice")).to_contain_text("1 added or replaced")
        await expect(page.locator("table").last).to_contain_text("parking.md")
        await expect(page.locator("text=Last ingestion")).to_be_visible()
        await expect(page.locator("table").first).to_contain_text("added 1")
        await page.screenshot(path=str(ARTIFACTS / "console-documents.png"), full_page=True)
        assert not errors, errors  # no script error, nothing the page's policy blocked
        # a form whose token was tampered with is refused
        await page.evaluate("document.querySelector('form[action$=\"/delete\"] "
                            "input[name=csrf]').value = 'tampered'")
        await page.locator("form[action$='/delete'] button").first.click()
        await expect(page.locator("h1")).to_have_text("Refused")
        await page.screenshot(path=str(ARTIFACTS / "console-refused.png"))
        await browser.close()


async def test_cookies_are_secure_when_the_public_reaches_us_over_https() -> None:
    """Behind a TLS-terminating proxy the request itself is plain HTTP; with an https
    SWITCHBOARD_PUBLIC_URL the cookies are Secure anyway."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from adapters.console.auth import ConsoleAuth
    from adapters.console.routes import Console
    app = web.Application()
    Console(lambda: None, lambda: ConsoleAuth(b"k" * 32), lambda: OPERATOR,  # type: ignore
            https=True).register(app)
    async with TestClient(TestServer(app), cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        page = await client.get("/admin/login")
        assert "Secure" in page.headers["Set-Cookie"]
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert token is not None
        # the browser sends it back over its HTTPS leg; the proxy forwards it
        login = page.headers["Set-Cookie"].split(";")[0]
        signed = await client.post("/admin/login", data={"csrf": token.group(1),
                                                         "key": OPERATOR},
                                   headers={"Cookie": login}, allow_redirects=False)
        cookies = signed.headers.getall("Set-Cookie", [])
        assert signed.status == 303, (signed.status, await signed.text())
        cookie = next(v for v in cookies if v.startswith("sb_console="))
        assert "Secure" in cookie and "HttpOnly" in cookie
