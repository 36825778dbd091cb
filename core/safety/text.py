"""Text as the safety checks compare it, so that disguises do not hide a match.

``normalise`` removes invisible characters (zero-width spaces and joiners, soft hyphens,
bidirectional controls) and applies NFKC, which folds full-width and other
compatibility forms (full-width digits → ``4111``). ``skeleton`` goes further for comparing
words: it also maps the Cyrillic and Greek letters that look like Latin ones to those
("Project" spelt with a Cyrillic o → ``project``), casefolds and collapses whitespace,
so a blocked term or a line of the system prompt is found however it is dressed up.
``decoded_runs`` finds base64 text and decodes it, so "the same thing, encoded" is seen.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# Cyrillic and Greek letters drawn like Latin ones, and the Latin letter each imitates.
_LOOKALIKES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04cf\u04bb\u051b"
    "\u051d\u0475\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406"
    "\u0408\u0405\u03b1\u03bf\u03bd\u03b9\u03ba\u03c1\u03c4\u03c5\u03b5\u0391\u0392\u0395"
    "\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
    "aeopcyxijsdlhq"
    "wvABEKMHOPCTXI"
    "JSaovikptueABE"
    "ZHIKMNOPTYX")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


def skeleton(text: str) -> str:
    return " ".join(normalise(text).translate(_LOOKALIKES).casefold().split())


def decoded_runs(text: str) -> list[str]:
    """The readable text of each base64 run in ``text`` (standard or URL-safe)."""
    found = []
    for match in _BASE64.finditer(normalise(text)):
        run = match.group(0)
        try:
            raw = base64.b64decode(run.replace("-", "+").replace("_", "/") +
                                   "=" * (-len(run) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded.isprintable() or all(c.isprintable() or c.isspace() for c in decoded):
            found.append(decoded)
    return found
