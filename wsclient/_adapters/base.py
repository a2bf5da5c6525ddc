"""The protocol adapter interface and what routing a message can yield.

Raw WebSocket has no notion of a channel: each server spells subscribe,
unsubscribe and publications its own way. An adapter is the small, I/O-free
translation between a server's wire format and the client's subscriptions:
it builds the messages to send and classifies each message received. The
client does everything else (sending, waiting, resubscribing, recovery).

Write your own by implementing :class:`ProtocolAdapter`; see
:class:`~wsclient.ReferenceProtocol` and :class:`~wsclient.ExchangeProtocol`.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from websockets.typing import Data

    from .._core.subscriptions import Position

__all__ = [
    "Acked",
    "AuthFailed",
    "Authenticated",
    "ProtocolAdapter",
    "Publication",
    "Routed",
    "SubscribeFailed",
    "Subscribed",
    "Unsubscribed",
    "describe",
    "encode_json",
    "json_object",
]


class Publication(NamedTuple):
    """A message published on a channel.

    A named tuple ``(channel, data, epoch, offset)``: immutable, and cheap to
    build, which matters because an adapter makes one per message received.

    Attributes:
        channel: The channel it belongs to.
        data: The payload given to the subscriber (``Message.data``).
        epoch: The channel's history incarnation, if the server has one.
        offset: The publication's position in that history, if any.
    """

    channel: str
    data: Any
    epoch: str | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server accepted a subscribe request.

    Attributes:
        request_id: The id of the request it answers.
        channel: The channel, when the answer names it.
        epoch: The channel's epoch, for servers that keep history.
        offset: The channel's latest offset when the subscription began.
        recovered: For a resume: True if everything since our position is
            replayed, False if not; None if we did not ask to resume.
        reason: Why it was not recovered (``truncated``, ``epoch``, ``future``).
        missing: The range that is gone, for ``truncated``.
    """

    request_id: int | None
    channel: str | None = None
    epoch: str | None = None
    offset: int | None = None
    recovered: bool | None = None
    reason: str | None = None
    missing: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class SubscribeFailed:
    """The server refused a subscribe request."""

    request_id: int | None
    error: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server confirmed an unsubscribe request."""

    request_id: int | None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Acked:
    """The server acknowledged a request (a publish, for example)."""

    request_id: int | None
    offset: int | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The server accepted the credentials of :meth:`authenticate`."""

    request_id: int | None


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """The server refused the credentials of :meth:`authenticate`.

    Attributes:
        request_id: The id of the request it answers, if the server says.
        error: What the server said, for the :exc:`~wsclient.AuthenticationError`.
    """

    request_id: int | None
    error: str


Routed: TypeAlias = (
    Publication
    | Subscribed
    | SubscribeFailed
    | Unsubscribed
    | Acked
    | Authenticated
    | AuthFailed
)
"""What :meth:`ProtocolAdapter.route` can return; None means "not ours"."""


def json_object(message: Data) -> dict[str, Any] | None:
    """Parse a text message holding a JSON object; None for anything else.

    For adapters of JSON protocols: never raises, whatever a hostile server
    sends (malformed JSON, deep nesting, binary frames).
    """
    # Only text that looks like a JSON object is parsed.
    if not isinstance(message, str) or not message.startswith("{"):
        return None
    # json.loads() without its wrapper, which costs as much again on small
    # messages: the scanner parses the object at 0 and says where it ended.
    try:
        fields, end = _scan_json(message, 0)
    except (ValueError, RecursionError, StopIteration):  # As raw_decode() does.
        return None
    if end != len(message) and message[end:].strip(_JSON_WHITESPACE):
        return None  # Trailing data: not one JSON value (json.loads refuses it).
    return fields if isinstance(fields, dict) else None


_scan_json: Callable[[str, int], tuple[Any, int]]
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner of :mod:`json` (as json.loads() uses, with the same rules)."""
_JSON_WHITESPACE = " \t\n\r"


def encode_json(value: Any, what: str) -> str:
    """Serialize an outgoing request as strict JSON, or say what is wrong.

    For adapters of JSON protocols. Strict JSON has no NaN or infinity: a
    server that parses it strictly (such as the reference server) would not
    recognise the request, and the client would wait for an answer in vain.

    Args:
        value: The request.
        what: What the caller passed that may be wrong, for the message
            (``"subscribe params"``, ``"publish data"``).

    Raises:
        TypeError: ``value`` holds something that is not JSON-serializable.
        ValueError: ``value`` holds NaN or an infinity, a circular reference,
            an integer of more than 4300 digits, or nesting too deep.
    """
    try:
        return _STRICT.encode(value)
    except TypeError as exc:
        raise TypeError(
            f"{what} must be JSON-serializable (dict with str keys, list, str, "
            f"int, float, bool or None): {exc}"
        ) from exc
    except ValueError as exc:
        raise ValueError(
            f"{what} must be strict JSON (finite numbers, no circular "
            f"references): {exc}"
        ) from exc
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to serialize") from None


def describe(value: object) -> str:
    """Describe a value from the wire, such as an error, for a message.

    A str is returned as is; anything else as a short repr, bounded however
    large or deeply nested ``value`` is (``repr()`` of a hostile server's
    error could be megabytes long, or raise :exc:`RecursionError`). Never
    raises.
    """
    if isinstance(value, str):
        return value
    try:
        return _SHORT.repr(value)
    except Exception:  # Such as an int too long to print: no details then.
        return f"<{type(value).__name__}>"


_STRICT = json.JSONEncoder(allow_nan=False)

_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 80


class ProtocolAdapter(Protocol):
    """How subscriptions map to a server's wire protocol.

    Methods are synchronous and do no I/O. Request ids are ints chosen by
    the client, unique per connection; put them in the request if the
    protocol answers by id, and return them in the routed answer.

    One more method is optional, for :meth:`Client.publish
    <wsclient.Client.publish>`: ``publish(channel, data, msg_id, request_id)
    -> Data``, the message that publishes ``data`` on ``channel``. The
    server must answer it with an acknowledgement (:class:`Acked` with the
    same request id) and publish a ``msg_id`` at most once, since the client
    sends a publication again, with the same ``msg_id``, after a
    reconnection if its ack did not arrive. Without it, ``publish`` raises
    :exc:`NotImplementedError`.

    Another is optional, for first-message authentication (the client's
    ``auth`` option): ``authenticate(token, request_id) -> Data``, the
    message that presents ``token``. The client sends it first on every
    connection and waits for the answer, which :meth:`route` returns as
    :class:`Authenticated` or :class:`AuthFailed` with the same request id.
    """

    def hello(self) -> list[Data]:
        """Messages to send first on every connection (hello, authentication)."""
        ...

    def subscribe(
        self,
        channel: str,
        params: Mapping[str, Any],
        since: Position | None,
        request_id: int,
    ) -> Data:
        """The message that subscribes to ``channel``, resuming after ``since``."""
        ...

    def unsubscribe(
        self, channel: str, params: Mapping[str, Any], request_id: int
    ) -> Data:
        """The message that unsubscribes from ``channel``."""
        ...

    def route(self, message: Data) -> Routed | None:
        """Classify a received message; None sends it to ``async for`` on the client.

        Must not raise on any input: a hostile server controls ``message``.
        Return None for anything not understood.

        Called once per message, as it arrives: often right where websockets
        receives it (its reading task on trio, its protocol callback on
        asyncio), before anything of the client's runs. Keep it a quick,
        pure function of ``message``: it cannot block there without stalling
        the connection's reading.
        """
        ...
