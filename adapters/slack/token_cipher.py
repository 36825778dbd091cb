"""Encryption at rest for platform tokens (Slack bot tokens from OAuth installs).

A token stored in MongoDB is useless without the key, which lives only in the
environment (``SLACK_TOKEN_ENCRYPTION_KEY``). The key is one Fernet key or several
separated by commas: the first encrypts, all decrypt, so a key is rotated by putting
the new one first and re-saving (every install re-encrypts with the first key).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CipherKeyError(ValueError):
    """The configured key is missing or not a Fernet key."""


class TokenDecryptError(ValueError):
    """A stored token cannot be read with the configured keys (rotated away or tampered)."""


class TokenCipher:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise CipherKeyError("SLACK_TOKEN_ENCRYPTION_KEY is empty; generate one with "
                                 "`python -c 'from cryptography.fernet import Fernet; "
                                 "print(Fernet.generate_key().decode())'`")
        try:
            self._fernet = MultiFernet([Fernet(p.encode()) for p in parts])
        except ValueError as exc:
            raise CipherKeyError("SLACK_TOKEN_ENCRYPTION_KEY must be Fernet keys (32 bytes, "
                                 "url-safe base64), separated by commas") from exc

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise TokenDecryptError("stored token cannot be decrypted with "
                                    "SLACK_TOKEN_ENCRYPTION_KEY") from exc
