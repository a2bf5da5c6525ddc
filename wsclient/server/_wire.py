"""The reference server's application protocol: JSON commands over text frames.

This module is I/O-free: :func:`interpret` turns one incoming text message into
an action and the connection carries it out. Keeping the rules here means the
package docstring's table and the code can be checked side by side.

Channel commands are checked here field by field and fail closed: a command
with any malformed field gets an error reply and changes nothing, because a
server that guessed what a buggy client meant would hide the bug from the
tests that run against it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeGuard

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._channels import Resume

MAX_STREAM_COUNT: Final = 1_000_000
"""Largest ``count`` a ``stream`` command may ask for."""

MAX_STREAM_SIZE: Final = 2**20
"""Largest ``size`` (characters of ``data`` per message) a ``stream`` may ask for."""

MAX_CHANNEL_LENGTH: Final = 200
"""Longest channel name, in characters."""

MAX_MSG_ID_LENGTH: Final = 200
"""Longest ``msg_id``, in characters: it bounds the de-duplication memory."""

MAX_OFFSET: Final = 2**53
"""Largest offset a client may resume from: the largest integer that every
JSON parser (JavaScript's included) represents exactly."""

MAX_ECHO_LENGTH: Final = 1000
"""Longest ``channel`` or ``id``, in characters of JSON, that an error reply
echoes back: an error must not send back an unbounded input (the channel is
the very field that may be wrong)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``text`` back to the connection that sent the command."""

    text: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``text`` to every open connection, the sender included."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamJob:
    """Send ``count`` stream messages of ``size`` characters to the sender."""

    count: int
    size: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe the sender to ``channel``, resuming after ``since`` if given."""

    channel: str
    since: tuple[str, int] | None  # (epoch, offset)
    tag: dict[str, Any]  # {"id": I} to echo in the answer, or {}


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Unsubscribe the sender from ``channel``."""

    channel: str
    tag: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``data_json`` (serialized already) on ``channel``; ack if tagged."""

    channel: str
    data_json: str
    msg_id: str | None
    tag: dict[str, Any]


ChannelCommand = Subscribe | Unsubscribe | Publish
"""A command that the channel layer (``_pubsub.py``) carries out."""

Action = Reply | Broadcast | StreamJob | ChannelCommand
"""What the connection must do with one command."""


def interpret(text: str) -> Action | None:
    """Decide what to do with one incoming text message.

    It never raises: whatever a client sends gets an action, an error reply,
    or the echo. Every reply it builds is strict JSON, and an error reply
    echoes the command's ``channel`` and ``id`` only when they are at most
    :data:`MAX_ECHO_LENGTH` characters of JSON.

    Args:
        text: The complete, decoded text message.

    Returns:
        The action to carry out, or :obj:`None` when the message is not a
        known command: the caller must then echo it back verbatim. That
        includes text that is not strict JSON (``NaN``, ``Infinity``, a
        number beyond a double's range, such as ``1e400``, or an integer of
        more than 4300 digits): re-serializing it would send invalid JSON.
    """
    try:
        message = _DECODER.decode(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested JSON from a hostile client. It is not a
        # command, so it gets the same treatment as any other non-JSON text.
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    command = _COMMANDS.get(kind) if isinstance(kind, str) else None
    if command is None:
        return None
    try:
        return command(message)
    except RecursionError:
        # json.loads() accepted the nesting, but serializing it again needs a
        # few more stack frames, so a message nested just below the parser's
        # limit cannot be re-serialized: it is treated as the parser would.
        return None


def stream_message(seq: int, data: str) -> str:
    """Format the ``seq``-th message of a stream.

    Args:
        seq: Position of the message in its stream, from 0.
        data: The payload, a run of ``"x"``: it needs no JSON escaping, which
            lets a large stream skip :func:`json.dumps` for every message.
    """
    return f'{{"type":"stream","seq":{seq},"data":"{data}"}}'


def error(text: str, tag: dict[str, Any] | None = None) -> Reply:
    """Build the reply sent for a malformed command, with its ``id`` if any.

    The ``id`` is left out when its JSON is longer than :data:`MAX_ECHO_LENGTH`.
    """
    return Reply(_dumps({"type": "error", **_bounded(tag or {}), "error": text}))


def channel_problem(channel: object) -> str | None:
    """Say what is wrong with a channel name, or return None if it is valid."""
    if not isinstance(channel, str) or not channel:
        return "channel must be a non-empty str"
    if len(channel) > MAX_CHANNEL_LENGTH:
        return f"channel must be at most {MAX_CHANNEL_LENGTH} characters"
    return None


def msg_id_problem(msg_id: object) -> str | None:
    """Say what is wrong with a ``msg_id``, or return None if it is valid."""
    if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= MAX_MSG_ID_LENGTH:
        return f"msg_id must be a str of 1 to {MAX_MSG_ID_LENGTH} characters"
    return None


def pub_frame(channel: str, epoch: str, offset: int, data_json: str) -> bytes:
    """Format a publication, ready for every subscriber and for replays."""
    return (
        f'{{"type":"pub","channel":{_dumps(channel)},"epoch":{_dumps(epoch)},'
        f'"offset":{offset},"data":{data_json}}}'
    ).encode()


def subscribed(command: Subscribe, resume: Resume) -> bytes:
    """Format the answer to a subscribe that succeeded."""
    answer: dict[str, Any] = {
        "type": "subscribed",
        "channel": command.channel,
        **command.tag,
        "epoch": resume.epoch,
        "offset": resume.offset,
        "recovered": resume.recovered,
    }
    if resume.reason is not None:
        answer["reason"] = resume.reason
    if resume.missing is not None:
        answer["missing"] = list(resume.missing)
    return _dumps(answer).encode()


def channel_reply(kind: str, channel: str, tag: dict[str, Any], **fields: Any) -> bytes:
    """Format ``{"type": kind, "channel": ..., "id": ..., **fields}``."""
    return _dumps({"type": kind, "channel": channel, **tag, **fields}).encode()


def dumps(value: Any) -> str:
    """Serialize compactly, as every reply is, in strict JSON.

    Raises:
        TypeError: If ``value`` is not JSON-serializable.
        ValueError: If it contains NaN or an infinity (which strict JSON
            cannot represent, so clients would fail to parse it), a circular
            reference, an integer of more than 4300 digits, or nesting too
            deep to serialize.
    """
    try:
        return _dumps(value)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


# Private helpers, one per command.


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid in strict JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a double")
    return value


# Strict JSON both ways: Python's json module reads and writes NaN and
# Infinity by default, which other parsers (JavaScript's, and the client's
# strict adapters) refuse. Built once: json.loads() and json.dumps() with
# options build a new decoder or encoder on every call.
_DECODER: Final = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float
)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _bounded(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields whose JSON is short enough to echo back in an error reply."""
    return {
        name: value
        for name, value in fields.items()
        if len(_dumps(value)) <= MAX_ECHO_LENGTH
    }


def _echo(message: dict[str, Any]) -> Action:
    return Reply(_dumps({"type": "echo", "data": message.get("data")}))


def _ping(message: dict[str, Any]) -> Action:
    pong: dict[str, Any] = {"type": "pong"}
    if "id" in message:
        pong["id"] = message["id"]
    return Reply(_dumps(pong))


def _broadcast(message: dict[str, Any]) -> Action:
    return Broadcast(_dumps({"type": "broadcast", "data": message.get("data")}))


def _stream(message: dict[str, Any]) -> Action:
    count, size = message.get("count"), message.get("size")
    if not _is_int_between(count, MAX_STREAM_COUNT):
        return error(f"stream count must be an integer from 0 to {MAX_STREAM_COUNT}")
    if not _is_int_between(size, MAX_STREAM_SIZE):
        return error(f"stream size must be an integer from 0 to {MAX_STREAM_SIZE}")
    return StreamJob(count, size)


def _subscribe(message: dict[str, Any]) -> Action:
    tag, problem = _tag(message)
    channel = message.get("channel")
    problem = problem or channel_problem(channel)
    since = None
    if problem is None and "since" in message:
        since, problem = _since(message["since"])
    if problem is not None:
        return _command_error("subscribe_error", message, tag, problem)
    assert isinstance(channel, str)  # checked by channel_problem()
    return Subscribe(channel, since, tag)


def _unsubscribe(message: dict[str, Any]) -> Action:
    tag, problem = _tag(message)
    channel = message.get("channel")
    problem = problem or channel_problem(channel)
    if problem is not None:
        return _command_error("unsubscribe_error", message, tag, problem)
    assert isinstance(channel, str)
    return Unsubscribe(channel, tag)


def _publish(message: dict[str, Any]) -> Action:
    tag, problem = _tag(message)
    channel, msg_id = message.get("channel"), message.get("msg_id")
    problem = problem or channel_problem(channel)
    if problem is None and "data" not in message:
        problem = "publish needs data (null is a valid value)"
    if problem is None and msg_id is not None:
        problem = msg_id_problem(msg_id)
    if problem is not None:
        return error(problem, tag)
    assert isinstance(channel, str)
    return Publish(channel, _dumps(message["data"]), msg_id, tag)


def _tag(message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The ``id`` to echo, as ``{"id": I}`` or ``{}``, and what is wrong with it."""
    if "id" not in message:
        return {}, None
    value = message["id"]
    if value is None or isinstance(value, str | int | float | bool):
        return {"id": value}, None
    return {}, "id must be a JSON scalar (string, number, boolean or null)"


def _since(value: object) -> tuple[tuple[str, int] | None, str | None]:
    if not isinstance(value, dict):
        return None, (
            "since must be an object {epoch, offset}; "
            "leave it out to subscribe without resuming"
        )
    epoch, offset = value.get("epoch"), value.get("offset")
    if not isinstance(epoch, str):
        return None, "since.epoch must be a str"
    if not _is_int_between(offset, MAX_OFFSET):
        return None, f"since.offset must be an integer from 0 to {MAX_OFFSET}"
    return (epoch, offset), None


def _command_error(
    kind: str, message: dict[str, Any], tag: dict[str, Any], problem: str
) -> Reply:
    # The channel comes back as sent, valid or not, so that the client can
    # match the error to its request even when the name itself is the problem;
    # but not when it is huge, which would make the error reply unbounded.
    channel = {"channel": message["channel"]} if "channel" in message else {}
    echoed = _bounded({**channel, **tag})
    return Reply(_dumps({"type": kind, **echoed, "error": problem}))


def _is_int_between(value: object, upper: int) -> TypeGuard[int]:
    # bool is an int subclass, but {"count": true} is a client bug to report.
    return type(value) is int and 0 <= value <= upper


_COMMANDS: Final[dict[str, Callable[[dict[str, Any]], Action]]] = {
    "echo": _echo,
    "ping": _ping,
    "broadcast": _broadcast,
    "stream": _stream,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "publish": _publish,
}
