"""The channel methods of :class:`~wsclient.server.Server`, for tests.

They live in a mixin only to keep ``_server.py`` small; :class:`Server` is the
one class users see. Each method checks its arguments first, so that a typo
in a test fails at the call with a message that says what to pass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from . import _wire

if TYPE_CHECKING:
    from ._channels import ChannelInfo
    from ._state import ServerState


class ChannelControl:
    """Publish, inspect channels and tamper with their history (a mixin of Server)."""

    _state: ServerState

    async def publish(
        self, channel: str, data: Any, *, msg_id: str | None = None
    ) -> int:
        """Publish ``data`` on ``channel``, exactly as a client's publish would.

        It goes through the same path as a ``publish`` command: same offsets,
        same history, same de-duplication, same order for subscribers. It
        waits while a subscriber of the channel has a full queue (a client
        that reads slowly, or a stalled server): that backpressure is what
        bounds the server's memory, so a test that publishes must let its
        subscribers read concurrently.

        Canceling it is safe: a canceled publish published nothing, and its
        offset goes to the next one.

        Args:
            channel: A non-empty str of at most 200 characters.
            data: Any JSON-serializable value.
            msg_id: If given and already accepted on this channel (among the
                last 10,000), nothing is published again.

        Returns:
            The publication's offset; for a duplicate ``msg_id``, the offset
            that the original publication got.

        Raises:
            TypeError, ValueError: If an argument is invalid or ``data`` is
                not JSON-serializable.
        """
        _check_channel(channel)
        if msg_id is not None:
            _check(_wire.msg_id_problem(msg_id), msg_id, str)
        try:
            data_json = _wire.dumps(data)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"data must be JSON-serializable: {exc}") from exc
        published = await self._state.pubsub.publish(channel, data_json, msg_id)
        return published.offset

    def configure_history(
        self, *, size: int | None = None, ttl: float | None = None
    ) -> None:
        """Bound every channel's history, existing ones included, from now on.

        A smaller bound drops the excess at once. Defaults: 1000 publications
        and 300 seconds.

        Args:
            size: Publications kept per channel, >= 0; 0 keeps none, so any
                resume from behind the latest offset is ``truncated``. None
                leaves it unchanged.
            ttl: Seconds a publication stays in history, > 0 (``math.inf``
                for no age limit); None leaves it unchanged. To expire
                entries in a test without waiting, use :meth:`expire_history`.
        """
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < 0
        ):
            _raise(size, int, f"size must be an integer >= 0, got {size!r}")
        if ttl is not None and (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or math.isnan(ttl)
            or ttl <= 0
        ):
            _raise(ttl, float, f"ttl must be a number of seconds > 0, got {ttl!r}")
        self._state.pubsub.registry.configure(size, ttl, anyio.current_time())

    def expire_history(self, older_than: float = 0.0) -> int:
        """Drop, on every channel, the publications at least ``older_than`` seconds old.

        This is what the TTL does once entries reach it, made deterministic
        for tests: ``expire_history()`` empties every history, as if every
        entry had outlived the TTL, without changing epochs or offsets. A
        resume from before the dropped entries then gets ``truncated``.

        Returns:
            How many publications were dropped.
        """
        if (
            isinstance(older_than, bool)
            or not isinstance(older_than, int | float)
            or not math.isfinite(older_than)
            or older_than < 0
        ):
            message = f"older_than must be a finite number >= 0, got {older_than!r}"
            _raise(older_than, float, message)
        return self._state.pubsub.registry.expire(older_than, anyio.current_time())

    def lose_history(self) -> None:
        """Simulate a restart that lost the server's memory.

        Every channel gets a new epoch, an empty history, forgotten
        ``msg_id`` values, and an offset back at 0, so a client's old position
        may look valid by its offset alone: only the epoch tells it apart.
        Open connections and their subscriptions stay; their next publication
        carries the new epoch and offset 1. Combine with :meth:`go_down` and
        :meth:`come_back` for a full restart.
        """
        self._state.pubsub.registry.lose_history()

    def channel_info(self, channel: str) -> ChannelInfo:
        """Describe a channel now; this creates it (fixing its epoch) if new.

        Expired entries are dropped first, so ``first_available`` is what a
        subscribe would see.
        """
        _check_channel(channel)
        return self._state.pubsub.registry.info(channel, anyio.current_time())


def _check_channel(channel: object) -> None:
    _check(_wire.channel_problem(channel), channel, str)


def _check(problem: str | None, value: object, expected: type) -> None:
    if problem is not None:
        _raise(value, expected, f"{problem}, got {value!r}")


def _raise(value: object, expected: type, message: str) -> NoReturn:
    # TypeError for the wrong kind of value, ValueError for a bad value of the
    # right kind, as the fault methods do.
    if expected is float:
        right_kind = isinstance(value, int | float) and not isinstance(value, bool)
    elif expected is int:
        right_kind = isinstance(value, int) and not isinstance(value, bool)
    else:
        right_kind = isinstance(value, expected)
    raise (ValueError if right_kind else TypeError)(message)
