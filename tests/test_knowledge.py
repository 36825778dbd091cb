"""Ingestion and retrieval over real embeddings, a real Qdrant (local) and the catalog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from core.knowledge.base import SearchFilters
from core.knowledge.service import KnowledgeService
from core.tenants.models import TenantConfig
from tests.conftest import tenant
from tests.documents import make_docx, write_corpus

ACME = tenant("acme", knowledge={"chunk_tokens": 120, "chunk_overlap": 20})
GLOBEX = tenant("globex")


def ALIAS(knowledge: KnowledgeService) -> str:
    return knowledge.index.alias("acme", "default")


async def ingest_corpus(knowledge: KnowledgeService, config: TenantConfig = ACME,
                        **kwargs: Any) -> Any:
    folder = knowledge.root / "kb"
    if not folder.exists():
        write_corpus(folder)
    return await knowledge.ingestor.ingest(config, [str(folder)], knowledge.root, **kwargs)


async def top(knowledge: KnowledgeService, question: str, config: TenantConfig = ACME,
              **kwargs: Any) -> list[Any]:
    return await knowledge.retriever.search(config, question, **kwargs)


async def test_every_format_is_ingested_and_answers_are_found(
        knowledge: KnowledgeService) -> None:
    report = await ingest_corpus(knowledge)
    assert report.summary() == {"added": 5, "unchanged": 0, "replaced": 0, "removed": 0,
                                "failed": 0}
    expectations = {
        "How long do refunds take to be paid back?": "kb/refunds.md",
        "Which carrier ships to Asia?": "kb/shipping.html",
        "How long is the battery warranty?": "kb/warranty.pdf",
        "How do I pair the device?": "kb/setup.docx",
        "When is the support desk open?": "kb/notes.txt",
    }
    for question, source in expectations.items():
        passages = await top(knowledge, question)
        assert passages and passages[0].source == source, (question, passages[:1])


async def test_metadata_survives_the_pipeline(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge, tags=("public",))
    battery = (await top(knowledge, "battery warranty months"))[0]
    assert (battery.title, battery.page, battery.tags) == ("Warranty terms", 2, ("public",))
    refund = (await top(knowledge, "refund processing time card"))[0]
    assert refund.headings == ("Refund policy", "Processing time")
    client = await knowledge.index.client()
    points, _ = await client.scroll(ALIAS(knowledge), limit=100, with_payload=True)
    payload = next(p.payload for p in points if p.payload["source"] == "kb/shipping.html")
    assert payload["title"] == "Shipping guide" and "alert" not in payload["text"]
    assert len(payload["content_hash"]) == 32 and payload["ingested_at"].startswith("20")
    assert {"doc_id", "position", "headings", "url", "origin", "tenant"} <= set(payload)


async def test_reingesting_unchanged_sources_writes_nothing(
        knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    before = await knowledge.index.count(ALIAS(knowledge))
    records = {r.doc_id: r.ingested_at for r in await knowledge.catalog.list("acme")}
    report = await ingest_corpus(knowledge)
    assert report.count("unchanged") == 5 and not report.changed
    assert await knowledge.index.count(ALIAS(knowledge)) == before
    assert {r.doc_id: r.ingested_at for r in await knowledge.catalog.list("acme")} == records


async def test_changed_source_replaces_its_chunks(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    old = await knowledge.catalog.list("acme")
    (knowledge.root / "kb" / "notes.txt").write_text(
        "Office hours\n\nThe support desk now opens at 7 on weekdays and 10 on Saturdays.\n")
    report = await ingest_corpus(knowledge)
    assert report.summary()["replaced"] == 1 and report.summary()["unchanged"] == 4
    passages = await top(knowledge, "When is the support desk open?")
    assert "Saturdays" in passages[0].text
    client = await knowledge.index.client()
    old_notes = next(r for r in old if r.source == "kb/notes.txt").chunk_ids
    assert await client.retrieve(ALIAS(knowledge), ids=old_notes) == []


async def test_sync_removes_deleted_files_and_remove_drops_vectors(
        knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    (knowledge.root / "kb" / "notes.txt").unlink()
    report = await ingest_corpus(knowledge, sync=True)
    assert [o.source for o in report.outcomes if o.status == "removed"] == ["kb/notes.txt"]
    refunds = next(r for r in await knowledge.catalog.list("acme") if "refunds" in r.source)
    assert await knowledge.ingestor.remove(ACME, "default", refunds.doc_id)
    assert all("refunds" not in p.source for p in await top(knowledge, "refund eligibility"))
    assert len(await knowledge.catalog.list("acme")) == 3


async def test_bad_files_fail_alone_with_clear_reasons(knowledge: KnowledgeService) -> None:
    folder = write_corpus(knowledge.root / "kb")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> trailer")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "empty.md").write_text("")
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02 binary \x00")
    (folder / "huge.md").write_text("word " * 600_000)
    small = tenant("acme", knowledge={"max_file_mb": 2})
    report = await knowledge.ingestor.ingest(small, [str(folder)], knowledge.root)
    reasons = {o.source.rsplit("/", 1)[-1]: o.reason for o in report.outcomes
               if o.status == "failed"}
    assert set(reasons) == {"broken.pdf", "broken.docx", "empty.md", "blob.txt", "huge.md"}
    assert "not a readable PDF" in reasons["broken.pdf"]
    assert "not a readable DOCX" in reasons["broken.docx"]
    assert reasons["empty.md"] == "the file is empty"
    assert reasons["blob.txt"] == "binary content, not text"
    assert "over the 2 MB limit" in reasons["huge.md"]
    assert report.count("added") == 5


async def test_tenants_never_see_each_others_chunks(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    await knowledge.ingestor.ingest_stream(GLOBEX, _one("inline:globex", "Globex sells "
                                                        "rocket engines to Mars colonies."))
    crafted = SearchFilters(sources=("kb/refunds.md", "kb/warranty.pdf"))
    for question in ("refund within 30 days", "warranty battery"):
        passages = await top(knowledge, question, GLOBEX, filters=crafted)
        assert passages == []
        assert all(p.source == "inline:globex" for p in await top(knowledge, question, GLOBEX,
                                                                   threshold=-1.0))
    assert all(p.source.startswith("kb/") for p in await top(knowledge, "rocket engines Mars",
                                                              threshold=-1.0))


async def test_filters_narrow_results_by_source_and_tag(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge, tags=("docs",))
    await knowledge.ingestor.ingest_stream(ACME, _one("inline:faq", "Refunds for gift cards "
                                                      "are never possible.", tags=("faq",)))
    only_faq = await top(knowledge, "refund", filters=SearchFilters(tags=("faq",)))
    assert {p.source for p in only_faq} == {"inline:faq"}
    only_md = await top(knowledge, "refund", filters=SearchFilters(sources=("kb/refunds.md",)))
    assert {p.source for p in only_md} == {"kb/refunds.md"}


async def test_a_retagged_document_is_found_with_its_new_tags(
        knowledge: KnowledgeService) -> None:
    """Hits' payloads are kept between queries in local mode; a change to the
    collection must drop them, or retrieval would answer with the old tags."""
    await ingest_corpus(knowledge, tags=("docs",))
    before = await top(knowledge, "refund")
    assert before and all(p.tags == ("docs",) for p in before)
    await knowledge.tag(ACME, "kb/refunds.md", ["policy"])
    after = await top(knowledge, "refund", filters=SearchFilters(tags=("policy",)))
    assert after and {p.source for p in after} == {"kb/refunds.md"}
    assert all(p.tags == ("policy",) for p in after)


async def test_follow_up_is_resolved_against_the_conversation(
        knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    history = [("user", "Which carriers do you ship parcels with?"),
               ("assistant", "Nordpost for Europe and Pacific Express for Asia [1].")]
    alone = await top(knowledge, "and the second one?")
    resolved = await top(knowledge, "and the second one?", history=history)
    assert not alone or alone[0].source != "kb/shipping.html"
    assert resolved[0].source == "kb/shipping.html"


async def test_nothing_relevant_means_no_passages(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    assert await top(knowledge, "What is the capital of Mongolia?") == []


async def test_reindex_switches_while_queries_keep_working(
        knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    old = await knowledge.index._physical(ALIAS(knowledge))
    failures: list[BaseException] = []
    answered = 0

    async def keep_asking() -> None:
        nonlocal answered
        while not done.is_set():
            try:
                passages = await top(knowledge, "How do I pair the device?")
                assert passages and passages[0].source == "kb/setup.docx"
                answered += 1
            except BaseException as exc:
                failures.append(exc)
            await asyncio.sleep(0)

    done = asyncio.Event()
    asker = asyncio.create_task(keep_asking())
    report = await knowledge.ingestor.reindex(ACME, [], knowledge.root)
    done.set()
    await asker
    assert failures == [] and answered > 0
    assert report.count("added") == 5
    knowledge.index._aliases.clear()
    assert await knowledge.index._physical(ALIAS(knowledge)) != old
    assert not await (await knowledge.index.client()).collection_exists(old)


async def test_changing_the_embedder_is_a_clear_error(knowledge: KnowledgeService) -> None:
    await ingest_corpus(knowledge)
    other = tenant("acme", knowledge={"embedder": "openai:text-embedding-3-small"})
    from core.knowledge.embedders import EmbedderError
    from core.knowledge.ingest import EmbedderMismatch
    knowledge.embedders._key = "sk-test"
    try:
        await knowledge.ingestor.ingest(other, [], knowledge.root)
    except (EmbedderMismatch, EmbedderError) as exc:
        assert "was built with all-MiniLM-L6-v2" in str(exc) and "--reindex" in str(exc)
    else:
        raise AssertionError("mixing embedders must fail")


async def _one(source: str, text: str, tags: tuple[str, ...] = ()) -> Any:
    from core.knowledge.models import SourceDocument
    yield SourceDocument(source=source, content=text.encode(), content_type="text/plain",
                         title=source, tags=tags)


def test_docx_headings_become_heading_paths(tmp_path: Path) -> None:
    from core.knowledge.extract import extract
    document = extract("x.docx", make_docx("Manual", {"Install": "Run the installer."}))
    assert document.sections[0].headings == ("Manual", "Install")


def test_chunks_never_exceed_what_the_embedder_reads(embedders: Any) -> None:
    from core.knowledge.chunking import chunk_document
    from core.knowledge.extract import extract
    from core.knowledge.ingest import effective_chunk_tokens
    embedder = embedders.for_tenant(ACME)
    long_paragraph = " ".join(f"word{i} alpha beta" for i in range(600))
    assert embedder.count_tokens(long_paragraph) > 1000  # counted, not truncated
    document = extract("long.md", f"# Long\n\n{long_paragraph}\n".encode())
    size = effective_chunk_tokens(tenant("acme"), embedder)
    chunks = chunk_document("d", document, size, 50, embedder.count_tokens)
    assert len(chunks) > 4
    assert max(embedder.count_tokens(c.text) for c in chunks) <= size
