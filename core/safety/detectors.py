"""Personal data and secrets in text, found with checks that avoid false alarms: a card
number must pass the Luhn check, an IBAN its ISO 7064 mod-97 check, a phone number must
look like one (a leading + or a separated group), a secret must have a known prefix or
the shape of a private key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["email", "phone", "card", "iban", "secret"]

LABELS: dict[Kind, str] = {"email": "e-mail address", "phone": "phone number",
                           "card": "payment card number", "iban": "IBAN",
                           "secret": "API key or token"}

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_URL = re.compile(r"https?://\S+")
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d\.)\d+(?:[ -]\d+)*(?!\d|\.\d)")
"""Digits in groups, not part of a decimal number (a sentence's full stop may follow)."""
_GROUP = re.compile(r"\d+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
                    r"\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)|(?<![\w+])\+\d{8,15}(?!\w)")
_SECRET = re.compile(
    r"\b(?:sk-(?:proj-|live_|test_)?[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{20,})"
    r"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    start: int
    end: int


def luhn(digits: str) -> bool:
    total = 0
    for n, char in enumerate(reversed(digits)):
        d = int(char)
        if n % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 8 <= len(digits) <= 15:
        return False
    if "." in candidate and not candidate.lstrip().startswith("+"):
        return False  # an IP address or a version number, not a phone
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", candidate.strip()):  # a date
        return False
    return candidate.lstrip().startswith(("+", "(")) or bool(re.search(r"[ .-]", candidate))


def _cards(text: str) -> list[tuple[int, int]]:
    """Card numbers: 13 to 19 digits in groups (``4111 1111 1111 1111``) that pass the
    Luhn check, also when another number stands right beside them."""
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end(), g.group())
                  for g in _GROUP.finditer(run.group())]
        i = 0
        while i < len(groups):
            digits, found = "", None
            for j in range(i, len(groups)):
                digits += groups[j][2]
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn(digits):
                    found = j
            if found is None:
                i += 1
                continue
            spans.append((groups[i][0], groups[found][1]))
            i = found + 1
    return spans


def find(text: str) -> list[Finding]:
    """Every finding, leftmost first, without overlaps (secrets and cards win)."""
    found: list[Finding] = []

    def add(kind: Kind, start: int, end: int) -> None:
        if not any(f.start < end and start < f.end for f in found):
            found.append(Finding(kind, start, end))

    for m in _SECRET.finditer(text):
        add("secret", m.start(), m.end())
    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _IBAN.finditer(text):
        if iban_valid(m.group()):
            add("iban", m.start(), m.end())
    for start, end in _cards(text):
        add("card", start, end)
    urls = [(m.start(), m.end()) for m in _URL.finditer(text)]
    for m in _PHONE.finditer(text):
        inside_url = any(a <= m.start() and m.end() <= b for a, b in urls)
        if _phone(m.group()) and not inside_url:
            add("phone", m.start(), m.end())
    return sorted(found, key=lambda f: f.start)


def redact(text: str, findings: list[Finding]) -> str:
    out, last = [], 0
    for f in findings:
        out.append(text[last:f.start])
        out.append(f"[{LABELS[f.kind]} removed]")
        last = f.end
    out.append(text[last:])
    return "".join(out)
