"""Validate and normalise the options of :class:`wsclient.Client`.

Every check raises :exc:`TypeError` or :exc:`ValueError` at construction, with
a message that says what to pass instead, so that a typo fails on the first
line of a bot rather than at 3 a.m. on the first reconnect.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import ssl as ssl_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import tenacity
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from ._calls import call
from ._core.backoff import ExponentialJitter, StopStrategy, WaitStrategy
from ._core.classify import Verdict
from ._core.failure import Failure
from ._secrets import RedactingLogger, header_items, insecure_credentials

if TYPE_CHECKING:
    from websockets.typing import Data

__all__ = ["ClassifyHook", "Options", "check_seconds"]

ClassifyHook: TypeAlias = Callable[[Failure, Verdict], Verdict]
"""``classify(failure, default_verdict)`` → the verdict to apply."""


def check_seconds(
    name: str, value: object, *, allow_none: bool, zero: bool = False
) -> float | None:
    """Return ``value`` if it is a valid duration in seconds, else raise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        none = " or None" if allow_none else ""
        raise TypeError(f"{name} must be a number of seconds{none}, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        floor = ">= 0" if zero else "> 0"
        raise ValueError(f"{name} must be finite and {floor}, got {value!r}")
    return float(value)


def _limit(name: str, value: object) -> None:
    """websockets' max_size / max_queue: an int, None, or an (int|None) pair."""
    items = value if isinstance(value, tuple) else (value,)
    if len(items) not in (1, 2) or not all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
        for v in items
    ):
        raise TypeError(
            f"{name} must be a positive int, None, or a pair of them, got {value!r}"
        )


_WEBSOCKETS_LOGGER = RedactingLogger(logging.getLogger("websockets.client"))


def _system_proxy(url: str) -> bool:
    """Whether websockets would go through a proxy for ``url`` (proxy=True)."""
    try:
        return get_proxy(parse_uri(url)) is not None
    except Exception:  # An invalid URL fails later, as an attempt's failure.
        return False


def _check_headers(headers: object, what: str = "additional_headers") -> None:
    """Check handshake headers; never echo a value (it may be a token)."""
    problem = f"{what} must be a mapping or a list of (name, value) pairs"
    if not isinstance(headers, Mapping | Sequence) or isinstance(headers, str | bytes):
        raise TypeError(
            f"{problem}, or a callable returning one; got {type(headers).__name__}"
        )
    raw_items = getattr(headers, "raw_items", None)  # websockets.Headers
    if callable(raw_items):
        items: Any = raw_items()
    else:
        items = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not all(isinstance(part, str) for part in item)
        ):
            raise TypeError(f"{problem} of str; got an item of type {_shape(item)}")
        name, value = item
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(
                f"the {name[:40]!r} header contains a line break or NUL: strip "
                f"the value (a token read from a file often ends with a newline)"
            )


def _shape(item: object) -> str:
    """The type of ``item`` without its content: ``list[str, str]``."""
    if isinstance(item, tuple | list):
        return f"{type(item).__name__}[{', '.join(type(i).__name__ for i in item)}]"
    return type(item).__name__


@functools.cache
def _websockets_defaults() -> dict[str, Any]:
    """The defaults of websockets' ``connect()``.

    Read when the first client is made, not at import (importing wsclient
    imports no backend), and from the asyncio module only: trio is optional.
    Its trio ``connect()`` has the same defaults (tests/test_options.py
    checks it for the websockets versions we accept).
    """
    from websockets.asyncio.client import connect

    parameters = inspect.signature(connect.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not p.empty}


def _is_websockets_default(name: str, value: object) -> bool:
    defaults = _websockets_defaults()
    if name not in defaults:
        return False
    default = defaults[name]
    return type(value) is type(default) and value == default


