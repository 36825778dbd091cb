"""Who is signed in to the console, and that each form was sent by the console itself.

A session is a signed cookie, ``sb_console``: the scope it was granted (one tenant's id,
or ``*`` for an operator), a random session id and its expiry, HMAC-signed with the
console's key. It is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it), Secure behind HTTPS, and scoped to ``/admin``. Nothing about it lives on
the server, so any worker checks it.

Every form carries a CSRF token: an HMAC of the session id, so it is valid for one
session only and a page on another origin cannot know it. The sign-in form, which has no
session yet, uses a double-submit token: a random value in a cookie and the same value
in the form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "sb_console"
LOGIN_COOKIE = "sb_console_login"
SESSION_S = 8 * 3600
OPERATOR = "*"


@dataclass(frozen=True, slots=True)
class Session:
    scope: str
    """A tenant id, or ``OPERATOR`` (every tenant)."""
    sid: str
    expires: int

    def may_see(self, tenant_id: str) -> bool:
        return self.scope in (OPERATOR, tenant_id)


class ConsoleAuth:
    def __init__(self, key: bytes, *, clock: object = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the console key must be at least 16 bytes")
        self._key = hashlib.sha256(b"switchboard-console\x00" + key).digest()
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())  # type: ignore[operator]

    def _mac(self, purpose: str, text: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\x00{text}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, scope: str) -> tuple[str, Session]:
        session = Session(scope, secrets.token_urlsafe(16), self._now() + SESSION_S)
        body = base64.urlsafe_b64encode(
            f"{session.scope}|{session.sid}|{session.expires}".encode()).decode()
        return f"{body}.{self._mac('session', body)}", session

    def session(self, cookie: str | None) -> Session | None:
        """The cookie's session, or None (absent, forged, tampered, expired)."""
        if not cookie or len(cookie) > 512:
            return None
        body, _, mac = cookie.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac("session", body).encode()):
            return None
        try:
            scope, sid, expires = base64.urlsafe_b64decode(body.encode()).decode().split("|")
            session = Session(scope, sid, int(expires))
        except (ValueError, UnicodeDecodeError):
            return None
        return session if session.expires > self._now() else None

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf(session).encode())


def login_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())
