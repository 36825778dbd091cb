"""Origins are compared normalized; a malformed one matches nothing and raises nothing."""

from __future__ import annotations

import pytest

from adapters.widget.identity import IdentityError, TokenSigner, verify_user
from adapters.widget.server import origin_of


def test_origins_normalize_scheme_host_and_default_port() -> None:
    assert origin_of("https://Acme.Example:443") == "https://acme.example"
    assert origin_of("http://acme.example:8080/path") == "http://acme.example:8080"


@pytest.mark.parametrize("origin", ["https://a.example:99999", "http://[::1", "null", "",
                                    "https://", "a.example"])
def test_malformed_origins_match_nothing(origin: str) -> None:
    assert origin_of(origin) == ""


@pytest.mark.parametrize("token", ["\u00e9.\u00e9", "abc.\udcff", ".", "x." + "\u2603" * 40,
                                   "\ud800.x", "ab.\ud800"])
def test_non_ascii_session_tokens_are_refused_not_crashed(token: str) -> None:
    with pytest.raises(IdentityError):
        TokenSigner(b"k" * 32).verify(token, "acme")


@pytest.mark.parametrize(("user_id", "signature"), [("user-1", "\u00e9" * 64),
                                                    ("user-1", "\ud800" * 64),
                                                    ("\ud800", "00" * 32)])
def test_a_non_ascii_user_signature_is_refused_not_crashed(user_id: str,
                                                           signature: str) -> None:
    with pytest.raises(IdentityError):
        verify_user("secret", "acme", user_id, signature)
