"""Recovery bookkeeping of one subscription: positions, duplicates, gaps."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from wsclient._core.subscriptions import Gap, GapReason, Position, Tracker


def tracked(epoch: str = "e1", offset: int = 5) -> Tracker:
    """A tracker whose first subscribe answer said the channel was at ``offset``."""
    tracker = Tracker("ch")
    assert tracker.subscribed(epoch, offset, None) is None
    return tracker


def test_first_answer_sets_the_position() -> None:
    """The first subscribe answer sets the position; nothing to resume before."""
    tracker = Tracker("ch")
    assert tracker.resume_from() is None
    assert tracker.subscribed("e1", 7, None) is None
    assert tracker.resume_from() == Position("e1", 7)


def test_in_order_publications_advance() -> None:
    """Consecutive offsets are delivered and advance the position."""
    tracker = tracked()
    for offset in (6, 7, 8):
        assert tracker.publication("e1", offset) == (True, None)
    assert tracker.position == Position("e1", 8)


def test_next_in_order_records_only_the_next_one() -> None:
    """The fast path takes the next offset of the same epoch, and nothing
    else: then it changes nothing, and publication() decides."""
    tracker = tracked()
    assert tracker.next_in_order("e1", 6) == Position("e1", 6)
    assert tracker.position == Position("e1", 6)
    for epoch, offset in [("e1", 6), ("e1", 8), ("e2", 7), (None, None), ("e1", None)]:
        assert tracker.next_in_order(epoch, offset) is None
        assert tracker.position == Position("e1", 6)
    assert Tracker("ch").next_in_order("e1", 1) is None  # No position yet.


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=100))
def test_next_in_order_agrees_with_publication(arrivals: list[int]) -> None:
    """The fast path then the general one decide as the general one alone."""
    fast, slow = tracked(offset=0), tracked(offset=0)
    for offset in arrivals:
        position = fast.next_in_order("e1", offset)
        got = (True, None) if position is not None else fast.publication("e1", offset)
        assert got == slow.publication("e1", offset)
        assert fast.position == slow.position
        assert fast.duplicates == slow.duplicates


def test_duplicates_are_dropped() -> None:
    """Offsets at or below the position are duplicates: dropped and counted."""
    tracker = tracked()
    tracker.publication("e1", 6)
    assert tracker.publication("e1", 6) == (False, None)
    assert tracker.publication("e1", 3) == (False, None)
    assert tracker.duplicates == 2


def test_skipped_offsets_are_a_gap() -> None:
    """A jump in offsets reports the missing range, then delivers."""
    tracker = tracked()
    deliver, gap = tracker.publication("e1", 9)
    assert deliver
    assert gap == Gap("ch", GapReason.SKIPPED, 6, 8)
    assert tracker.lost == 3


@pytest.mark.parametrize(
    ("answer", "gap", "position"),
    [
        # Exact replay follows: no gap, position unchanged until it arrives.
        ({"recovered": True}, None, Position("e1", 5)),
        # History truncated: the known range is lost; replay starts after it.
        (
            {"recovered": False, "reason": "truncated", "missing": (6, 9)},
            Gap("ch", GapReason.TRUNCATED, 6, 9),
            Position("e1", 9),
        ),
        # The server lost its history: unknown range, new epoch trusted.
        (
            {"epoch": "e2", "offset": 3, "recovered": False, "reason": "epoch"},
            Gap("ch", GapReason.EPOCH, 6, None),
            Position("e2", 3),
        ),
        # Our position is in the server's future: it lost publications.
        (
            {"offset": 2, "recovered": False, "reason": "future"},
            Gap("ch", GapReason.FUTURE, None, None),
            Position("e1", 2),
        ),
        # A refusal we do not understand fails closed.
        (
            {"recovered": False, "reason": "mystery"},
            Gap("ch", GapReason.EPOCH, 6, None),
            Position("e1", 10),
        ),
    ],
)
def test_resume_answers(
    answer: dict[str, object], gap: Gap | None, position: Position
) -> None:
    """Each answer to a resume ends in exact replay or a reported gap."""
    tracker = tracked()
    fields: dict[str, object] = {"epoch": "e1", "offset": 10, **answer}
    assert tracker.subscribed(**fields) == gap  # type: ignore[arg-type]
    assert tracker.position == position


def test_replay_after_recovery_is_deduplicated() -> None:
    """A replay overlapping what was delivered yields each message once."""
    tracker = tracked(offset=5)
    tracker.publication("e1", 6)
    tracker.subscribed("e1", 8, True)
    delivered = [o for o in (5, 6, 7, 8) if tracker.publication("e1", o)[0]]
    assert delivered == [7, 8]


def test_fresh_subscribe_without_resume_reports_what_was_missed() -> None:
    """Without resume, the server's current offset tells what was missed."""
    tracker = tracked(offset=5)
    assert tracker.subscribed("e1", 9, None) == Gap("ch", GapReason.SKIPPED, 6, 9)
    other = tracked(offset=5)
    assert other.subscribed("e2", 1, None) == Gap("ch", GapReason.EPOCH, 6, None)


def test_channels_without_positions() -> None:
    """Channels without epoch/offset are delivered as they come."""
    tracker = Tracker("ch")
    assert tracker.subscribed(None, None, None) is None
    assert tracker.publication(None, None) == (True, None)
    assert tracker.position is None


def test_new_epoch_in_a_publication() -> None:
    """A publication from another epoch is delivered after an unknown gap."""
    tracker = tracked()
    deliver, gap = tracker.publication("e2", 1)
    assert deliver
    assert gap == Gap("ch", GapReason.EPOCH, 6, None)


def test_gap_message() -> None:
    """A gap says which channel and which range."""
    assert "offsets 6..8" in str(Gap("ch", GapReason.SKIPPED, 6, 8))
    assert "unknown range" in str(Gap("ch", GapReason.FUTURE, None, None))


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=200))
def test_exactly_once_in_order(arrivals: list[int]) -> None:
    """Whatever order and repetition offsets arrive in, delivery is increasing,
    unique, and every offset below the last delivered is delivered or reported lost."""
    tracker = tracked(offset=0)
    delivered: list[int] = []
    lost: set[int] = set()
    for offset in arrivals:
        deliver, gap = tracker.publication("e1", offset)
        if gap is not None:
            assert gap.first is not None
            assert gap.last is not None
            lost.update(range(gap.first, gap.last + 1))
        if deliver:
            delivered.append(offset)
    assert delivered == sorted(set(delivered))
    if delivered:
        assert set(range(1, delivered[-1] + 1)) == set(delivered) | lost
        assert not set(delivered) & lost
