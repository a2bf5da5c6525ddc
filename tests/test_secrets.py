"""Credentials never leak: logs (websockets' DEBUG included), repr(),
exception messages and tracebacks, events, stats. And they never travel in
clear text to another machine unless the application says so."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import Client, ConnectionRejected

from .utils import LONG, Recorder, fast_options

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio

CANARY = "c4n4ry-s3cr3t"


def leaks(*things: object) -> list[str]:
    """Those of ``things`` (as text) that contain the canary."""
    return [text for text in map(str, things) if CANARY in text]


def exception_text(exc: BaseException) -> str:
    """A traceback with every chained cause, as a user would see it."""
    return "".join(traceback.format_exception(exc))


class CapturedLogs(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Any:
    """Capture all log output at DEBUG, websockets' own loggers included."""
    handler = CapturedLogs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_no_canary_anywhere(server: Server, all_logs: CapturedLogs) -> None:
    """Connect, reconnect, 401, 429, a DNS failure and a bad URI, with a token
    in the URL and in three headers: the token is never written anywhere."""
    base = server.url
    urls = [
        f"{base}/?token={CANARY}&user=me",
        f"{base}/?token={CANARY}",  # Refused with 429.
        f"{base}/?token={CANARY}",  # Refused with 401: credentials refused.
    ]
    headers = {
        "Authorization": f"Bearer {CANARY}",
        "X-Api-Key": CANARY,
        "Cookie": f"session={CANARY}",
    }
    recorder = Recorder()
    errors: list[BaseException] = []

    def provider(attempt: int, last: object) -> str:
        return urls.pop(0) if urls else base

    options = fast_options(additional_headers=headers, **recorder.callbacks())
    client = Client(provider, **options)
    async with client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
            await client.send('{"type": "echo", "data": 1}')
            await anext(aiter(client))
            server.refuse_next(1, 429, retry_after=0)
            await server.abort_all()  # Reconnect: refused with 429 once.
            await recorder.wait_for("disconnect", 2)
            # A provider fetches fresh credentials: one more try, then stop.
            server.refuse_next(2, 401)
            await recorder.wait_for("disconnect", 4)
            with pytest.raises(wsclient.AuthenticationError) as refused:
                await client.wait_connected()
            errors.append(refused.value)

    # A DNS failure (the .invalid TLD never resolves), then a bad URI.
    dns = Client(
        lambda attempt, last: f"ws://wsclient-test.invalid/?token={CANARY}",
        allow_insecure_credentials=True,  # Else refused before any lookup.
        **fast_options(max_attempts=1, **recorder.callbacks()),
    )
    async with dns:
        with anyio.fail_after(LONG), pytest.raises(wsclient.GaveUp) as gave_up:
            await dns.wait_connected()
    errors.append(gave_up.value)
    # websockets' InvalidURI (a fragment) prints the whole URI.
    bad_uri = Client(
        lambda attempt, last: f"{base}/?token={CANARY}#fragment",
        **fast_options(**recorder.callbacks()),
    )
    async with bad_uri:
        with anyio.fail_after(LONG), pytest.raises(ConnectionRejected) as bad:
            await bad_uri.wait_connected()
    errors.append(bad.value)

    assert any("GET /?token=***" in line for line in all_logs.lines), (
        "websockets' DEBUG log of the request line was not captured"
    )
    assert leaks(*all_logs.lines) == []
    assert leaks(*map(exception_text, errors)) == []
    assert leaks(*[repr(event) for _, event in recorder.events]) == []
    assert leaks(repr(client), client.url, client.stats, repr(dns), repr(bad_uri)) == []


async def test_first_frames_not_logged(server: Server, all_logs: CapturedLogs) -> None:
    """Outgoing data frames show only their size in websockets' DEBUG log: a
    first-message credential is never written out."""
    async with Client(server.url, **fast_options()) as client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
            await client.send(f'{{"type": "auth", "token": "{CANARY}"}}')
            await client.send(b"binary " + CANARY.encode())
    # The reference server echoes the message back: the client logs what it
    # receives (as websockets does), never what it sends; and the server
    # never logs what it receives.
    client_lines = [
        line
        for line in all_logs.lines
        if not line.startswith("websockets.client DEBUG < ")
        and not line.startswith("wsclient.server DEBUG > ")
    ]
    assert leaks(*client_lines) == []
    assert any("TEXT [" in line and "not logged" in line for line in client_lines)


