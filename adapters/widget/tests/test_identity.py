"""Widget identities: tokens cannot be forged, moved between tenants or kept forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.widget.identity import (
    TOKEN_TTL_S,
    Identity,
    IdentityError,
    TokenSigner,
    load_key,
    user_signature,
    verify_user,
)


def test_tokens_verify_only_unaltered_for_their_tenant() -> None:
    now = [1_800_000_000.0]
    signer = TokenSigner(b"k" * 32, clock=lambda: now[0])
    token = signer.issue(Identity("acme", "v:abc"))
    assert signer.verify(token, "acme") == Identity("acme", "v:abc")
    with pytest.raises(IdentityError, match="another site"):
        signer.verify(token, "globex")
    body, signature = token.split(".")
    with pytest.raises(IdentityError):
        signer.verify(f"{body}x.{signature}", "acme")
    with pytest.raises(IdentityError):
        TokenSigner(b"other-key-of-16b" * 2).verify(token, "acme")
    now[0] += TOKEN_TTL_S + 1
    with pytest.raises(IdentityError, match="expired"):
        signer.verify(token, "acme")


def test_user_signatures() -> None:
    good = user_signature("s3cret", "user-42")
    assert verify_user("s3cret", "acme", "user-42", good.upper()).subject == "u:user-42"
    for secret, user, signature in (("s3cret", "user-43", good), ("", "user-42", good),
                                    ("s3cret", "a|b", user_signature("s3cret", "a|b"))):
        with pytest.raises(IdentityError):
            verify_user(secret, "acme", user, signature)


def test_the_generated_key_is_kept_private_and_stable(tmp_path: Path) -> None:
    first = load_key("", tmp_path)
    assert load_key("", tmp_path) == first and len(first) == 32
    assert (tmp_path / "widget-token.key").stat().st_mode & 0o077 == 0
    assert load_key("from-the-environment", tmp_path) == b"from-the-environment"
