"""Client options are validated at construction, with messages that say what to do.

Constructing a client opens no connection, so none of these tests needs a
server or an event loop.
"""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import pytest
import tenacity

import wsclient
from wsclient import Client, ClientState

URL = "ws://127.0.0.1:1/"


def tls_context() -> ssl.SSLContext:
    """A client-side TLS context (no network involved)."""
    return ssl.create_default_context()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"ping_interval": "5"},
            TypeError,
            "ping_interval must be a number of seconds or None",
            id="ping_interval-str",
        ),
        pytest.param(
            {"ping_interval": -1},
            ValueError,
            r"ping_interval must be finite and > 0",
            id="ping_interval-negative",
        ),
        pytest.param(
            {"ping_interval": 0},
            ValueError,
            r"ping_interval must be finite and > 0",
            id="ping_interval-zero",
        ),
        pytest.param(
            {"ping_timeout": float("nan")},
            ValueError,
            "ping_timeout must be finite",
            id="ping_timeout-nan",
        ),
        pytest.param(
            {"ping_interval": True},
            TypeError,
            "number of seconds",
            id="ping_interval-bool",
        ),
        pytest.param(
            {"backoff_jitter": 2},
            ValueError,
            "fraction of the delay: use 0 to 1",
            id="jitter-2",
        ),
        pytest.param(
            {"backoff_jitter": -0.1},
            ValueError,
            r"backoff_jitter must be finite and >= 0",
            id="jitter-negative",
        ),
        pytest.param(
            {"backoff_multiplier": 0.5},
            ValueError,
            r"backoff_multiplier must be >= 1",
            id="multiplier-half",
        ),
        pytest.param(
            {"backoff_initial": -1},
            ValueError,
            r"backoff_initial must be finite and > 0",
            id="initial-negative",
        ),
        pytest.param(
            {"backoff_initial": 0},
            ValueError,
            r"backoff_initial must be finite and > 0",
            id="initial-zero-would-loop",
        ),
        pytest.param(
            {"backoff_max": float("inf")},
            ValueError,
            "backoff_max must be finite",
            id="max-inf",
        ),
        pytest.param(
            {"stable_after": "5"},
            TypeError,
            "stable_after must be a number of seconds",
            id="stable_after-str",
        ),
        pytest.param(
            {"max_attempts": 0},
            ValueError,
            r"max_attempts must be an int >= 1 or None",
            id="max_attempts-0",
        ),
        pytest.param(
            {"max_attempts": 2.5},
            TypeError,
            r"max_attempts must be an int or None",
            id="max_attempts-float",
        ),
        pytest.param(
            {"max_downtime": -5},
            ValueError,
            "max_downtime must be finite and > 0",
            id="max_downtime-negative",
        ),
        pytest.param(
            {"stop": tenacity.stop_after_attempt(3), "max_attempts": 3},
            ValueError,
            "not both: combine them in stop with '|'",
            id="stop-and-max_attempts",
        ),
        pytest.param(
            {"stop": tenacity.stop_after_attempt(3), "max_downtime": 60},
            ValueError,
            "not both",
            id="stop-and-max_downtime",
        ),
        pytest.param(
            {"stop": 3}, TypeError, "stop must be callable or None", id="stop-int"
        ),
        pytest.param(
            {"wait": 2}, TypeError, "wait must be callable or None", id="wait-int"
        ),
        pytest.param(
            {"classify": "retry"},
            TypeError,
            "classify must be callable or None",
            id="classify-str",
        ),
        pytest.param(
            {"heartbeat_interval": 10},
            ValueError,
            "set both heartbeat_interval and heartbeat_timeout",
            id="heartbeat_interval-alone",
        ),
        pytest.param(
            {"heartbeat_timeout": 10},
            ValueError,
            "set both heartbeat_interval and heartbeat_timeout",
            id="heartbeat_timeout-alone",
        ),
        pytest.param(
            {"heartbeat_interval": 10, "heartbeat_timeout": 5, "heartbeat_message": 5},
            TypeError,
            "heartbeat_message must be str, bytes, or a callable",
            id="heartbeat_message-int",
        ),
        pytest.param(
            {"heartbeat_reply": "pong"},
            TypeError,
            "heartbeat_reply must be callable",
            id="heartbeat_reply-str",
        ),
        pytest.param(
            {"open_timeout": -1},
            ValueError,
            "open_timeout must be finite and > 0",
            id="open_timeout-negative",
        ),
        pytest.param(
            {"close_timeout": "10"},
            TypeError,
            "close_timeout must be a number of seconds",
            id="close_timeout-str",
        ),
        pytest.param(
            {"max_size": "big"},
            TypeError,
            "max_size must be a positive int, None, or a pair",
            id="max_size-str",
        ),
        pytest.param(
            {"max_size": 0},
            TypeError,
            "max_size must be a positive int",
            id="max_size-zero",
        ),
        pytest.param(
            {"max_queue": (1, 2, 3)},
            TypeError,
            "max_queue must be a positive int, None, or a pair",
            id="max_queue-triple",
        ),
        pytest.param(
            {"ssl": "yes"},
            TypeError,
            r"ssl must be an ssl.SSLContext or None",
            id="ssl-str",
        ),
        pytest.param(
            {"ssl": True},
            TypeError,
            r"ssl must be an ssl.SSLContext or None",
            id="ssl-true",
        ),
        pytest.param(
            {"compression": "gzip"},
            ValueError,
            "compression must be 'deflate' or None",
            id="compression-gzip",
        ),
        pytest.param(
            {"subprotocols": "chat"},
            TypeError,
            r"subprotocols must be a list of str, e.g. \['chat.v1'\]",
            id="subprotocols-str",
        ),
        pytest.param(
            {"origin": 5}, TypeError, "origin must be a str or None", id="origin-int"
        ),
        pytest.param(
            {"user_agent_header": b"bot"},
            TypeError,
            "user_agent_header must be a str or None",
            id="user_agent-bytes",
        ),
        pytest.param(
            {"proxy": False},
            TypeError,
            r"proxy must be True \(system settings\), None, or a URL",
            id="proxy-false",
        ),
        pytest.param(
            {"additional_headers": 5},
            TypeError,
            r"additional_headers must be a mapping or a list of \(name, value\) pairs",
            id="headers-int",
        ),
        pytest.param(
            {"on_connect": 5},
            TypeError,
            "the callback for 'connect' must be callable",
            id="on_connect-int",
        ),
        pytest.param(
            {"on_give_up": "print"},
            TypeError,
            "the callback for 'give_up' must be callable",
            id="on_give_up-str",
        ),
        pytest.param(
            {"on_undelivered": 1},
            TypeError,
            "the callback for 'undelivered' must be callable",
            id="on_undelivered-int",
        ),
        pytest.param(
            {"buffer_overflow": "drop"},
            ValueError,
            "buffer_overflow must be one of 'block', 'drop_oldest', 'drop_newest', "
            "'fail'; got 'drop'",
            id="buffer_overflow-unknown",
        ),
        pytest.param(
            {"buffer_max_messages": 0},
            ValueError,
            "buffer_max_messages must be >= 1",
            id="buffer_max_messages-zero",
        ),
        pytest.param(
            {"buffer_max_bytes": 1.5},
            TypeError,
            "buffer_max_bytes must be a positive int",
            id="buffer_max_bytes-float",
        ),
        pytest.param(
            {"buffer_ttl": 0},
            ValueError,
            "buffer_ttl must be finite and > 0",
            id="buffer_ttl-zero",
        ),
        pytest.param(
            {"buffer_timeout": "1"},
            TypeError,
            "buffer_timeout must be a number of seconds or None",
            id="buffer_timeout-str",
        ),
        pytest.param(
            {"drain_timeout": None},
            TypeError,
            "drain_timeout must be a number of seconds, got None",
            id="drain_timeout-none",
        ),
        pytest.param(
            {"drain_timeout": -1},
            ValueError,
            "drain_timeout must be finite and >= 0",
            id="drain_timeout-negative",
        ),
    ],
)
def test_invalid_option_raises(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """An invalid option raises at construction with a message saying what to pass."""
    with pytest.raises(error, match=match):
        Client(URL, **kwargs)


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "https://h/", "ftp://x", "ws://"])
def test_non_ws_url_raises_value_error(url: str) -> None:
    """A URL that is not ws:// or wss:// raises ValueError."""
    with pytest.raises(ValueError, match="must start with ws:// or wss://"):
        Client(url)


