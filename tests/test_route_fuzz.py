"""Every route of ``switchboard serve`` answers malformed input with a 4xx, never a 5xx.

The routes come from the real application's router, so a new route is fuzzed without
touching this file. Requests are written byte by byte on a raw socket, so nothing a
client library would refuse to send (invalid UTF-8, odd charsets, non-ASCII header
values, deeply nested JSON) is filtered out before it reaches the server. The mix of
paths, methods, bodies, content types and headers is drawn by hypothesis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.settings import Settings
from bots.web import build_app
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
SLACK_SECRET = "fuzz-slack-signing-secret"
OWN_SECRET = "fuzz-own-app-secret"
API_KEY = "fuzz-admin-api-key"

NESTED = b"[" * 50_000 + b"]" * 50_000
BODIES = [
    b"", b"\xff\xfe\xfa not utf-8 \xc3\x28", b"{", b"[1, 2]", b'"a string"', b"null", b"42",
    NESTED, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b'{"key": "\xff"}',
    b'{"type": "event_callback", "event": "not an object"}', b'{"key": 1e999999}',
    b"payload=%FF%FE", b"payload=%5B1%5D", b"payload=" + b"%7B" * 3000, b"a=b&a=c&=&&",
    b'{"key": "pk_fuzz_1", "token": "\\u00e9\\u0000", "user_id": "x", "user_hmac": "\\u00e9"}',
    b'{"key": "pk_fuzz_1", "token": "\\ud800.x", "user_id": "\\ud800", "user_hmac": "\\udfff"}',
    b'{"key": "pk_fuzz_1", "token": "t", "frame": {"type": "message", "text": " ",'
    b' "client_id": "abcdef"}}',
    b'{"query": "' + b"x" * 5000 + b'", "top_k": -1}', b'{"source": "http://[::1"}',
    b"--x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\xff\r\n--x--\r\n",
]
CONTENT_TYPES = [
    "", "application/json", "application/json; charset=utf-16", "text/plain; charset=bogus",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-9",
    "multipart/form-data; boundary=x", "multipart/form-data", "application/octet-stream",
]
HEADER_SETS: list[list[tuple[str, bytes]]] = [
    [],
    [("X-Slack-Request-Timestamp", b"not-a-number"), ("X-Slack-Signature", b"v0=zz")],
    [("X-Slack-Request-Timestamp", b"99999999999999999999999"),
     ("X-Slack-Signature", b"v0=" + b"0" * 64)],
    [("X-Slack-Request-Timestamp", "\u00e9".encode()), ("X-Slack-Signature", b"\xff")],
    [("Origin", b"https://a.example:99999")], [("Origin", b"http://[::1")],
    [("Origin", "https://\u00fcber.example".encode())], [("Origin", b"null")],
    [("Authorization", "Bearer \u043a\u043b\u044e\u0447".encode())],
    [("Authorization", b"Bearer \xff\xfe")], [("Authorization", b"Basic")],
    [("Last-Event-ID", b"abc")], [("Last-Event-ID", b"-5")],
    [("Content-Length", b"99999999999")],
    [("Cookie", b"sb_oauth_state=\xff; other=\x00")],
    [("Upgrade", b"websocket"), ("Connection", b"Upgrade"), ("Sec-WebSocket-Version", b"13"),
     ("Sec-WebSocket-Key", b"not base64!!")],
]
QUERIES = ["", "?key=%FF", "?key=pk_fuzz_1&token=%C3%A9%00", "?key=pk_fuzz_1&after=abc",
           "?key=pk_fuzz_1&after=-1", "?code=x&state=%FF", "?key=" + "k" * 5000,
           "?key=pk_fuzz_1&token=" + "%E2%98%83" * 200, "?a=%", "?error=access_denied"]
PATH_VALUES = ["fuzz", "nobody", "%00", "%C3%BC", "..%2F..%2Fetc", "x" * 300, "%FF"]


def _routes() -> list[tuple[str, str]]:
    app = build_app(Settings())
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                   if r.resource is not None and r.method != "HEAD"})


def _fill(path: str, value: str) -> str:
    for name in ("{tenant}", "{doc_id}", "{tail}"):
        path = path.replace(name, value)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("fuzz")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "fuzz.toml").write_text(
        'id = "fuzz"\nname = "Fuzz"\n[api]\nkey_env = "FUZZ_API_KEY"\n'
        '[slack]\nteam_ids = ["T0FUZZ"]\nbot_token_env = "FUZZ_SLACK_BOT_TOKEN"\n'
        'signing_secret_env = "FUZZ_SLACK_SIGNING_SECRET"\n'
        '[widget]\npublic_key = "pk_fuzz_1"\nsecret_env = "FUZZ_WIDGET_SECRET"\n'
        'allowed_origins = ["https://site.example"]\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SLACK_SECRET,
           "SLACK_API_URL": "http://127.0.0.1:9/api/", "FUZZ_API_KEY": API_KEY,
           "FUZZ_SLACK_SIGNING_SECRET": OWN_SECRET, "FUZZ_SLACK_BOT_TOKEN": "xoxb-fuzz",
           "FUZZ_WIDGET_SECRET": "fuzz-widget-secret", "HF_HUB_OFFLINE": "1"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base, home / "serve.log"
    process.terminate()
    process.wait(timeout=30)


async def raw_request(base: str, method: str, target: str,
                      headers: list[tuple[str, bytes]], body: bytes) -> int:
    """Send one request as raw bytes; the status code, or 0 if the server hung up."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        names = {n.lower() for n, _ in headers}
        lines = [name.encode() + b": " + value for name, value in headers]
        if "content-length" not in names:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        lines.append(b"Connection: close")
        writer.write(head + b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(15):
            status_line = await reader.readline()
        parts = status_line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (ConnectionResetError, TimeoutError, BrokenPipeError):
        return 0
    finally:
        writer.close()


def _signed(body: bytes, secret: str) -> list[tuple[str, bytes]]:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return [("X-Slack-Request-Timestamp", stamp.encode()),
            ("X-Slack-Signature", f"v0={digest.hexdigest()}".encode())]


@st.composite
def malformed_requests(draw: st.DrawFn, routes: list[tuple[str, str]]
                       ) -> tuple[str, str, list[tuple[str, bytes]], bytes]:
    method, path = draw(st.sampled_from(routes))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["PUT", "PATCH", "DELETE", "POST", "GET", "BREW"]))
    target = _fill(path, draw(st.sampled_from(PATH_VALUES))) + draw(st.sampled_from(QUERIES))
    body = draw(st.sampled_from(BODIES))
    headers = list(draw(st.sampled_from(HEADER_SETS)))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers.append(("Content-Type", content_type.encode()))
    if path.startswith("/slack/events") and draw(st.booleans()):
        # Correctly signed garbage: past the signature, the body itself must be checked.
        secret = OWN_SECRET if "{tenant}" in path else SLACK_SECRET
        target = path.replace("{tenant}", "fuzz")
        headers = [h for h in headers if not h[0].startswith("X-Slack")] + _signed(body, secret)
    if path.startswith("/api/") and draw(st.booleans()):
        target = _fill(path, "fuzz") + draw(st.sampled_from(QUERIES))
        headers.append(("Authorization", f"Bearer {API_KEY}".encode()))
    if path.startswith("/widget/") and draw(st.booleans()):
        headers.append(("Origin", b"https://site.example"))
    return method, target, headers, body


