"""The raw-bytes signature check and the envelope shapes, before bolt sees a body."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adapters.http_input import BadInput
from adapters.slack.envelope import check_shape, verify

SECRET = "s3cret"
NOW = 1_763_770_000


def signature(raw: bytes, stamp: str = str(NOW)) -> str:
    return "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + raw,
                            hashlib.sha256).hexdigest()


def test_the_signature_covers_the_exact_bytes() -> None:
    raw = b'{"type": "event_callback", "text": "\xc3\xa9"}'
    assert verify(SECRET, raw, str(NOW), signature(raw), now=NOW)
    assert not verify(SECRET, raw + b" ", str(NOW), signature(raw), now=NOW)
    assert not verify("other", raw, str(NOW), signature(raw), now=NOW)


@pytest.mark.parametrize("stamp", ["", "abc", "\u00e9", "1e9", "-5", "9" * 30,
                                   str(NOW - 301), str(NOW + 301)])
def test_odd_or_stale_timestamps_are_refused_without_raising(stamp: str) -> None:
    assert not verify(SECRET, b"{}", stamp, signature(b"{}", stamp), now=NOW)


@pytest.mark.parametrize("sig", ["", "v0=", "v1=" + "0" * 64, "v0=" + "\u00e9" * 64,
                                 "v0=\udcff", "v0=" + "0" * 63])
def test_malformed_signatures_are_refused_without_raising(sig: str) -> None:
    assert not verify(SECRET, b"{}", str(NOW), sig, now=NOW)


@pytest.mark.parametrize("text,content_type", [
    ('{"type": "event_callback", "event": "not an object"}', "application/json"),
    ('{"type": "event_callback", "authorizations": {"team_id": "T1"}}', "application/json"),
    ('{"event": {}}', "application/json"), ("[1]", "application/json"),
    ("payload=%5B1%5D", "application/x-www-form-urlencoded"),
    ('payload={"type": "block_actions", "actions": []}', "application/x-www-form-urlencoded"),
    ('payload={"type": "block_actions", "actions": [{"value": "x"}]}', ""),
])
def test_bodies_of_the_wrong_shape_are_400(text: str, content_type: str) -> None:
    with pytest.raises(BadInput) as raised:
        check_shape(text, content_type)
    assert raised.value.status == 400


def test_documented_shapes_pass() -> None:
    check_shape('{"type": "url_verification", "challenge": "c"}', "application/json")
    check_shape('{"type": "event_callback", "team_id": "T1", "event": {"type": "message",'
                ' "user": "U1", "text": "hi", "ts": "1.2", "channel": "C1"}}', "")
    check_shape("command=%2Fswitchboard&text=help&team_id=T1", "")
