"""The common exchange style: ``{"method": "SUBSCRIBE", "params": [...], "id": n}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    Acked,
    Publication,
    Routed,
    SubscribeFailed,
    describe,
    encode_json,
    json_object,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from websockets.typing import Data

    from .._core.subscriptions import Position

__all__ = ["ExchangeProtocol"]


class ExchangeProtocol:
    """Subscriptions in the style of many crypto exchanges' market streams.

    Requests: ``{"method": "SUBSCRIBE", "params": [channel], "id": n}`` (and
    ``UNSUBSCRIBE``), answered by id: ``{"result": null, "id": n}`` or
    ``{"error": {"code": c, "msg": "..."}, "id": n}``. Publications come as
    ``{"stream": channel, "data": {...}}``; subscribers receive ``data``.
    Such servers keep no history: after a reconnection, what was published
    meanwhile is not replayed (and cannot be detected as lost).

    Args:
        method_key: Name of the method field (``"method"``, or ``"op"`` for
            some exchanges).
        subscribe_method: Value that subscribes.
        unsubscribe_method: Value that unsubscribes.
        channel_key: Field naming the channel in publications.
        data_key: Field holding the payload in publications.

    Raises:
        TypeError: An argument is not a str.
        ValueError: An argument is an empty str.
    """

    def __init__(
        self,
        *,
        method_key: str = "method",
        subscribe_method: str = "SUBSCRIBE",
        unsubscribe_method: str = "UNSUBSCRIBE",
        channel_key: str = "stream",
        data_key: str = "data",
    ) -> None:
        for name, value in (
            ("method_key", method_key),
            ("subscribe_method", subscribe_method),
            ("unsubscribe_method", unsubscribe_method),
            ("channel_key", channel_key),
            ("data_key", data_key),
        ):
            if not isinstance(value, str) or not value:
                error = ValueError if isinstance(value, str) else TypeError
                raise error(
                    f"{name} must be a non-empty str (the field name or value "
                    f"your server uses), got {value!r}"
                )
        self.method_key = method_key
        self.subscribe_method = subscribe_method
        self.unsubscribe_method = unsubscribe_method
        self.channel_key = channel_key
        self.data_key = data_key

    def hello(self) -> list[Data]:
        """Nothing by default; subclass to authenticate."""
        return []

    def subscribe(
        self,
        channel: str,
        params: Mapping[str, Any],
        since: Position | None,
        request_id: int,
    ) -> Data:
        """``SUBSCRIBE`` with the channel as the only param; ``since`` is unused."""
        return self._request(self.subscribe_method, channel, request_id)

    def unsubscribe(
        self, channel: str, params: Mapping[str, Any], request_id: int
    ) -> Data:
        """``UNSUBSCRIBE`` of the channel."""
        return self._request(self.unsubscribe_method, channel, request_id)

    def route(self, message: Data) -> Routed | None:
        """Answers by id, publications by stream name; anything else is not ours."""
        fields = json_object(message)
        if fields is None:
            return None
        channel = fields.get(self.channel_key)
        if isinstance(channel, str) and self.data_key in fields:
            return Publication(channel, fields[self.data_key])
        request_id = fields.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return None
        error = fields.get("error")
        if error is not None:
            text = error.get("msg") if isinstance(error, dict) else error
            return SubscribeFailed(
                request_id, text if isinstance(text, str) else describe(error)
            )
        if "result" in fields:
            return Acked(request_id)
        return None

    def _request(self, method: str, channel: str, request_id: int) -> str:
        request = {self.method_key: method, "params": [channel], "id": request_id}
        return encode_json(request, f"{method} arguments")