@pytest.mark.parametrize(
    ("url", "headers", "what"),
    [
        ("ws://example.com/feed?token=x", None, "query parameter 'token'"),
        ("ws://example.com/feed?api_key=x", None, "query parameter 'api_key'"),
        ("ws://user:pw@example.com/feed", None, "credentials in the URL"),
        ("ws://example.com/", {"Authorization": "Bearer x"}, "'Authorization' header"),
        ("ws://example.com/", [("X-Api-Key", "x")], "'X-Api-Key' header"),
        ("ws://10.0.0.1/", {"Cookie": "s=1"}, "'Cookie' header"),
    ],
)
def test_credentials_over_plain_ws_refused(url: str, headers: Any, what: str) -> None:
    """Credentials over ws:// to another machine need an explicit opt-in."""
    with pytest.raises(ValueError, match=f"{what}.*allow_insecure_credentials=True"):
        Client(url, additional_headers=headers)
    Client(url, additional_headers=headers, allow_insecure_credentials=True)


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:1/?token=x",
        "ws://localhost:1/?token=x",
        "ws://[::1]:1/?token=x",
        "ws://127.8.9.10/?token=x",
        "wss://example.com/?token=x",
        "ws://example.com/?page=2",  # No credential.
    ],
)
def test_loopback_tls_or_no_credential_allowed(url: str) -> None:
    """Loopback, wss:// and URLs without credentials need no opt-in."""
    headers = None if "?page" in url else {"Authorization": "Bearer x"}
    Client(url, additional_headers=headers)


def test_allow_insecure_credentials_must_be_bool() -> None:
    with pytest.raises(TypeError, match="allow_insecure_credentials must be a bool"):
        Client("ws://127.0.0.1/", allow_insecure_credentials="yes")  # type: ignore[arg-type]


async def test_provider_credentials_over_plain_ws_fatal(anyio_backend: object) -> None:
    """A URL provider or a headers callable is checked at every attempt: the
    client stops before connecting, with a clear reason."""
    recorder = Recorder()
    client = Client(
        lambda attempt, last: "ws://wsclient-test.invalid/",
        additional_headers=lambda: {"Authorization": "Bearer x"},
        **fast_options(**recorder.callbacks()),
    )
    async with client:
        with anyio.fail_after(LONG), pytest.raises(ConnectionRejected) as info:
            await client.wait_connected()
    assert "clear text over ws:// to wsclient-test.invalid" in str(info.value)
    [event] = recorder.of("disconnect")
    assert event.failure.kind is wsclient.FailureKind.INSECURE
    assert client.stats.failed_attempts == 1


@pytest.mark.parametrize(
    "url",
    [
        f"wss://{CANARY}@example.com/feed",
        f"wss://user:{CANARY}@example.com/feed",
        f"wss://example.com/feed?{CANARY}",
        f"wss://example.com/feed?a=1&token={CANARY}&b",
        f"wss://example.com/feed?x={CANARY}=y",
    ],
)
def test_redact_url_hides_every_form(url: str) -> None:
    """User info, bare query values and values with '=' are all hidden."""
    from wsclient._secrets import redact_url

    assert CANARY not in redact_url(url)


def test_scrub_redacts_proxy_bytes_and_response_headers() -> None:
    """Exceptions whose text comes from attributes are scrubbed too."""
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidProxy, InvalidStatus
    from websockets.http11 import Response

    from wsclient._transport.base import failure_from_exception

    proxy = InvalidProxy(f"http://user:{CANARY}@proxy:3128/", "bad proxy")
    decode = UnicodeDecodeError("utf-8", f"\xff{CANARY}".encode(), 0, 1, "invalid")
    headers = Headers([("Set-Cookie", f"session={CANARY}"), ("X-Ok", "1")])
    status = InvalidStatus(Response(401, "Unauthorized", headers))
    for exc in (proxy, decode, status):
        failure = failure_from_exception(exc)
        assert leaks(repr(failure), str(failure), exception_text(exc)) == []
    assert failure.headers["x-ok"] == "1"


@pytest.mark.parametrize(
    "host", ["localhost.", "x.localhost", "localhost.example.com", "127.0.0.1.nip.io"]
)
def test_only_real_loopback_is_exempt(host: str) -> None:
    """Names that DNS could answer are not taken for this machine."""
    with pytest.raises(ValueError, match="clear text"):
        Client(f"ws://{host}/?token=x")


def test_proxied_loopback_is_not_exempt() -> None:
    """Through a proxy, even loopback traffic leaves the machine."""
    with pytest.raises(ValueError, match="clear text"):
        Client("ws://127.0.0.1:1/?token=x", proxy="http://127.0.0.1:3128")
    Client("ws://127.0.0.1:1/?token=x", proxy=None)


def test_header_values_are_never_echoed() -> None:
    """A malformed header must not put its value in the error message."""
    with pytest.raises(TypeError) as info:
        Client("ws://127.0.0.1/", additional_headers=[["Authorization", CANARY]])
    assert CANARY not in str(info.value)
    with pytest.raises(ValueError, match="line break"):
        Client("ws://127.0.0.1/", additional_headers={"Authorization": "t\n"})


def test_repeated_header_names_are_accepted() -> None:
    """websockets.Headers may repeat a name: read with raw_items()."""
    from websockets.datastructures import Headers

    from wsclient._secrets import header_items, strip_sensitive

    headers = Headers([("X-Trace", "a"), ("X-Trace", "b"), ("Cookie", "s=1")])
    assert strip_sensitive(header_items(headers)) == [
        ("X-Trace", "a"),
        ("X-Trace", "b"),
    ]
    Client("ws://127.0.0.1/", additional_headers=headers)
