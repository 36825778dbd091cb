"""Tokens at rest: unreadable without the key, readable after a key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from adapters.slack.installations import Installation, MongoInstallationStore
from adapters.slack.token_cipher import CipherKeyError, TokenCipher, TokenDecryptError
from core.stores.mongo_client import MongoConnection


def test_rotation_reads_old_tokens_and_writes_with_the_new_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = TokenCipher(old).encrypt("xoxb-secret")
    rotated = TokenCipher(f"{new},{old}")
    assert rotated.decrypt(sealed) == "xoxb-secret"
    assert TokenCipher(new).decrypt(rotated.encrypt("xoxb-secret")) == "xoxb-secret"
    with pytest.raises(TokenDecryptError):
        TokenCipher(new).decrypt(sealed)


@pytest.mark.parametrize("key", ["", "not-a-fernet-key", " , "])
def test_a_bad_key_is_a_clear_error(key: str) -> None:
    with pytest.raises(CipherKeyError, match="SLACK_TOKEN_ENCRYPTION_KEY"):
        TokenCipher(key)


async def test_installations_round_trip_without_plaintext(mongo: MongoConnection) -> None:
    store = MongoInstallationStore(mongo.db, TokenCipher(Fernet.generate_key().decode()))
    await store.save(Installation("slack", "T1", "xoxb-plain", bot_user_id="U1",
                                  scopes=("chat:write",)))
    raw = await store.raw("slack", "T1")
    assert raw is not None and "xoxb-plain" not in str(raw)
    found = await store.find("slack", "T1")
    assert found is not None and found.bot_token == "xoxb-plain" and found.bot_user_id == "U1"
    assert await store.delete("slack", "T1") and await store.find("slack", "T1") is None
    assert not await store.delete("slack", "T1")
