"""Sources a reader can open: a file's citation links to its folder's `url_base` when
the tenant file gives one, a PDF's names its page and opens there, and a file ingested
from outside the tenant's root is named relative to where it was given, never by the
server's absolute path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.memory import MemoryChannel
from core.knowledge.service import KnowledgeService
from tests.conftest import EngineKit, tenant
from tests.documents import make_pdf

Build = Callable[..., Any]


async def test_a_folder_with_a_url_base_is_cited_by_its_web_address(
        make_engine: Build, knowledge: KnowledgeService) -> None:
    folder = knowledge.root / "kb" / "policies"
    folder.mkdir(parents=True)
    (folder / "refunds.md").write_text("# Refunds\n\nApproved refunds are paid within "
                                       "five business days to the original card.\n")
    config = tenant("acme", knowledge={"score_threshold": 0.05, "sources": [
        {"path": "kb/", "url_base": "https://git.example/acme/docs/blob/main/kb/"}]})
    await knowledge.ingest_configured(config)
    kit: EngineKit = await make_engine(config, knowledge=knowledge)
    reply = (await MemoryChannel(kit.engine, "acme").send("When are refunds paid?")).reply
    assert reply is not None and reply.citations
    assert reply.citations[0].url == "https://git.example/acme/docs/blob/main/kb/policies/refunds.md"
    assert reply.citations[0].source == "kb/policies/refunds.md"


def leave_pdf(folder: Path) -> Path:
    path = folder / "leave.pdf"
    path.write_bytes(make_pdf(["Leave policy: an overview of the kinds of leave.",
                               "Parental leave lasts twenty-six weeks at full pay."],
                              title="Leave policy"))
    return path


async def test_a_pdf_fact_is_cited_with_its_page_and_an_outside_file_by_its_name(
        make_engine: Build, knowledge: KnowledgeService, tmp_path_factory: Any) -> None:
    outside = leave_pdf(tmp_path_factory.mktemp("elsewhere"))
    config = tenant("acme", knowledge={"score_threshold": 0.05})
    report = await knowledge.ingestor.ingest(config, [str(outside)], knowledge.root)
    assert [o.source for o in report.outcomes] == ["leave.pdf"]
    kit: EngineKit = await make_engine(config, knowledge=knowledge)
    reply = (await MemoryChannel(kit.engine, "acme").send("How long is parental leave?")).reply
    assert reply is not None and "twenty-six weeks" in reply.text
    cited = reply.citations[0]
    assert cited.source == "leave.pdf" and str(outside.parent) not in cited.source
    assert cited.title.endswith(", page 2")