def test_url_int_raises_type_error() -> None:
    """url=123 raises TypeError listing what url accepts."""
    with pytest.raises(
        TypeError, match="url must be a ws:// or wss:// URL, a non-empty"
    ):
        Client(123)  # type: ignore[arg-type]


def test_empty_url_list_raises_value_error() -> None:
    """An empty list of URLs raises ValueError."""
    with pytest.raises(ValueError, match="non-empty list"):
        Client([])


def test_ssl_with_ws_url_raises() -> None:
    """An SSLContext with a ws:// URL raises ValueError: TLS needs wss://."""
    with pytest.raises(ValueError, match=r"ssl= needs a wss:// URL; drop ssl= or use"):
        Client(URL, ssl=tls_context())


def test_ssl_with_ws_url_list_raises() -> None:
    """An SSLContext with only ws:// URLs in a list raises ValueError."""
    with pytest.raises(ValueError, match="ssl= needs a wss:// URL"):
        Client(["ws://a/", "ws://b/"], ssl=tls_context())


@pytest.mark.parametrize(
    "url",
    ["wss://example.com/", ["ws://a/", "wss://b/"], lambda attempt, last: "wss://a/"],
    ids=["wss", "mixed-list", "provider"],
)
def test_ssl_with_wss_url_accepted(url: Any) -> None:
    """An SSLContext is accepted when a wss:// URL may be used."""
    assert Client(url, ssl=tls_context()).state is ClientState.IDLE


