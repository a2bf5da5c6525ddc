"""The reference server's JSON channel protocol (``wsclient.server``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    Acked,
    Authenticated,
    AuthFailed,
    Publication,
    Routed,
    Subscribed,
    SubscribeFailed,
    Unsubscribed,
    describe,
    encode_json,
    json_object,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from websockets.typing import Data

    from .._core.subscriptions import Position

__all__ = ["MAX_OFFSET", "ReferenceProtocol"]

MAX_OFFSET = 2**53
"""Offsets beyond this are not trusted (JSON numbers are exact up to 2**53)."""

_new_tuple = tuple.__new__


class ReferenceProtocol:
    """Channels of the bundled reference server, with resume from a position.

    Requests: ``{"type": "subscribe", "channel": C, "id": N, "since":
    {"epoch": E, "offset": O}}`` and ``{"type": "unsubscribe", ...}``.
    Publications: ``{"type": "pub", "channel": C, "epoch": E, "offset": O,
    "data": X}``; subscribers receive ``X`` as ``Message.data``. Acknowledged
    publish: ``{"type": "publish", "channel": C, "data": X, "id": N,
    "msg_id": M}``, answered by ``{"type": "ack", "id": N, "offset": K}``. The full
    protocol is documented in :mod:`wsclient.server`.
    """

    def hello(self) -> list[Data]:
        """Nothing: the reference server needs no hello."""
        return []

    def subscribe(
        self,
        channel: str,
        params: Mapping[str, Any],
        since: Position | None,
        request_id: int,
    ) -> Data:
        """``subscribe`` with ``since`` when resuming; ``params`` are added as is.

        Raises:
            TypeError: ``params`` cannot be serialized as JSON.
            ValueError: ``params`` hold NaN or infinity, which the server
                would refuse (strict JSON).
        """
        request: dict[str, Any] = {**params, "type": "subscribe", "channel": channel}
        request["id"] = request_id
        if since is not None:
            request["since"] = {"epoch": since.epoch, "offset": since.offset}
        return encode_json(request, "subscribe params")

    def unsubscribe(
        self, channel: str, params: Mapping[str, Any], request_id: int
    ) -> Data:
        """``unsubscribe`` of ``channel``."""
        request = {"type": "unsubscribe", "channel": channel, "id": request_id}
        return encode_json(request, "unsubscribe arguments")

    def publish(self, channel: str, data: Any, msg_id: str, request_id: int) -> Data:
        """``publish`` with an ``id`` (to get an ``ack``) and a ``msg_id``.

        Raises:
            TypeError: ``data`` cannot be serialized as JSON.
            ValueError: ``data`` holds NaN or infinity, which the server
                would refuse (strict JSON).
        """
        request = {
            "type": "publish",
            "channel": channel,
            "data": data,
            "id": request_id,
            "msg_id": msg_id,
        }
        return encode_json(request, "publish data")

    def authenticate(self, token: str, request_id: int) -> Data:
        """``auth`` with the token: the reference server's first-message
        authentication (``Server.require_auth(token, via="message")``)."""
        if not isinstance(token, str):
            raise TypeError(f"the auth token must be a str, got {type(token).__name__}")
        request = {"type": "auth", "token": token, "id": request_id}
        return encode_json(request, "auth token")

    def route(self, message: Data) -> Routed | None:
        """Classify by the ``type`` field; anything malformed is not ours."""
        fields = json_object(message)
        if fields is None:
            return None
        kind = fields.get("type")
        if kind == "pub":  # By far the most common: no table lookup.
            return _pub(fields)
        route = _ROUTES.get(kind) if isinstance(kind, str) else None
        return None if route is None else route(fields)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _offset(value: object) -> int | None:
    """An offset, if plausible: a hostile one must not move the position."""
    offset = _int(value)
    return offset if offset is not None and 0 <= offset <= MAX_OFFSET else None


def _pub(fields: dict[str, Any]) -> Publication | None:
    try:  # The common case first, with as few steps as it takes.
        channel, epoch, offset = fields["channel"], fields["epoch"], fields["offset"]
        if (
            type(offset) is int
            and 0 <= offset <= MAX_OFFSET
            and type(epoch) is str
            and type(channel) is str
        ):
            # Checked: built from C, without Publication's generated __new__.
            return _new_tuple(Publication, (channel, fields.get("data"), epoch, offset))
    except KeyError:
        pass
    channel = fields.get("channel")
    if not isinstance(channel, str):
        return None
    epoch, offset = _str(fields.get("epoch")), _offset(fields.get("offset"))
    if (epoch is None) != (offset is None):
        return None  # Half a position cannot be trusted.
    return Publication(channel, fields.get("data"), epoch, offset)


def _subscribed(fields: dict[str, Any]) -> Subscribed:
    recovered = fields.get("recovered")
    missing = fields.get("missing")
    span = None
    if isinstance(missing, list) and len(missing) == 2:
        first, last = _offset(missing[0]), _offset(missing[1])
        if first is not None and last is not None and first <= last:
            span = (first, last)
    return Subscribed(
        request_id=_int(fields.get("id")),
        channel=_str(fields.get("channel")),
        epoch=_str(fields.get("epoch")),
        offset=_offset(fields.get("offset")),
        recovered=recovered if isinstance(recovered, bool) else None,
        reason=_str(fields.get("reason")),
        missing=span,
    )


def _subscribe_error(fields: dict[str, Any]) -> SubscribeFailed:
    return SubscribeFailed(
        _int(fields.get("id")),
        describe(fields.get("error")),
        _str(fields.get("channel")),
    )


def _unsubscribed(fields: dict[str, Any]) -> Unsubscribed:
    return Unsubscribed(_int(fields.get("id")), _str(fields.get("channel")))


def _ack(fields: dict[str, Any]) -> Acked:
    return Acked(
        _int(fields.get("id")),
        _offset(fields.get("offset")),
        fields.get("duplicate") is True,
    )


_ROUTES: dict[str, Callable[[dict[str, Any]], Routed | None]] = {
    "pub": _pub,
    "subscribed": _subscribed,
    "subscribe_error": _subscribe_error,
    "unsubscribed": _unsubscribed,
    # An unsubscribe the server refuses ("not subscribed") is done all the same.
    "unsubscribe_error": _unsubscribed,
    "ack": _ack,
    "authenticated": lambda fields: Authenticated(_int(fields.get("id"))),
    "auth_error": lambda fields: AuthFailed(
        _int(fields.get("id")), describe(fields.get("error"))
    ),
}
