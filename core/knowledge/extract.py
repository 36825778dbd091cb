"""Turning raw bytes into titled, structured text: TXT, Markdown, HTML, PDF, DOCX.

Each extractor keeps the structure retrieval needs (heading paths, page numbers).
Every failure is an :class:`ExtractionError` whose message is safe to show an admin:
malformed, binary, empty or oversized input never crashes an ingest run.
"""

from __future__ import annotations

import io
import re
from pathlib import PurePosixPath

from core.knowledge.models import ExtractedDocument, Section

MAX_BYTES = 20 * 1024 * 1024

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_DROP = ("script", "style", "noscript", "nav", "footer", "header", "form", "svg", "aside")


class ExtractionError(ValueError):
    pass


def kind_of(source: str, content_type: str) -> str:
    ctype = content_type.split(";")[0].strip().lower()
    by_type = {"text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
               "text/markdown": "md", "text/x-markdown": "md", "text/plain": "txt",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
                   "docx"}
    if ctype in by_type:
        return by_type[ctype]
    suffix = PurePosixPath(source.split("?")[0]).suffix.lower()
    by_suffix = {".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", ".rst": "txt",
                 ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise ExtractionError(f"unsupported file type ({ctype or suffix or 'unknown'}); "
                          "supported: .txt, .md, .html, .pdf, .docx")


def _stem(source: str) -> str:
    return PurePosixPath(source.split("?")[0].rstrip("/")).stem or source


def _decode_text(content: bytes) -> str:
    if b"\x00" in content[:8192]:
        raise ExtractionError("binary content, not text")
    for encoding in ("utf-8-sig", "utf-16") if content[:2] in (b"\xff\xfe", b"\xfe\xff") \
            else ("utf-8-sig", "cp1252"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ExtractionError("not valid text in UTF-8")


def _plain(text: str, fallback_title: str) -> ExtractedDocument:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first if 0 < len(first) <= 120 else fallback_title
    return ExtractedDocument(title, (Section(text.strip()),))


def _markdown(text: str, fallback_title: str) -> ExtractedDocument:
    sections: list[Section] = []
    path: list[str] = []
    buffer: list[str] = []
    title = ""
    in_fence = False

    def flush() -> None:
        body = "\n".join(buffer).strip()
        if body:
            sections.append(Section(body, tuple(path)))
        buffer.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            flush()
            level, heading = len(match.group(1)), match.group(2).strip()
            if level == 1 and not title:
                title = heading
            path[:] = [*path[:level - 1], heading]
        else:
            buffer.append(line)
    flush()
    return ExtractedDocument(title or fallback_title, tuple(sections))


def _html(content: bytes, fallback_title: str) -> ExtractedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(content, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_HTML_DROP):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    sections: list[Section] = []
    path: list[str] = []
    buffer: list[str] = []
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre",
                                  "td", "blockquote", "dd", "dt"]):
        if element.find_parent(["li", "td", "blockquote"]) and element.name in ("p", "li"):
            continue
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name[0] == "h" and element.name[1:].isdigit():
            if buffer:
                sections.append(Section("\n\n".join(buffer), tuple(path)))
                buffer = []
            level = int(element.name[1:])
            path = [*path[:level - 1], text]
            title = title or text
        else:
            buffer.append(text)
    if buffer:
        sections.append(Section("\n\n".join(buffer), tuple(path)))
    return ExtractedDocument(title or fallback_title, tuple(sections))


def _pdf(content: bytes, fallback_title: str) -> ExtractedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise ExtractionError("the PDF is encrypted")
        pages = [(number, page.extract_text() or "")
                 for number, page in enumerate(reader.pages, start=1)]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    sections = tuple(Section(text.strip(), (), number) for number, text in pages if text.strip())
    return ExtractedDocument(str(meta_title).strip() or fallback_title, sections)


def _docx(content: bytes, fallback_title: str) -> ExtractedDocument:
    import zipfile

    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = Document(io.BytesIO(content))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractionError(f"not a readable DOCX ({type(exc).__name__})") from None
    sections: list[Section] = []
    path: list[str] = []
    buffer: list[str] = []
    title = (document.core_properties.title or "").strip()
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            if buffer:
                sections.append(Section("\n\n".join(buffer), tuple(path)))
                buffer = []
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            path = [*path[:level - 1], text]
            title = title or text
        else:
            buffer.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                buffer.append(" | ".join(cells))
    if buffer:
        sections.append(Section("\n\n".join(buffer), tuple(path)))
    return ExtractedDocument(title or fallback_title, tuple(sections))


def extract(source: str, content: bytes, content_type: str = "",
            max_bytes: int = MAX_BYTES) -> ExtractedDocument:
    if len(content) > max_bytes:
        raise ExtractionError(f"{len(content) / 1e6:.1f} MB is over the "
                              f"{max_bytes / 1e6:.0f} MB limit")
    if not content.strip():
        raise ExtractionError("the file is empty")
    kind = kind_of(source, content_type)
    fallback = _stem(source)
    if kind == "pdf":
        document = _pdf(content, fallback)
    elif kind == "docx":
        document = _docx(content, fallback)
    elif kind == "html":
        document = _html(content, fallback)
    elif kind == "md":
        document = _markdown(_decode_text(content), fallback)
    else:
        document = _plain(_decode_text(content), fallback)
    if not any(s.text.strip() for s in document.sections):
        raise ExtractionError("no text found in the document")
    return document