def test_on_bogus_event_raises() -> None:
    """client.on() with an unknown event name raises ValueError listing the names."""
    on: Any = Client(URL).on  # Bypass the type checker, as a user's typo would.
    with pytest.raises(ValueError, match=r"event name must be one of \('connect'"):
        on("bogus", print)


def test_on_non_callable_raises() -> None:
    """client.on() with a non-callable raises TypeError."""
    on: Any = Client(URL).on
    with pytest.raises(TypeError, match="the callback for 'connect' must be callable"):
        on("connect", 5)


def test_on_returns_callback() -> None:
    """client.on() returns the callback, so it works as a decorator."""
    client = Client(URL)

    def on_connect(event: Any) -> None:
        """Do nothing."""

    assert client.on("connect", on_connect) is on_connect


def test_on_as_decorator() -> None:
    """client.on(event) without a callback returns a decorator that registers it."""
    client = Client(URL)

    @client.on("reconnect")
    def on_reconnect(event: Any) -> None:
        """Do nothing."""

    assert callable(on_reconnect)


def test_on_decorator_with_bogus_event_raises() -> None:
    """The decorator form rejects an unknown event name too."""
    on: Any = Client(URL).on
    with pytest.raises(ValueError, match="event name must be one of"):
        on("bogus")(print)


def test_valid_options_accepted() -> None:
    """A client with every kind of valid option constructs without a network."""
    client = Client(
        URL,
        on_connect=print,
        on_disconnect=lambda event: None,
        backoff_initial=0.1,
        backoff_max=5,
        backoff_multiplier=1,
        backoff_jitter=0,
        max_attempts=3,
        max_downtime=60,
        stable_after=0,
        classify=lambda failure, verdict: verdict,
        ping_interval=None,
        ping_timeout=None,
        idle_timeout=30,
        heartbeat_interval=10,
        heartbeat_timeout=5,
        heartbeat_message=b"ping",
        heartbeat_reply=lambda message: message == "pong",
        open_timeout=None,
        max_size=(2**20, None),
        max_queue=None,
        additional_headers=[("Authorization", "Bearer x")],
        subprotocols=["chat.v1"],
        compression=None,
        proxy=None,
        user_agent_header=None,
        origin="https://example.com",
    )
    assert client.state is ClientState.IDLE


