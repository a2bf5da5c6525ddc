"""``Client.publish`` and ``Client.publish_nowait``: see :mod:`._outbox`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ._exceptions import PublishWindowFull
from ._outbox import PublishReceipt
from ._subscribing import SubscribingMixin

if TYPE_CHECKING:
    from ._outbox import Outbox, PublishingAdapter

__all__ = ["PublishingMixin"]


class PublishingMixin(SubscribingMixin):
    """The publishing half of :class:`~wsclient.Client`."""

    async def publish(self, channel: str, data: Any) -> int | None:
        """Publish ``data`` on ``channel`` and wait for the server's ack.

        Waits first while ``publish_window`` publications await their ack.
        Once sent, the publication is resent on every new connection (same
        ``msg_id``, original order) until acknowledged; the server publishes
        it once. Like :meth:`subscribe`, it needs a protocol adapter that
        implements ``publish`` (:class:`~wsclient.ReferenceProtocol`).

        Cancelling it while it waits for room is safe: nothing was sent.
        Cancelling it after that does not withdraw the publication: it stays
        in flight until acknowledged (use :meth:`publish_nowait` to keep its
        receipt).

        Returns:
            The publication's offset in the channel, if the server gives one.

        Raises:
            ClientClosed: The client was closed before the ack arrived.
            ClientStopped: The client stopped first. In both cases the
                publication may or may not have reached the server.
            NotImplementedError: The protocol adapter cannot publish.
        """
        await self._outbox(channel).wait_room()
        receipt = self._enqueue(channel, data)  # No await since there was room.
        return await receipt.wait()

    def publish_nowait(self, channel: str, data: Any) -> PublishReceipt:
        """Publish ``data`` on ``channel`` without waiting for the ack.

        As :meth:`publish`, and returns a :class:`PublishReceipt` at once:
        ``await receipt.wait()`` gives the offset, ``receipt.acked`` says if
        it came. Publications go out in call order, pipelined.

        Raises:
            PublishWindowFull: ``publish_window`` publications await their
                ack; wait for the oldest receipt, or use :meth:`publish`.
            ClientClosed: The client is closed.
            ClientStopped: The client stopped.
            NotImplementedError: The protocol adapter cannot publish.
        """
        outbox = self._outbox(channel)
        if outbox.error is not None:
            raise outbox.error
        if outbox.full():
            raise PublishWindowFull(outbox.window)
        return self._enqueue(channel, data)

    # Private methods.

    def _outbox(self, channel: str) -> Outbox:
        if not isinstance(channel, str) or not channel:
            raise TypeError(f"channel must be a non-empty str, got {channel!r}")
        router = self._subscription_router()
        if not callable(getattr(router.adapter, "publish", None)):
            raise NotImplementedError(
                f"{type(router.adapter).__name__} has no publish(): acknowledged "
                "publish needs a protocol adapter that implements it, such as "
                "wsclient.ReferenceProtocol()"
            )
        return router.outbox

    def _enqueue(self, channel: str, data: Any) -> PublishReceipt:
        router = self._subscription_router()
        msg_id = router.outbox.next_msg_id()
        request_id = router.request_id()
        # Built once, here: data the adapter cannot encode fails in the
        # caller rather than in the router's task, and every resend reuses it.
        adapter = cast("PublishingAdapter", router.adapter)
        message = adapter.publish(channel, data, msg_id, request_id)
        receipt = PublishReceipt(channel, data, msg_id, request_id, message)
        router.outbox.add(receipt)
        router.publications_changed()
        return receipt
