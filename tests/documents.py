"""Fixture documents with known answers, in every supported format.

PDF and DOCX files are generated here (a hand-written PDF with real text operators, a
DOCX through python-docx) so the tests exercise the real extractors without binaries in git.
"""

from __future__ import annotations

import io
from pathlib import Path


def make_pdf(pages: list[str], title: str = "") -> bytes:
    """A valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for text in pages:
        safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content_id = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> "
                       f"/Contents {content_id} 0 R >>".encode())
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    info_id = 0
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_id = len(objects)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    info = f" /Info {info_id} 0 R" if info_id else ""
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n"
              f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_docx(title: str, sections: dict[str, str]) -> bytes:
    from docx import Document

    document = Document()
    document.add_heading(title, level=1)
    for heading, text in sections.items():
        document.add_heading(heading, level=2)
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def write_corpus(folder: Path) -> Path:
    """A small product knowledge base whose answers the tests know."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refunds.md").write_text(
        "# Refund policy\n\n## Eligibility\n\nCustomers can request a refund within 30 days "
        "of purchase when the product arrives damaged.\n\n## Processing time\n\nApproved "
        "refunds are paid back to the original card within 5 business days.\n")
    (folder / "shipping.html").write_text(
        "<html><head><title>Shipping guide</title><script>alert(1)</script></head><body>"
        "<nav>menu</nav><main><h1>Shipping guide</h1><h2>Carriers</h2><p>We ship parcels "
        "with two carriers: Nordpost for Europe and Pacific Express for Asia.</p>"
        "<h2>Costs</h2><p>Shipping is free for orders above 80 euros.</p></main></body></html>")
    (folder / "warranty.pdf").write_bytes(make_pdf(
        ["The warranty covers manufacturing defects for two years.",
         "Batteries are covered by the warranty for twelve months only."],
        title="Warranty terms"))
    (folder / "setup.docx").write_bytes(make_docx("Device setup", {
        "Pairing": "Hold the pairing button for six seconds until the light blinks blue.",
        "Reset": "A factory reset erases all settings; hold the reset pin for twenty seconds.",
    }))
    (folder / "notes.txt").write_text("Office hours\n\nThe support desk is open from 8 to 18 "
                                      "on weekdays.\n")
    return folder
