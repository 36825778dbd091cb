"""Who is talking in the widget, proven without accounts.

An anonymous visitor gets a token signed with the server's key: it names the tenant and a
random visitor id, and the browser keeps it, so the conversation survives page loads. A
site that knows its user passes the user id with an HMAC-SHA256 of it made with the
tenant's widget secret; the server checks it and the conversation follows the user across
devices. Either way the server issues a session token, so every later request is checked
with one HMAC and no lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from adapters.http_input import header_bytes

TOKEN_TTL_S = 90 * 24 * 3600


class IdentityError(ValueError):
    """A token or user signature that does not verify; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Identity:
    tenant: str
    subject: str
    """``v:<visitor id>`` for an anonymous visitor, ``u:<user id>`` for an identified user."""

    @property
    def identified(self) -> bool:
        return self.subject.startswith("u:")

    @property
    def user_id(self) -> str:
        return self.subject[2:]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks session tokens: ``base64(tenant|subject|issued).signature``."""

    def __init__(self, key: bytes, *, clock: object = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the widget token key must be at least 16 bytes")
        self._key = key
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())  # type: ignore[operator]

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, header_bytes(body), hashlib.sha256).digest())

    def issue(self, identity: Identity) -> str:
        body = _b64(f"{identity.tenant}|{identity.subject}|{self._now()}".encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, tenant: str) -> Identity:
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(header_bytes(signature),
                                               self._sign(body).encode()):
            raise IdentityError("invalid session token")
        try:
            token_tenant, subject, issued = _unb64(body).decode().split("|")
            age = self._now() - int(issued)
        except ValueError:
            raise IdentityError("invalid session token") from None
        if token_tenant != tenant:
            raise IdentityError("this token belongs to another site")
        if age > TOKEN_TTL_S:
            raise IdentityError("session token expired")
        return Identity(tenant, subject)

    def anonymous(self, tenant: str) -> Identity:
        return Identity(tenant, f"v:{secrets.token_urlsafe(12)}")


def user_signature(secret: str, user_id: str) -> str:
    """What the tenant's server computes: hex HMAC-SHA256 of the user id."""
    return hmac.new(secret.encode(), header_bytes(user_id), hashlib.sha256).hexdigest()


def verify_user(secret: str, tenant: str, user_id: str, signature: str) -> Identity:
    if not secret:
        raise IdentityError("this site does not accept identified users")
    if not user_id or len(user_id) > 128 or "|" in user_id:
        raise IdentityError("invalid user id")
    if not hmac.compare_digest(user_signature(secret, user_id).encode(),
                               header_bytes(signature.lower())):
        raise IdentityError("the user signature does not match")
    return Identity(tenant, f"u:{user_id}")


def load_key(env_value: str, data_dir: Path) -> bytes:
    """The signing key: ``SWITCHBOARD_WIDGET_KEY`` when set (share it between web
    workers), else a random key kept in the data directory so tokens survive restarts."""
    if env_value:
        return env_value.encode()
    path = data_dir / "widget-token.key"
    if path.exists():
        return path.read_bytes()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(key)
    return key