async def test_no_route_answers_malformed_input_with_a_server_error(served: Any) -> None:
    base, log_file = served
    routes = _routes()
    cases: list[tuple[str, str, list[tuple[str, bytes]], bytes]] = []

    @settings(max_examples=600, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed_requests(routes))
    def collect(case: tuple[str, str, list[tuple[str, bytes]], bytes]) -> None:
        cases.append(case)

    collect()
    # Every route at least once with every body, so coverage does not depend on luck.
    for method, path in routes:
        for body in BODIES:
            cases.append((method, _fill(path, "fuzz"), [("Content-Type", b"application/json")],
                          body))
    failures: list[tuple[int, str, str, bytes]] = []
    semaphore = asyncio.Semaphore(16)

    async def one(method: str, target: str, headers: list[tuple[str, bytes]],
                  body: bytes) -> None:
        async with semaphore:
            status = await raw_request(base, method, target, headers, body)
        readiness = target.startswith("/readyz") and status == 503  # its contract
        if (status >= 500 and not readiness) or status == 0:
            failures.append((status, method, target[:80], body[:60]))

    await asyncio.gather(*(one(*case) for case in cases))
    grouped = Counter((status, method, target.split("?")[0]) for status, method, target, _
                      in failures)
    assert failures == [], (f"{len(failures)} of {len(cases)} requests failed: "
                            f"{grouped.most_common(30)}; for example {failures[:6]}")
    tracebacks = log_file.read_text(errors="replace").count("Traceback")
    assert tracebacks == 0, f"the server logged {tracebacks} tracebacks"


def test_the_fuzzer_covers_every_route() -> None:
    paths = {p for _, p in _routes()}
    assert {"/slack/events", "/slack/events/{tenant}", "/widget/v1/messages",
            "/api/v1/tenants/{tenant}/search", "/metrics"} <= paths
    assert json.dumps(sorted(paths))  # the list is plain data, printable in a report
