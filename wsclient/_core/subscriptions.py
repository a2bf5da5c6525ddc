"""Positions, duplicates and gaps of one subscription: the recovery bookkeeping.

A channel that keeps history numbers its publications: an ``epoch`` names one
incarnation of the channel's history and an ``offset`` counts publications in
it (1, 2, 3, ...). The client remembers the last position it delivered and,
after a reconnection, asks to resume from it. What comes back is checked here:

- an offset at or below the last one delivered is a **duplicate**: dropped;
- an offset beyond the next one is a **gap**: reported with its range, then
  the publication is delivered;
- an answer saying the server cannot fill the gap (history truncated or
  expired, a new epoch after the server lost its memory, a position from the
  future) is a gap too, with the range when it is known.

Nothing here does I/O. The subscription calls these methods as messages
arrive and acts on what they return: deliver, drop, or report a
:class:`Gap` before delivering.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, Self

__all__ = ["Gap", "GapReason", "Position", "Tracker"]


class _PositionFields(NamedTuple):
    epoch: str
    offset: int


class Position(_PositionFields):
    """Where a subscription stands in its channel's history.

    A named tuple ``(epoch, offset)``: immutable, hashable, ordered, and
    cheap to build, which matters because every message carries one.

    Attributes:
        epoch: The incarnation of the channel's history.
        offset: The offset of the last publication delivered (0 before any).
    """

    __slots__ = ()

    def __new__(cls, epoch: str, offset: int) -> Self:
        if not isinstance(epoch, str):
            raise TypeError(f"epoch must be a str, got {epoch!r}")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"offset must be an int, got {offset!r}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset!r}")
        return super().__new__(cls, epoch, offset)


class GapReason(enum.Enum):
    """Why messages were missed."""

    SKIPPED = "skipped"
    """A publication arrived with an offset beyond the next expected one."""
    TRUNCATED = "truncated"
    """The server's history no longer holds them (size limit or age)."""
    EPOCH = "epoch"
    """The server's history is a new one (it restarted and lost the old one)."""
    FUTURE = "future"
    """Our position is ahead of the server's: the server lost publications."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Publications that were missed and will not be delivered.

    Attributes:
        channel: The channel.
        reason: Why they were missed.
        first: Offset of the first missed publication, when known.
        last: Offset of the last missed publication, when known (None when
            the range is unknown, e.g. after a new epoch).
    """

    channel: str
    reason: GapReason
    first: int | None
    last: int | None

    def __str__(self) -> str:
        span = (
            f"offsets {self.first}..{self.last}"
            if self.first is not None and self.last is not None
            else f"from offset {self.first}"
            if self.first is not None
            else "an unknown range"
        )
        return f"messages lost on {self.channel!r}: {span} ({self.reason.value})"


class Tracker:
    """The recovery state of one subscription.

    Call :meth:`resume_from` when building a subscribe request,
    :meth:`subscribed` with the server's answer, and :meth:`publication` for
    each publication; they say what to do.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.position: Position | None = None
        """The last position delivered; None until the first subscribe answer."""
        self.duplicates = 0
        """Publications dropped because they were already delivered."""
        self.lost = 0
        """Publications reported lost (known ranges only)."""

    def resume_from(self) -> Position | None:
        """The position to resume from in a subscribe request, if any."""
        return self.position

    def subscribed(
        self,
        epoch: str | None,
        offset: int | None,
        recovered: bool | None,
        reason: str | None = None,
        missing: tuple[int, int] | None = None,
    ) -> Gap | None:
        """Apply the server's answer to a subscribe; return the gap it reveals.

        Args:
            epoch: The channel's epoch, if it has positions.
            offset: The channel's latest offset when the subscription began.
            recovered: True if the server replays everything after our
                position, False if it cannot, None if we did not ask.
            reason: Why it cannot: ``truncated``, ``epoch`` or ``future``.
            missing: For ``truncated``, the range that is gone.
        """
        if not _valid(epoch, offset):
            return None  # A channel without positions: nothing to track.
        assert epoch is not None
        assert offset is not None
        here = self.position
        if here is None or recovered is None:
            self.position = Position(epoch, offset)
            return None if here is None else self._missed_since(here)
        if recovered:
            return None  # The replay follows; publication() dedupes it.
        if reason == "truncated" and missing is not None:
            first, last = missing
            last = min(last, offset)  # Never trust a range beyond the present.
            self.position = Position(epoch, max(here.offset, last))
            return self._lost(GapReason.TRUNCATED, first, last)
        self.position = Position(epoch, offset)
        if reason == "future":
            return self._lost(GapReason.FUTURE, None, None)
        # A new epoch, or a refusal we do not understand: fail closed.
        return self._lost(GapReason.EPOCH, here.offset + 1, None)

    def next_in_order(self, epoch: str | None, offset: int | None) -> Position | None:
        """If this publication is the next one in order (by far the most
        common case), record it and return its position; else None, having
        done nothing: then call :meth:`publication`.

        The fast path of :meth:`publication`, for the hot loop: one call, no
        tuple to unpack, and the position built without checking it again.
        """
        here = self.position
        if (
            here is not None
            and type(offset) is int
            and offset == here.offset + 1
            and type(epoch) is str
            and epoch == here.epoch
        ):
            position = self.position = _new_tuple(Position, (epoch, offset))
            return position
        return None

    def publication(
        self, epoch: str | None, offset: int | None
    ) -> tuple[bool, Gap | None]:
        """Check one publication; return (deliver it?, gap to report first).

        Publications without a position are always delivered.
        """
        if self.next_in_order(epoch, offset) is not None:
            return True, None
        here = self.position
        if not _valid(epoch, offset):
            return True, None  # No position (or one a broken adapter made up).
        assert epoch is not None
        assert offset is not None
        if here is None or here.epoch != epoch:
            # No answer seen yet, or a new epoch without a new subscribe: we
            # cannot tell what was missed before this one.
            gap = (
                None
                if here is None
                else self._lost(GapReason.EPOCH, here.offset + 1, None)
            )
            self.position = Position(epoch, offset)
            return True, gap
        if offset <= here.offset:
            self.duplicates += 1
            return False, None
        gap = None
        if offset > here.offset + 1:
            gap = self._lost(GapReason.SKIPPED, here.offset + 1, offset - 1)
        self.position = Position(epoch, offset)
        return True, gap

    def _missed_since(self, here: Position) -> Gap | None:
        """Subscribed afresh, without resuming: what was missed since ``here``.

        Known exactly within one epoch, unknown across epochs.
        """
        now = self.position
        assert now is not None
        if now.epoch != here.epoch:
            return self._lost(GapReason.EPOCH, here.offset + 1, None)
        if now.offset > here.offset:
            return self._lost(GapReason.SKIPPED, here.offset + 1, now.offset)
        return None

    def _lost(self, reason: GapReason, first: int | None, last: int | None) -> Gap:
        if first is not None and last is not None:
            self.lost += last - first + 1
        return Gap(self.channel, reason, first, last)


_new_tuple = tuple.__new__
"""Builds a :class:`Position` without checking its values again: the tracker
makes one per publication, from values it has just checked."""


def _valid(epoch: object, offset: object) -> bool:
    """Whether ``(epoch, offset)`` is a position: a custom adapter may pass
    what a hostile server sent, and the tracker must not crash on it."""
    return (
        isinstance(epoch, str)
        and isinstance(offset, int)
        and not isinstance(offset, bool)
        and offset >= 0
    )
