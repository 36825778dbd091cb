"""In a real browser: the README's question on the demo-style tenant of local files gets
a clean answer whose citations and `[n]` markers open the source page, where the cited
passage is highlighted; a tampered link opens nothing. Screenshots land in
``test-artifacts/``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from tests.servers import start_switchboard
from tests.test_processes import wait_ready
from tests.test_widget_browser import ARTIFACTS, ROOT, ask, browser, page  # noqa: F401

DOCS = ("architecture.md", "widget.md", "configuration.md")


@pytest.fixture(scope="module")
def served_docs(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("widget-sources")
    (home / "tenants").mkdir()
    (home / "docs").mkdir()
    for name in DOCS:
        (home / "docs" / name).write_text((ROOT / "docs" / name).read_text())
    (home / "tenants" / "demo.toml").write_text(
        'id = "demo"\nname = "Docs"\n[knowledge]\nchunk_tokens = 150\nchunk_overlap = 30\n'
        'sources = [{ path = "docs/" }]\n'
        '[widget]\npublic_key = "pk_docs_browser"\nallow_own_origin = true\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(home / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/sources_{uuid.uuid4().hex[:8]}"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    status, body = wait_ready(base)  # the first documents are in
    assert status == 200, body
    yield base
    process.terminate()
    process.wait(timeout=30)


async def test_citations_and_markers_open_the_highlighted_passage(
        served_docs: str, page: Page) -> None:  # noqa: F811 - the fixture
    await page.goto(f"{served_docs}/")
    await page.locator(".launcher").click()
    await ask(page, "How do rate limits work?")
    answer = page.locator(".msg.bot:not(.greeting)").last
    source = answer.locator(".sources a").first
    await expect(source).to_be_visible(timeout=60000)
    await expect(answer).to_contain_text("token bucket")
    body = await answer.locator(".body").inner_text()
    assert "```" not in body and "ip_per_minute =" not in body
    href = await source.get_attribute("href")
    assert href is not None and href.startswith(f"{served_docs}/sources/v1/demo/")
    assert await source.get_attribute("title") in {f"docs/{n}" for n in DOCS}
    marker = answer.locator(".body a.marker").first
    await expect(marker).to_have_text(re.compile(r"^\[\d\]$"))
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "widget-cited-answer.png"))

    await page.goto(href)
    cited = page.locator("mark#cited")
    await expect(cited).to_be_visible()
    await expect(page.locator("h1")).not_to_be_empty()
    await page.screenshot(path=str(ARTIFACTS / "source-page.png"))
    tampered = await page.goto(href[:-1] + ("0" if href[-1] != "0" else "1"))
    assert tampered is not None and tampered.status == 404
    other = await page.goto(href.replace("/sources/v1/demo/", "/sources/v1/other/"))
    assert other is not None and other.status == 404
