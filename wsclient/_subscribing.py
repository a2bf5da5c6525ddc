"""``Client.subscribe``: creating subscriptions and the router that serves them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from ._adapters.reference import ReferenceProtocol
from ._exceptions import ClientClosed
from ._router import Router
from ._subscription import (
    GapPolicy,
    Marker,
    Message,
    Overflow,
    OverflowName,
    Subscription,
)

if TYPE_CHECKING:
    from ._adapters.base import ProtocolAdapter
    from ._authenticating import AuthSource
    from ._core.stats import Stats
    from ._core.subscriptions import Gap
    from ._options import Options
    from ._supervisor import Supervisor

__all__ = ["SubscribingMixin", "check_adapter"]


class SubscribingMixin:
    """The subscription half of :class:`~wsclient.Client`."""

    _router: Router | None
    _supervisor: Supervisor | None
    _closed_before_start: bool
    _options: Options
    _stats: Stats
    _publish_window: int
    _auth: AuthSource | None

    # The item type of the subscription follows the gaps and markers options.
    @overload
    def subscribe(
        self,
        channel: str,
        *,
        max_queue: int = ...,
        overflow: OverflowName = ...,
        gaps: Literal["raise"] = ...,
        markers: Literal[False] = ...,
        stale_after: float | None = ...,
        **params: Any,
    ) -> Subscription[Message]: ...
    @overload
    def subscribe(
        self,
        channel: str,
        *,
        max_queue: int = ...,
        overflow: OverflowName = ...,
        gaps: Literal["marker"],
        markers: Literal[False] = ...,
        stale_after: float | None = ...,
        **params: Any,
    ) -> Subscription[Message | Gap]: ...
    @overload
    def subscribe(
        self,
        channel: str,
        *,
        max_queue: int = ...,
        overflow: OverflowName = ...,
        gaps: Literal["raise"] = ...,
        markers: Literal[True],
        stale_after: float | None = ...,
        **params: Any,
    ) -> Subscription[Message | Marker]: ...
    @overload
    def subscribe(
        self,
        channel: str,
        *,
        max_queue: int = ...,
        overflow: OverflowName = ...,
        gaps: GapPolicy = ...,
        markers: bool = ...,
        stale_after: float | None = ...,
        **params: Any,
    ) -> Subscription[Message | Gap | Marker]: ...
    def subscribe(
        self,
        channel: str,
        *,
        max_queue: int = 1024,
        overflow: OverflowName = "block",
        gaps: GapPolicy = "raise",
        markers: bool = False,
        stale_after: float | None = None,
        **params: Any,
    ) -> Subscription[Any]:
        """Subscribe to ``channel``; the subscription survives reconnections.

        Returns at once: the subscribe request goes out now if connected, else
        on the next connection, and after every reconnection, resuming from
        the last message delivered where the server keeps history. Iterate
        the :class:`~wsclient.Subscription`; use it as an async context
        manager to unsubscribe on exit.

        Args:
            channel: The channel name.
            max_queue: Messages queued for this subscription at most.
            overflow: When the queue is full: ``"block"`` (stop reading the
                connection: backpressure to the server, and every other
                subscription waits too), ``"drop_oldest"`` (count in
                ``dropped``), or ``"fail"`` (the iterator raises
                :exc:`~wsclient.SubscriptionError`).
            gaps: When publications were missed: ``"raise"`` makes the
                iterator raise :exc:`~wsclient.MessagesLost` (iterate again to
                go on), ``"marker"`` yields a :class:`~wsclient.Gap` in the
                stream instead.
            markers: Also yield :class:`~wsclient.Marker` objects in the
                stream: ``reconnected`` (restored on a new connection),
                ``recovered`` (the replay caught up, nothing lost) and
                ``stale``, so a subscriber can reconcile without callbacks.
            stale_after: For a channel that should always be busy: after this
                many seconds without a message, renew the subscription
                (unsubscribe and subscribe again, resuming); counted in
                ``stale_renewals`` and logged. None disables it.
            params: Extra fields for the subscribe request.

        Raises:
            TypeError: A bad argument, or params the adapter cannot encode.
            ValueError: Already subscribed to ``channel``, or a bad argument.
            ClientClosed: The client is closed.
        """
        if not isinstance(channel, str) or not channel:
            raise TypeError(f"channel must be a non-empty str, got {channel!r}")
        if (
            isinstance(max_queue, bool)
            or not isinstance(max_queue, int)
            or max_queue < 1
        ):
            raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
        try:
            policy = Overflow(overflow)
        except ValueError:
            raise ValueError(
                f"overflow must be 'block', 'drop_oldest' or 'fail', got {overflow!r}"
            ) from None
        if gaps not in ("raise", "marker"):
            raise ValueError(f"gaps must be 'raise' or 'marker', got {gaps!r}")
        if stale_after is not None and (
            isinstance(stale_after, bool)
            or not isinstance(stale_after, int | float)
            or not 0 < stale_after < math.inf
        ):
            raise ValueError(
                f"stale_after must be seconds > 0, or None; got {stale_after!r}"
            )
        if not isinstance(markers, bool):
            raise TypeError(f"markers must be a bool, got {markers!r}")
        router = self._subscription_router()
        # Build the request once now, so that params the adapter cannot encode
        # fail here, in the caller, rather than in the router on connect.
        router.adapter.subscribe(channel, params, None, 0)
        existing = router.subscriptions.get(channel)
        if existing is not None and existing._done():
            del router.subscriptions[channel]  # Failed or closed: replace it.
        elif existing is not None:
            raise ValueError(
                f"already subscribed to {channel!r}: iterate that subscription, "
                "or unsubscribe it first"
            )
        subscription: Subscription[Any] = Subscription(
            channel,
            params,
            max_queue=max_queue,
            overflow=policy,
            gaps=gaps,
            markers=markers,
            stale_after=stale_after,
            on_unsubscribe=router.remove,
        )
        router.add(subscription)
        return subscription

    def _make_router(self, adapter: ProtocolAdapter) -> Router:
        timeout = self._options.websockets.get("open_timeout", 10)
        return Router(adapter, self._stats, timeout, self._publish_window, self._auth)

    def _subscription_router(self) -> Router:
        if self._closed_before_start or (
            self._supervisor is not None and self._supervisor.stopped.is_set()
        ):
            raise ClientClosed()
        if self._router is None:
            if self._supervisor is not None:
                raise RuntimeError(
                    "subscriptions need a protocol adapter chosen before the client "
                    "starts: Client(url, protocol=wsclient.ReferenceProtocol()), "
                    "ExchangeProtocol(), or your own; or subscribe before 'async with'"
                )
            self._router = self._make_router(ReferenceProtocol())
        return self._router


def check_adapter(protocol: object) -> ProtocolAdapter:
    for method in ("hello", "subscribe", "unsubscribe", "route"):
        if not callable(getattr(protocol, method, None)):
            raise TypeError(
                f"protocol must implement ProtocolAdapter ({method}() is missing): "
                f"use wsclient.ReferenceProtocol(), ExchangeProtocol(), or your own"
            )
    return cast("ProtocolAdapter", protocol)
