"""The widget in a real browser: Debian's Chromium driven by Playwright against a real
`switchboard serve`, on the demo page at ``/``. A screenshot is kept in
``test-artifacts/widget.png``."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright, expect

from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
HANDBOOK = """Returns handbook

Returns. Items can be returned within 30 days of delivery for a full refund.

Gift cards. Gift cards <img src=x onerror="window.__xssDoc=1"> never expire and cannot be
exchanged for cash.
"""


@pytest.fixture(scope="module")
def document_site() -> Iterator[str]:
    """A small site holding the tenant's document (a URL source gives clickable citations)."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def handbook(request: web.Request) -> web.Response:
        return web.Response(text=HANDBOOK, content_type="text/plain")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/handbook.txt", handbook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(run()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    started.wait(10)
    yield f"{holder['url']}/handbook.txt"
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture(scope="module")
def served(document_site: str, mongo_uri: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("widget-browser")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "demo.toml").write_text(
        'id = "demo"\nname = "Demo Shop"\n[persona]\ngreeting = "Hello from the demo shop!"\n'
        '[knowledge]\nallow_private_urls = true\nscore_threshold = 0.05\n'
        f'sources = [{{ path = "{document_site}" }}]\n'
        '[widget]\npublic_key = "pk_demo_browser"\nallow_own_origin = true\n'
        'title = "Demo Shop"\naccent_color = "#0f766e"\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/browser_{uuid.uuid4().hex[:8]}"}
    subprocess.run([sys.executable, "-m", "bots", "ingest", "--tenant", "demo", document_site],
                   env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    opened = await context.new_page()
    yield opened
    await context.close()


async def ask(page: Page, text: str) -> None:
    box = page.locator("#sb-input")
    await box.fill(text)
    await box.press("Enter")


async def test_ask_see_sources_rate_reload_and_run_a_command(served: str, page: Page,
                                                             document_site: str) -> None:
    await page.goto(f"{served}/")
    await page.add_style_tag(content="button{display:none !important}"
                                     "*{color:red !important;font-size:40px !important}")
    launcher = page.locator(".launcher")
    await launcher.click()
    await expect(page.locator(".greeting")).to_have_text("Hello from the demo shop!")
    focused = await page.evaluate(
        "document.getElementById('switchboard-widget').shadowRoot.activeElement.id")
    assert focused == "sb-input"

    await ask(page, "How many days do I have to return an item?")
    answer = page.locator(".msg.bot").last
    source = answer.locator(".sources a")
    await expect(source).to_be_visible(timeout=20000)
    assert await source.get_attribute("href") == document_site
    assert await source.get_attribute("rel") == "noopener noreferrer nofollow"
    await expect(answer).to_contain_text("30 days")

    await answer.locator('.thumb[data-rating="up"]').click()
    await expect(answer.locator(".note")).to_have_text("Thanks for the feedback!")
    await expect(answer.locator('.thumb[data-rating="up"]')).to_have_attribute(
        "aria-pressed", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "widget.png"))

    await page.reload()
    await page.locator(".launcher").click()
    restored = page.locator(".msg.user")
    await expect(restored.first).to_have_text("How many days do I have to return an item?")
    await expect(page.locator(".msg.bot .sources a").first).to_be_visible()
    # The answer from before the reload keeps its feedback buttons and suggestions.
    earlier = page.locator(".msg.bot:not(.greeting)").first
    await expect(earlier.locator('.thumb[data-rating="down"]')).to_be_visible()
    if await earlier.locator(".chips .chip").count() == 0:
        raise AssertionError("the restored answer lost its follow-up suggestions")

    await ask(page, "/help")
    await expect(page.locator(".msg.bot").last).to_contain_text("/forget", timeout=10000)

    await page.keyboard.press("Escape")
    await expect(page.locator(".panel")).to_be_hidden()
    focused = await page.evaluate("document.getElementById('switchboard-widget')"
                                  ".shadowRoot.activeElement.className")
    assert focused.startswith("launcher")


async def test_script_in_a_question_or_a_document_shows_as_text(served: str,
                                                                 page: Page) -> None:
    await page.goto(f"{served}/")
    await page.locator(".launcher").click()
    payload = '<img src=x onerror="window.__xss=1">hello<script>window.__xss=2</script>'
    await ask(page, payload)
    await expect(page.locator(".msg.user").last).to_have_text(payload)
    await ask(page, "Do gift cards expire?")
    answer = page.locator(".msg.bot").last
    await expect(answer).to_contain_text("never expire", timeout=20000)
    await expect(answer).to_contain_text('<img src=x onerror="window.__xssDoc=1">')
    assert await page.evaluate("[window.__xss, window.__xssDoc]") == [None, None]
    assert await page.locator("img[src=x]").count() == 0


async def test_usable_on_a_phone(served: str, browser: Browser) -> None:
    context = await browser.new_context(viewport={"width": 375, "height": 700},
                                        is_mobile=True, has_touch=True)
    phone = await context.new_page()
    try:
        await phone.goto(f"{served}/")
        await phone.locator(".launcher").tap()
        box = await phone.locator(".panel").bounding_box()
        assert box is not None and box["width"] == 375 and box["height"] == 700
        await ask(phone, "How many days do I have to return an item?")
        await expect(phone.locator(".msg.bot").last.locator(".sources a")).to_be_visible(
            timeout=20000)
    finally:
        await context.close()


async def test_a_connection_cut_mid_answer_completes_the_answer_once(
        served: str, page: Page) -> None:
    """The page's WebSocket is cut right after the first streamed piece of the answer;
    the widget reconnects, resumes after the last event it saw, and shows the answer
    once, complete."""
    cuts: list[str] = []
    closing: list[asyncio.Future[None]] = []

    async def cut_after_first_delta(route: WebSocketRoute) -> None:
        server = route.connect_to_server()
        route.on_message(lambda message: server.send(message))
        this_one_cut: list[bool] = []

        def from_server(message: str | bytes) -> None:
            if this_one_cut:  # the cut connection delivers nothing more
                return
            route.send(message)
            if not cuts and '"type": "delta"' in str(message):
                cuts.append(str(message))
                this_one_cut.append(True)
                closing.append(asyncio.ensure_future(
                    route.close(code=4000, reason="cut by test")))

        server.on_message(from_server)

    await page.route_web_socket(re.compile(r".*/widget/v1/ws.*"), cut_after_first_delta)

    await page.goto(f"{served}/")
    await page.locator(".launcher").click()
    await ask(page, "How many days do I have to return an item?")
    answer = page.locator(".msg.bot:not(.greeting)")
    await expect(answer.locator(".sources a")).to_be_visible(timeout=20000)
    assert cuts, "the connection was never cut"
    await expect(answer).to_have_count(1)
    text = await answer.inner_text()
    assert text.count("30 days") == 1 and text.count("no language model is configured") == 1
    await expect(page.locator(".msg.user")).to_have_count(1)


async def test_where_websockets_are_blocked_the_widget_falls_back_to_sse(
        served: str, page: Page) -> None:
    async def refuse(route: WebSocketRoute) -> None:
        await route.close(code=1011, reason="blocked by a proxy")

    await page.route_web_socket(re.compile(r".*/widget/v1/ws.*"), refuse)
    event_streams: list[str] = []
    page.on("request", lambda r: event_streams.append(r.url)
            if "/widget/v1/events" in r.url else None)
    await page.goto(f"{served}/")
    await page.locator(".launcher").click()
    await ask(page, "How many days do I have to return an item?")
    answer = page.locator(".msg.bot:not(.greeting)").last
    await expect(answer.locator(".sources a")).to_be_visible(timeout=20000)
    await expect(answer).to_contain_text("30 days")
    assert event_streams


# Rules a careless (or hostile) page might carry. Properties that would blank the page
# itself (opacity or transform on <body>) are aimed at the elements the widget could be
# (any div, any child of body, the widget's own tag); inherited and interaction
# properties go on every element.
HOSTILE_CSS = (
    "div, body > div, body > *, switchboard-widget, #switchboard-widget{"
    "display:none !important;opacity:0 !important;transform:scale(0) !important;"
    "filter:blur(8px) !important;clip-path:circle(0) !important}"
    "*{pointer-events:none !important;visibility:hidden !important;color:red !important;"
    "font-family:'Comic Sans MS',cursive !important;font-size:40px !important;"
    "letter-spacing:9px !important;line-height:5 !important}")


async def test_page_css_cannot_hide_disable_or_restyle_the_widget(served: str,
                                                                  page: Page) -> None:
    await page.goto(f"{served}/")
    await page.add_style_tag(content=HOSTILE_CSS)
    launcher = page.locator(".launcher")
    await expect(launcher).to_be_visible()
    box = await launcher.bounding_box()
    assert box is not None and box["width"] >= 40 and box["height"] >= 40
    hit = await page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y);"
        " return e && e.id; }", [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert hit == "switchboard-widget", "something else receives the launcher's clicks"
    await launcher.click()
    await ask(page, "How many days do I have to return an item?")
    answer = page.locator(".msg.bot").last
    await expect(answer).to_contain_text("30 days", timeout=20000)
    style = await answer.evaluate(
        "e => { const s = getComputedStyle(e); return [s.color, s.fontFamily, s.fontSize,"
        " s.letterSpacing, s.opacity, s.visibility]; }")
    assert style[0] != "rgb(255, 0, 0)" and "Comic" not in style[1]
    assert style[2] != "40px" and style[3] in ("normal", "0px")
    assert style[4] == "1" and style[5] == "visible"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "widget-hostile-css.png"))