@dataclass(frozen=True, slots=True)
class Options:
    """All the options of a client, validated. See :class:`wsclient.Client`."""

    # Reconnection
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.5
    max_attempts: int | None = None
    max_downtime: float | None = None
    stable_after: float = 5.0
    wait: WaitStrategy | None = None
    stop: StopStrategy | None = None
    classify: ClassifyHook | None = None
    # Heartbeat
    ping_interval: float | None = 20
    ping_timeout: float | None = 20
    idle_timeout: float | None = None
    heartbeat_interval: float | None = None
    heartbeat_timeout: float | None = None
    heartbeat_message: Data | Callable[[], Data] = '{"type": "ping"}'
    heartbeat_reply: Callable[[Data], bool] | None = None
    # Security
    allow_insecure_credentials: bool = False
    first_message_auth: bool = False
    """Whether a token goes in the first message (the ``auth`` option)."""
    # websockets' connection options, passed through unchanged (except
    # additional_headers, which may be a callable called per attempt).
    websockets: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A zero initial delay would stay zero: a tight reconnect loop.
        check_seconds("backoff_initial", self.backoff_initial, allow_none=False)
        check_seconds("backoff_max", self.backoff_max, allow_none=False)
        check_seconds("stable_after", self.stable_after, allow_none=False, zero=True)
        check_seconds("backoff_multiplier", self.backoff_multiplier, allow_none=False)
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be >= 1 (1 keeps the delay flat)")
        check_seconds(
            "backoff_jitter", self.backoff_jitter, allow_none=False, zero=True
        )
        if self.backoff_jitter > 1:
            raise ValueError("backoff_jitter is a fraction of the delay: use 0 to 1")
        attempts = self.max_attempts
        if attempts is not None and (
            not isinstance(attempts, int) or isinstance(attempts, bool)
        ):
            raise TypeError(f"max_attempts must be an int or None, got {attempts!r}")
        if attempts is not None and attempts < 1:
            raise ValueError(
                f"max_attempts must be an int >= 1 or None, got {self.max_attempts!r}"
            )
        for name in (
            "max_downtime",
            "ping_interval",
            "ping_timeout",
            "idle_timeout",
            "heartbeat_interval",
            "heartbeat_timeout",
        ):
            check_seconds(name, getattr(self, name), allow_none=True)
        self._check_strategies()
        self._check_heartbeat()
        self._check_websockets(self.websockets)
        # Kept for the life of the client: without what websockets does by
        # default anyway, the dict is a fraction of the size (every reader
        # falls back on the same defaults).
        compact = {
            name: value
            for name, value in self.websockets.items()
            if not _is_websockets_default(name, value)
        }
        object.__setattr__(self, "websockets", compact)

    def _check_strategies(self) -> None:
        for name in ("wait", "stop", "classify", "heartbeat_reply"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None, got {value!r}")
        if self.stop is not None and (
            self.max_attempts is not None or self.max_downtime is not None
        ):
            raise ValueError(
                "pass either stop= (a tenacity stop strategy) or max_attempts= / "
                "max_downtime=, not both: combine them in stop with '|'"
            )

    def _check_heartbeat(self) -> None:
        if (self.heartbeat_interval is None) != (self.heartbeat_timeout is None):
            raise ValueError(
                "set both heartbeat_interval and heartbeat_timeout to enable the "
                "application-level heartbeat, or neither"
            )
        message = self.heartbeat_message
        if not isinstance(message, str | bytes) and not callable(message):
            raise TypeError(
                "heartbeat_message must be str, bytes, or a callable returning one, "
                f"got {message!r}"
            )

    @staticmethod
    def _check_websockets(options: Mapping[str, Any]) -> None:
        for name in ("open_timeout", "close_timeout"):
            check_seconds(name, options.get(name), allow_none=True)
        for name in ("max_size", "max_queue"):
            if name in options:
                _limit(name, options[name])
        ssl = options.get("ssl")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, got {ssl!r}")
        subprotocols = options.get("subprotocols")
        if subprotocols is not None and (
            isinstance(subprotocols, str) or not isinstance(subprotocols, Sequence)
        ):
            raise TypeError("subprotocols must be a list of str, e.g. ['chat.v1']")
        compression = options.get("compression", "deflate")
        if compression not in ("deflate", None):
            raise ValueError("compression must be 'deflate' or None")
        for name in ("user_agent_header", "origin"):
            value = options.get(name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, got {value!r}")
        proxy = options.get("proxy", True)
        if proxy is not True and proxy is not None and not isinstance(proxy, str):
            raise TypeError("proxy must be True (system settings), None, or a URL str")
        headers = options.get("additional_headers")
        if headers is not None and not callable(headers):
            _check_headers(headers)

    # Derived settings.

    def wait_strategy(self) -> WaitStrategy:
        """The tenacity wait strategy: the user's, or exponential with jitter."""
        if self.wait is not None:
            return self.wait
        return ExponentialJitter(
            self.backoff_initial,
            self.backoff_max,
            self.backoff_multiplier,
            self.backoff_jitter,
        )

    def stop_strategy(self) -> StopStrategy:
        """The tenacity stop strategy: the user's, or built from the max_* options."""
        if self.stop is not None:
            return self.stop
        stop: tenacity.stop.stop_base = tenacity.stop_never
        if self.max_attempts is not None:
            stop = stop | tenacity.stop_after_attempt(self.max_attempts)
        if self.max_downtime is not None:
            stop = stop | tenacity.stop_after_delay(self.max_downtime)
        return stop

    def websockets_options(self) -> dict[str, Any]:
        """Options for websockets' ``connect``; our heartbeat replaces its keepalive.

        websockets' keepalive fails a half-open link with 1011 and then waits
        for ``close_timeout`` before the connection is reported closed; ours
        aborts the TCP connection as soon as the pong is late. Its logger
        redacts credentials (see :class:`~wsclient._secrets.RedactingLogger`).
        """
        options = {
            **self.websockets,
            "ping_interval": None,
            "ping_timeout": None,
            "logger": _WEBSOCKETS_LOGGER,
        }
        if options.get("ssl") is None:
            # websockets' asyncio connect() refuses ssl=None with wss://; left
            # out, it verifies with the default context, as trio does.
            options.pop("ssl", None)
        return options

    async def websockets_options_now(self) -> dict[str, Any]:
        """:meth:`websockets_options` for one attempt: an ``additional_headers``
        callable (sync or async) is called now, so tokens can be refreshed."""
        options = self.websockets_options()
        headers = options.get("additional_headers")
        if callable(headers):
            headers = await call(headers)
            if headers is not None:
                _check_headers(headers, "the additional_headers callable returned")
            options["additional_headers"] = headers
        return options

    @property
    def refreshes_credentials(self) -> bool:
        """Whether each attempt fetches credentials afresh (a headers callable)."""
        return callable(self.websockets.get("additional_headers"))

    def credentials_fixed(self, urls_fixed: bool) -> bool:
        """Whether :meth:`check_credentials` at construction settled every
        attempt: the URLs are known in advance, there are no headers, and no
        proxy is looked up in the environment (which may change). Then an
        attempt need not check again: one step less, on a cold CPU, per
        reconnection.
        """
        return (
            urls_fixed
            # None, not just static: a dict or list of headers is the
            # caller's, who may add a token to it after construction.
            and self.websockets.get("additional_headers") is None
            and self.websockets.get("proxy", True) is not True
        )

    def insecure_credentials(self, url: str, options: Mapping[str, Any]) -> str | None:
        """Why connecting to ``url`` with ``options`` would expose a credential."""
        if self.allow_insecure_credentials:
            return None
        headers = header_items(options.get("additional_headers"))
        proxy = options.get("proxy", True)
        proxied = isinstance(proxy, str) or (proxy is True and _system_proxy(url))
        return insecure_credentials(url, headers, self.first_message_auth, proxied)

    def check_credentials(self, urls: Sequence[str]) -> None:
        """Refuse at construction what :meth:`insecure_credentials` would
        refuse at every attempt: a URL or headers known in advance."""
        headers = self.websockets.get("additional_headers")
        if callable(headers):
            headers = None  # Checked at each attempt.
        if not isinstance(self.allow_insecure_credentials, bool):
            raise TypeError(
                "allow_insecure_credentials must be a bool, got "
                f"{self.allow_insecure_credentials!r}"
            )
        options = {**self.websockets, "additional_headers": headers}
        for url in urls:
            problem = self.insecure_credentials(url, options)
            if problem is not None:
                raise ValueError(problem)

    @property
    def track_frames(self) -> bool:
        """Whether connections must timestamp frames (idle watchdog, heartbeat)."""
        return self.idle_timeout is not None or self.heartbeat_interval is not None