def test_user_strategies_accepted() -> None:
    """tenacity wait and stop strategies are accepted."""
    client = Client(
        URL,
        wait=tenacity.wait_random_exponential(multiplier=1, max=60),
        stop=tenacity.stop_after_attempt(5) | tenacity.stop_after_delay(300),
    )
    assert client.state is ClientState.IDLE


def test_state_idle_before_entering() -> None:
    """A new client is IDLE until it is entered."""
    assert Client(URL).state is ClientState.IDLE


def test_repr_before_entering() -> None:
    """repr() of a new client works and shows that it has not started."""
    text = repr(Client(URL))
    assert text.startswith("<Client ")
    assert "(not started)" in text
    assert "state=idle" in text


def test_repr_does_not_leak_secrets() -> None:
    """repr() of a new client does not show the password or query values."""
    text = repr(Client("wss://u:secret@h/p?token=abc"))
    assert "secret" not in text
    assert "abc" not in text


def test_url_and_stats_before_entering() -> None:
    """Before entering, url is empty and the counters are zero."""
    client = Client(URL)
    assert client.url == ""
    assert client.stats.connects == 0
    assert client.stats.reconnects == 0


def test_client_is_exported() -> None:
    """wsclient.Client is the class tested here."""
    assert wsclient.Client is Client


def test_websockets_defaults_are_not_kept() -> None:
    """A client keeps only the websockets options that differ from
    websockets' defaults (every reader falls back on the same defaults)."""
    from websockets.asyncio.client import connect

    client = Client("ws://127.0.0.1:1/", proxy=None, max_queue=32, compression=None)
    kept = client._options.websockets
    assert kept == {"proxy": None, "max_queue": 32, "compression": None, "ssl": None}
    # What is left out is what websockets does anyway.
    defaults = inspect.signature(connect.__init__).parameters
    for name in ("open_timeout", "close_timeout", "max_size", "user_agent_header"):
        assert name not in kept
        assert defaults[name].default == Client.__init__.__kwdefaults__[name]


@pytest.mark.parametrize(
    ("options", "provider", "fixed"),
    [
        ({"proxy": None}, False, True),
        ({"proxy": "http://127.0.0.1:3128"}, False, True),
        ({}, False, False),  # proxy=True: the environment may change.
        ({"proxy": None}, True, False),  # Each attempt gets a new URL.
        ({"proxy": None, "additional_headers": lambda: {}}, False, False),
        # A dict is the caller's: a token may be added after construction.
        ({"proxy": None, "additional_headers": {}}, False, False),
    ],
)
def test_credentials_checked_per_attempt_only_when_they_can_change(
    options: dict[str, Any], provider: bool, fixed: bool
) -> None:
    """Attempts skip the credentials check only when the one made at
    construction covers them: static URLs, no headers, no proxy lookup."""
    url: Any = (lambda: "ws://127.0.0.1:1/") if provider else "ws://127.0.0.1:1/"
    client = Client(url, **options)
    assert client._options.credentials_fixed(not provider) is fixed


WEBSOCKETS_OPTIONS = (
    "open_timeout",
    "close_timeout",
    "max_size",
    "max_queue",
    "additional_headers",
    "subprotocols",
    "compression",
    "proxy",
    "user_agent_header",
    "origin",
)
"""The Client options passed through to websockets' connect() (but ssl,
which asyncio's connect() takes through **kwargs)."""


def test_trio_connect_has_the_defaults_read_from_asyncio() -> None:
    """A client drops the options equal to the defaults of websockets'
    asyncio connect(); its trio connect() must have the same, or a trio
    client would get another value than the one it asked for."""
    from websockets.asyncio.client import connect as asyncio_connect
    from websockets.trio.client import connect as trio_connect

    def defaults(connect: Any) -> dict[str, Any]:
        parameters = inspect.signature(connect.__init__).parameters.values()
        return {p.name: p.default for p in parameters if p.default is not p.empty}

    on_asyncio, on_trio = defaults(asyncio_connect), defaults(trio_connect)
    for name in WEBSOCKETS_OPTIONS:
        assert on_trio[name] == on_asyncio[name], name
