"""The outbound buffer: limits, overflow policies, expiry, coalescing, outcomes."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wsclient._core.buffer import (
    Admission,
    OutboundBuffer,
    Outcome,
    Overflow,
    Pending,
)
from wsclient._sending import SendReceipt, UndeliveredEvent

if TYPE_CHECKING:
    from collections.abc import Hashable


def make(
    overflow: Overflow = Overflow.BLOCK,
    max_messages: int = 3,
    max_bytes: int = 100,
    ttl: float | None = None,
) -> OutboundBuffer:
    """A small buffer: 3 messages, 100 bytes, BLOCK, no ttl, unless told otherwise."""
    return OutboundBuffer(
        max_messages=max_messages, max_bytes=max_bytes, overflow=overflow, ttl=ttl
    )


def put(
    buf: OutboundBuffer,
    data: str | bytes,
    now: float = 0.0,
    key: Hashable | None = None,
) -> Pending:
    """Offer ``data`` and assert it was accepted with nothing settled."""
    item = buf.message(data, now, key)
    offer = buf.offer(item, now)
    assert offer.admission is Admission.ACCEPTED
    assert offer.evicted == []
    return item


def pop_all(buf: OutboundBuffer, now: float = 0.0) -> list[str | bytes]:
    """Pop everything left at ``now``; return the data in pop order."""
    out: list[str | bytes] = []
    while (item := buf.pop(now)[0]) is not None:
        out.append(item.data)
    return out


# Pending.


@pytest.mark.parametrize(
    ("data", "size"),
    [(b"abc", 3), ("abc", 3), ("", 0), ("é", 2), ("€", 3), ("😀", 4), ("a😀", 5)],
)
def test_size_is_utf8_bytes(data: str | bytes, size: int) -> None:
    """A message's size is its length in bytes, UTF-8 for text."""
    assert Pending(data, 0.0).size == size


def test_size_of_a_str_subclass_is_utf8_bytes() -> None:
    """Text of a str subclass is measured as text, not in characters."""

    class Text(str):
        pass

    assert Pending(Text("é" * 10), 0.0).size == 20


def test_a_second_outcome_is_a_bug() -> None:
    """Settling a message twice raises AssertionError; the first outcome stays."""
    item = Pending(b"x", 0.0)
    item.settle(Outcome.WRITTEN)
    with pytest.raises(AssertionError, match="already ended"):
        item.settle(Outcome.DROPPED)
    assert item.outcome is Outcome.WRITTEN


def test_message_uses_the_buffer_ttl() -> None:
    """message() stamps the send time and the expiry from the buffer's ttl."""
    item = make(ttl=5.0).message("hi", 10.0, key="k")
    assert (item.enqueued_at, item.expires_at, item.key) == (10.0, 15.0, "k")
    assert make().message("hi", 10.0).expires_at is None


def test_offering_a_settled_or_buffered_message_is_a_bug() -> None:
    """A message is offered once: again, or after it ended, is a bug."""
    buf = make()
    item = put(buf, b"x")
    with pytest.raises(AssertionError, match="already buffered"):
        buf.offer(item, 0.0)
    done = Pending(b"y", 0.0)
    done.settle(Outcome.WRITTEN)
    with pytest.raises(AssertionError, match="already ended"):
        buf.offer(done, 0.0)


# Limits and overflow policies.


def test_accepts_within_limits() -> None:
    """Messages that fit are accepted and counted by number and bytes."""
    buf = make()
    put(buf, b"12345")
    put(buf, "abc")
    assert (len(buf), buf.bytes) == (2, 8)
    assert pop_all(buf) == [b"12345", "abc"]
    assert (len(buf), buf.bytes) == (0, 0)


@pytest.mark.parametrize(
    ("limits", "sizes"),
    [
        ({"max_messages": 2, "max_bytes": 1000}, [1, 1, 1]),  # Count limit.
        ({"max_messages": 100, "max_bytes": 10}, [6, 3, 2]),  # Byte limit.
    ],
    ids=["count", "bytes"],
)
@pytest.mark.parametrize("overflow", [Overflow.BLOCK, Overflow.FAIL])
def test_each_limit_refuses_on_its_own(
    limits: dict[str, int], sizes: list[int], overflow: Overflow
) -> None:
    """Either limit alone refuses a message that would exceed it."""
    buf = make(overflow, **limits)
    for size in sizes[:-1]:
        put(buf, b"x" * size)
    item = buf.message(b"x" * sizes[-1], 0.0)
    assert not buf.has_room_for(item)
    offer = buf.offer(item, 0.0)
    assert offer.admission is not Admission.ACCEPTED
    assert item.outcome is None
    assert len(buf) == len(sizes) - 1


def test_block_asks_to_wait_then_accepts() -> None:
    """BLOCK leaves the message untouched until there is room, then accepts it."""
    buf = make(Overflow.BLOCK, max_messages=1)
    put(buf, b"old")
    item = buf.message(b"new", 1.0)
    offer = buf.offer(item, 1.0)
    assert (offer.admission, offer.evicted, offer.error) == (Admission.WAIT, [], None)
    assert item.outcome is None
    assert pop_all(buf) == [b"old"]
    assert buf.has_room_for(item)
    assert buf.offer(item, 2.0).admission is Admission.ACCEPTED
    assert pop_all(buf) == [b"new"]
    assert buf.dropped == 0


def test_fail_refuses_with_an_error() -> None:
    """FAIL refuses a message that does not fit, with the error to raise."""
    buf = make(Overflow.FAIL, max_messages=1)
    put(buf, b"old")
    item = buf.message(b"new", 0.0)
    offer = buf.offer(item, 0.0)
    assert offer.admission is Admission.FULL
    assert offer.error is not None
    assert "full" in offer.error
    assert "1/1 messages" in offer.error
    assert item.outcome is None
    assert pop_all(buf) == [b"old"]


def test_drop_newest_drops_the_new_message() -> None:
    """DROP_NEWEST keeps what is buffered and settles the new one as DROPPED."""
    buf = make(Overflow.DROP_NEWEST, max_messages=2)
    put(buf, b"a")
    put(buf, b"b")
    item = buf.message(b"c", 0.0)
    offer = buf.offer(item, 0.0)
    assert offer.admission is Admission.DROPPED
    assert offer.evicted == [item]
    assert item.outcome is Outcome.DROPPED
    assert buf.dropped == 1
    assert pop_all(buf) == [b"a", b"b"]


def test_drop_oldest_by_count() -> None:
    """DROP_OLDEST drops the oldest message to make room for the new one."""
    buf = make(Overflow.DROP_OLDEST, max_messages=2)
    a, _ = put(buf, b"a"), put(buf, b"b")
    offer = buf.offer(buf.message(b"c", 0.0), 0.0)
    assert offer.admission is Admission.ACCEPTED
    assert offer.evicted == [a]
    assert a.outcome is Outcome.DROPPED
    assert buf.dropped == 1
    assert pop_all(buf) == [b"b", b"c"]


def test_drop_oldest_drops_enough_bytes() -> None:
    """DROP_OLDEST drops as many old messages as the new one's bytes need."""
    buf = make(Overflow.DROP_OLDEST, max_messages=10, max_bytes=10)
    a, b, _ = put(buf, b"aaa"), put(buf, b"bbb"), put(buf, b"ccc")
    offer = buf.offer(buf.message(b"d" * 7, 0.0), 0.0)
    assert offer.admission is Admission.ACCEPTED
    assert offer.evicted == [a, b]
    assert [a.outcome, b.outcome] == [Outcome.DROPPED] * 2
    assert (len(buf), buf.bytes, buf.dropped) == (2, 10, 2)
    assert pop_all(buf) == [b"ccc", b"d" * 7]


@pytest.mark.parametrize("overflow", list(Overflow))
def test_an_oversized_message_never_fits(overflow: Overflow) -> None:
    """A message larger than max_bytes is refused under every policy."""
    buf = make(overflow, max_bytes=10)
    put(buf, b"keep")
    item = buf.message(b"x" * 11, 0.0)
    offer = buf.offer(item, 0.0)
    assert offer.admission is Admission.TOO_LARGE
    assert offer.error is not None
    assert "max_bytes=10" in offer.error
    assert (offer.evicted, item.outcome, buf.dropped) == ([], None, 0)
    assert pop_all(buf) == [b"keep"]
    put(buf, b"x" * 10)  # Exactly max_bytes fits.


def test_limits_are_measured_in_utf8_bytes() -> None:
    """Non-ASCII text counts its encoded size against max_bytes."""
    buf = make(Overflow.FAIL, max_bytes=8)
    put(buf, "😀")
    assert buf.bytes == 4
    assert buf.offer(buf.message("éé£", 0.0), 0.0).admission is Admission.FULL


# Time to live.


def test_offer_expires_first_and_so_makes_room() -> None:
    """offer() removes expired messages before checking room."""
    buf = make(Overflow.FAIL, max_messages=2, ttl=10.0)
    a, b = put(buf, b"a", 0.0), put(buf, b"b", 5.0)
    offer = buf.offer(buf.message(b"c", 10.0), 10.0)
    assert offer.admission is Admission.ACCEPTED
    assert offer.evicted == [a]
    assert a.outcome is Outcome.EXPIRED
    assert (buf.expired, buf.dropped) == (1, 0)
    assert b.outcome is None
    assert pop_all(buf, 10.0) == [b"b", b"c"]


def test_offering_an_expired_message() -> None:
    """A message that expired while its sender waited is settled as EXPIRED."""
    buf = make(Overflow.BLOCK, max_messages=1, ttl=5.0)
    put(buf, b"a", 4.0)
    late = buf.message(b"late", 0.0)
    assert buf.offer(late, 1.0).admission is Admission.WAIT
    offer = buf.offer(late, 5.0)
    assert offer.admission is Admission.EXPIRED
    assert offer.evicted == [late]
    assert late.outcome is Outcome.EXPIRED
    assert buf.expired == 1


def test_pop_skips_expired_messages() -> None:
    """pop() returns the oldest unexpired message and the expired ones."""
    buf = make(ttl=10.0)
    a, b, c = put(buf, b"a", 0.0), put(buf, b"b", 1.0), put(buf, b"c", 2.0)
    item, expired = buf.pop(11.0)
    assert item is c
    assert expired == [a, b]
    assert [a.outcome, b.outcome, c.outcome] == [Outcome.EXPIRED] * 2 + [None]
    assert buf.pop(11.0) == (None, [])


def test_expire_is_inclusive_and_ordered() -> None:
    """expire() removes messages at or past their deadline, earliest first."""
    buf = make(ttl=10.0)
    a, b, c = put(buf, b"a", 0.0), put(buf, b"b", 1.0), put(buf, b"c", 2.0)
    assert buf.expire(9.9) == []
    assert buf.expire(11.0) == [a, b]
    assert (len(buf), buf.bytes, buf.expired) == (1, 1, 2)
    assert c.outcome is None


def test_next_expiry() -> None:
    """next_expiry() is the earliest deadline still buffered."""
    assert make().next_expiry() is None
    put(nottl := make(), b"a")
    assert nottl.next_expiry() is None
    buf = make(ttl=10.0)
    assert buf.next_expiry() is None
    put(buf, b"a", 1.0)
    put(buf, b"b", 2.0)
    assert buf.next_expiry() == 11.0
    item, _ = buf.pop(3.0)
    assert buf.next_expiry() == 12.0
    assert item is not None
    buf.push_front(item)
    assert buf.next_expiry() == 11.0
    buf.drain()
    assert buf.next_expiry() is None


def test_deadlines_out_of_queue_order() -> None:
    """A late offer with an earlier deadline expires first, from the middle."""
    buf = make(ttl=10.0)
    late = buf.message(b"late", 0.0)  # Its sender was blocked until 4.
    first = put(buf, b"first", 3.0)
    assert buf.offer(late, 4.0).admission is Admission.ACCEPTED
    assert buf.next_expiry() == 10.0
    assert buf.expire(10.0) == [late]
    assert buf.next_expiry() == 13.0
    assert first.outcome is None
    assert pop_all(buf, 10.0) == [b"first"]


# Coalescing.


def test_coalescing_replaces_and_moves_to_the_end() -> None:
    """A newer message with a buffered key replaces it and goes last."""
    buf = make(max_messages=5)
    a1 = put(buf, b"a1", key="a")
    put(buf, b"b1", key="b")
    item = buf.message(b"a2-longer", 1.0, "a")
    offer = buf.offer(item, 1.0)
    assert offer.admission is Admission.ACCEPTED
    assert offer.evicted == [a1]
    assert a1.outcome is Outcome.REPLACED
    assert (buf.replaced, buf.dropped, len(buf), buf.bytes) == (1, 0, 2, 11)
    assert pop_all(buf) == [b"b1", b"a2-longer"]


def test_coalescing_only_within_a_key() -> None:
    """Different keys and no key never coalesce."""
    buf = make(max_messages=5)
    for data, key in [(b"1", "a"), (b"2", "b"), (b"3", None), (b"4", None)]:
        put(buf, data, key=key)
    assert buf.replaced == 0
    assert len(buf) == 4


def test_coalescing_needs_no_room_for_the_replaced_message() -> None:
    """In a full buffer, a replacement fits in the room its old value frees."""
    buf = make(Overflow.FAIL, max_messages=2, max_bytes=4)
    put(buf, b"aa", key="a")
    put(buf, b"bb")
    item = buf.message(b"AA", 1.0, "a")
    assert buf.has_room_for(item)
    assert buf.offer(item, 1.0).admission is Admission.ACCEPTED
    assert pop_all(buf) == [b"bb", b"AA"]


def test_a_refused_replacement_keeps_the_old_value() -> None:
    """If the new value does not fit even so, the old one stays buffered."""
    buf = make(Overflow.BLOCK, max_bytes=4)
    old = put(buf, b"aa", key="a")
    put(buf, b"bb")
    assert buf.offer(buf.message(b"AAA", 1.0, "a"), 1.0).admission is Admission.WAIT
    assert old.outcome is None
    assert buf.replaced == 0
    assert pop_all(buf) == [b"aa", b"bb"]


def test_replacement_then_drop_oldest() -> None:
    """Under DROP_OLDEST, the old value is replaced before dropping others."""
    buf = make(Overflow.DROP_OLDEST, max_bytes=6)
    b, a = put(buf, b"bb"), put(buf, b"aa", key="a")
    put(buf, b"cc")
    offer = buf.offer(buf.message(b"AAAA", 1.0, "a"), 1.0)
    assert offer.evicted == [a, b]
    assert [a.outcome, b.outcome] == [Outcome.REPLACED, Outcome.DROPPED]
    assert (buf.replaced, buf.dropped, buf.bytes) == (1, 1, 6)
    assert pop_all(buf) == [b"cc", b"AAAA"]


def test_popped_message_no_longer_coalesces() -> None:
    """A message being written is not replaced: only unsent ones are."""
    buf = make()
    put(buf, b"a1", key="a")
    sent, _ = buf.pop(0.0)
    put(buf, b"a2", key="a")
    assert sent is not None
    assert sent.outcome is None
    assert buf.replaced == 0


# push_front and drain.


def test_push_front_restores_order() -> None:
    """Messages put back in reverse pop order come out in the original order."""
    buf = make()
    put(buf, b"a")
    put(buf, b"b")
    put(buf, b"c")
    first, _ = buf.pop(0.0)
    second, _ = buf.pop(0.0)
    assert first is not None
    assert second is not None
    assert buf.push_front(second) == []
    assert buf.push_front(first) == []
    assert pop_all(buf) == [b"a", b"b", b"c"]


def test_push_front_may_exceed_the_limits_by_one() -> None:
    """A message put back may overfill the buffer until it drains below."""
    buf = make(Overflow.BLOCK, max_messages=2)
    put(buf, b"a")
    put(buf, b"b")
    item, _ = buf.pop(0.0)
    put(buf, b"c")  # Took the room the message being written left.
    assert item is not None
    buf.push_front(item)
    assert (len(buf), buf.bytes) == (3, 3)
    late = buf.message(b"d", 1.0)
    assert not buf.has_room_for(late)
    assert buf.offer(late, 1.0).admission is Admission.WAIT
    dropper = make(Overflow.DROP_OLDEST, max_messages=2)
    put(dropper, b"a")
    put(dropper, b"b")
    item, _ = dropper.pop(0.0)
    put(dropper, b"c")
    assert item is not None
    dropper.push_front(item)
    offer = dropper.offer(dropper.message(b"d", 1.0), 1.0)
    assert [i.data for i in offer.evicted] == [b"a", b"b"]
    assert pop_all(dropper) == [b"c", b"d"]


def test_push_front_of_a_superseded_message() -> None:
    """A message put back after a newer value of its key was buffered is REPLACED."""
    buf = make()
    put(buf, b"a1", key="a")
    item, _ = buf.pop(0.0)
    put(buf, b"a2", key="a")
    assert item is not None
    assert buf.push_front(item) == [item]
    assert item.outcome is Outcome.REPLACED
    assert buf.replaced == 1
    assert pop_all(buf) == [b"a2"]


def test_drain_returns_everything_unsettled() -> None:
    """drain() empties the buffer, oldest first, leaving outcomes to the caller."""
    buf = make(ttl=10.0)
    items = [put(buf, b"a", key="k"), put(buf, b"b"), put(buf, b"c")]
    assert buf.drain() == items
    assert all(item.outcome is None for item in items)
    assert (len(buf), buf.bytes, buf.dropped, buf.expired) == (0, 0, 0, 0)
    assert buf.next_expiry() is None
    put(buf, b"again", key="k")  # The key index was cleared too.
    assert buf.replaced == 0


def test_deadline_bookkeeping_stays_bounded() -> None:
    """Messages that leave before expiring do not pile up in the deadline heap."""
    buf = make(max_messages=2, ttl=1000.0)
    for n in range(1000):
        put(buf, b"x", float(n))
        buf.pop(float(n))
    assert len(buf._deadlines) <= 2 * buf.max_messages + 17


def test_repr() -> None:
    """The repr shows the fill level and the policy."""
    buf = make(Overflow.DROP_NEWEST)
    put(buf, b"abcd")
    assert repr(buf) == "<OutboundBuffer 1/3 messages, 4/100 bytes, DROP_NEWEST>"


# Validation.


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_messages": 0}, ValueError, "max_messages must be >= 1"),
        ({"max_messages": 1.5}, TypeError, "max_messages must be a positive int"),
        ({"max_messages": True}, TypeError, "max_messages must be a positive int"),
        ({"max_bytes": -1}, ValueError, "max_bytes must be >= 1"),
        ({"max_bytes": "1"}, TypeError, "max_bytes must be a positive int"),
        ({"overflow": "block"}, TypeError, "overflow must be one of Overflow.BLOCK"),
        ({"ttl": 0}, ValueError, "ttl must be > 0, or None"),
        ({"ttl": -1.0}, ValueError, "ttl must be > 0"),
        ({"ttl": math.nan}, ValueError, "ttl must be > 0"),
        ({"ttl": "5"}, TypeError, "ttl must be a number of seconds or None"),
        ({"ttl": True}, TypeError, "ttl must be a number"),
    ],
)
def test_validation(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """Bad arguments raise TypeError or ValueError saying what to pass."""
    args: dict[str, object] = {
        "max_messages": 1,
        "max_bytes": 1,
        "overflow": Overflow.BLOCK,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        OutboundBuffer(**args)  # type: ignore[arg-type]


def test_valid_extremes() -> None:
    """The smallest limits and an infinite or integer ttl are valid."""
    OutboundBuffer(max_messages=1, max_bytes=1, overflow=Overflow.FAIL, ttl=math.inf)
    OutboundBuffer(max_messages=1, max_bytes=1, overflow=Overflow.FAIL, ttl=1)


# Properties.

# Time moves in coarse steps so that deadlines often fall exactly on ``now``.
SECONDS = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])


class BufferMachine(RuleBasedStateMachine):
    """Random offers, pops, write-or-put-back, retries and expiries keep the
    limits (but one message put back), FIFO order, and give every message
    exactly one outcome, checked against a model of the contents.

    A writer pops one message at a time, then writes it or puts it back.
    """

    @initialize(
        max_messages=st.integers(1, 5),
        max_bytes=st.integers(1, 40),
        overflow=st.sampled_from(Overflow),
        ttl=st.sampled_from([None, 1.0, 2.0, 5.0]),
    )
    def setup(
        self, max_messages: int, max_bytes: int, overflow: Overflow, ttl: float | None
    ) -> None:
        self.buf = make(overflow, max_messages, max_bytes, ttl)
        self.now = 0.0
        self.queue: list[Pending] = []  # Expected contents, oldest first.
        self.offered: list[Pending] = []
        self.settled: list[Pending] = []  # What the buffer returned settled.
        self.waiting: list[Pending] = []  # Refused with WAIT: still the sender's.
        self.refused: list[Pending] = []  # Refused with FULL or TOO_LARGE.
        self.in_flight: Pending | None = None  # Popped, not settled yet.
        self.written: list[Pending] = []
        self.rank: dict[int, int] = {}  # id(item) -> order of acceptance.
        self.slack = (0, 0)  # Overshoot allowed after push_front.

    # Rules.

    @rule(
        size=st.integers(0, 10) | st.integers(0, 45),  # Some never fit.
        key=st.sampled_from([None, "a", "b"]),
        age=st.sampled_from([0.0, 0.0, 1.0, 3.0]),  # A sender blocked, late.
    )
    def offer_new(self, size: int, key: str | None, age: float) -> None:
        item = self.buf.message(b"x" * size, self.now - age, key)
        self.offered.append(item)
        self.offer(item)

    @precondition(lambda self: self.in_flight and self.in_flight.key is not None)
    @rule(size=st.integers(0, 10))
    def offer_update_of_in_flight(self, size: int) -> None:
        """A newer value for the key of the message being written."""
        assert self.in_flight is not None
        assert isinstance(self.in_flight.key, str)
        self.offer_new(size, self.in_flight.key, 0.0)

    @precondition(lambda self: self.waiting)
    @rule()
    def retry(self) -> None:
        self.offer(self.waiting.pop(0))

    @precondition(lambda self: self.in_flight is None)
    @rule()
    def pop(self) -> None:
        popped, expired = self.buf.pop(self.now)
        self.take(expired)
        self.expired_all()
        assert popped is (self.queue[0] if self.queue else None)
        if popped is not None:
            self.in_flight = self.queue.pop(0)

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def write(self) -> None:
        assert self.in_flight is not None
        self.in_flight.settle(Outcome.WRITTEN)
        self.written.append(self.in_flight)
        self.in_flight = None

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def push_front(self) -> None:
        item, self.in_flight = self.in_flight, None
        assert item is not None
        replaced = self.buf.push_front(item)
        if replaced:
            assert replaced == [item]
            assert item.outcome is Outcome.REPLACED
            assert any(i.key == item.key for i in self.queue)
            self.settled.append(item)
        else:
            self.queue.insert(0, item)
            self.slack = (1, item.size)

    @rule()
    def expire(self) -> None:
        self.take(self.buf.expire(self.now))
        self.expired_all()

    @rule(seconds=SECONDS)
    def tick(self, seconds: float) -> None:
        self.now += seconds

    # Checks.

    def offer(self, item: Pending) -> None:
        room = self.buf.has_room_for(item)
        offer = self.buf.offer(item, self.now)
        outcomes = [i.outcome for i in offer.evicted]
        if room and offer.admission is not Admission.EXPIRED:
            assert offer.admission is Admission.ACCEPTED
            assert Outcome.DROPPED not in outcomes
        if offer.admission is Admission.ACCEPTED:
            assert room or {Outcome.DROPPED, Outcome.EXPIRED} & set(outcomes)
        evicted = offer.evicted
        if offer.admission in (Admission.DROPPED, Admission.EXPIRED):
            assert evicted[-1] is item
            evicted = evicted[:-1]
            self.settled.append(item)
        if offer.admission is Admission.TOO_LARGE:
            assert item.size > self.buf.max_bytes
            assert evicted == []  # Refused before anything else.
        self.take(evicted, item)
        if offer.admission is Admission.ACCEPTED:
            self.queue.append(item)
            self.rank[id(item)] = len(self.rank)
        elif offer.admission is Admission.WAIT:
            assert self.buf.overflow is Overflow.BLOCK
            self.waiting.append(item)
        elif offer.admission in (Admission.FULL, Admission.TOO_LARGE):
            assert offer.error
            self.refused.append(item)
        if offer.admission is not Admission.TOO_LARGE:
            self.expired_all()

    def take(self, settled: list[Pending], new: Pending | None = None) -> None:
        """Check what the buffer settled, in order: expired, replaced, dropped."""
        for item in settled:
            if item.outcome is Outcome.EXPIRED:
                assert item.expires_at is not None
                assert item.expires_at <= self.now
            elif item.outcome is Outcome.REPLACED:
                assert new is not None
                assert item.key is not None
                assert item.key == new.key
            else:
                assert item.outcome is Outcome.DROPPED
                assert self.buf.overflow is Overflow.DROP_OLDEST
                assert item is self.queue[0], "dropped a message but the oldest"
            self.queue.remove(item)
        self.settled.extend(settled)

    def expired_all(self) -> None:
        """Nothing expired is left: a call that takes ``now`` expires first."""
        assert all(i.expires_at is None or i.expires_at > self.now for i in self.queue)

    @invariant()
    def matches_the_model(self) -> None:
        buf = self.buf
        assert len(buf) == len(self.queue)
        assert buf.bytes == sum(item.size for item in self.queue)
        assert all(item.outcome is None for item in self.queue)
        keys = [item.key for item in self.queue if item.key is not None]
        assert len(keys) == len(set(keys)), "two unsent values of one key"
        deadlines = [i.expires_at for i in self.queue if i.expires_at is not None]
        assert buf.next_expiry() == (min(deadlines) if deadlines else None)
        # The deadline heap's lazy entries stay bounded by the limits.
        assert len(buf._deadlines) <= 2 * (buf.max_messages + 1) + 17

    @invariant()
    def within_limits(self) -> None:
        buf = self.buf
        if len(buf) <= buf.max_messages and buf.bytes <= buf.max_bytes:
            self.slack = (0, 0)  # Only push_front may exceed them, once.
        assert len(buf) <= buf.max_messages + self.slack[0]
        assert buf.bytes <= buf.max_bytes + self.slack[1]

    def teardown(self) -> None:
        """Drain, then check that every message ended exactly as reported."""
        if not hasattr(self, "buf"):
            return
        drained = self.buf.drain()
        assert drained == self.queue
        for item in drained:
            item.settle(Outcome.DROPPED)
        ranks = [self.rank[id(item)] for item in self.written]
        assert ranks == sorted(ranks), "written out of acceptance order"
        # Each message offered is in exactly one place, so none is lost.
        flying = [] if self.in_flight is None else [self.in_flight]
        places = [self.settled, self.written, drained, self.waiting, self.refused]
        everywhere = [id(item) for place in [*places, flying] for item in place]
        assert sorted(everywhere) == sorted(id(item) for item in self.offered)
        # Only the sender's (refused or waiting) and the writer's lack an outcome.
        unsettled = [id(i) for i in self.offered if i.outcome is None]
        mine = [id(i) for i in self.waiting + self.refused + flying]
        assert sorted(unsettled) == sorted(mine)
        outcomes = [item.outcome for item in self.settled]
        assert len({id(item) for item in self.settled}) == len(self.settled)
        assert outcomes.count(Outcome.DROPPED) == self.buf.dropped
        assert outcomes.count(Outcome.EXPIRED) == self.buf.expired
        assert outcomes.count(Outcome.REPLACED) == self.buf.replaced


TestRandomOperations = BufferMachine.TestCase
TestRandomOperations.settings = settings(
    database=None, deadline=None, max_examples=300, stateful_step_count=60
)


def test_receipts_convert_with_dataclasses() -> None:
    """A receipt (and an UndeliveredEvent holding some) converts with
    dataclasses.asdict(), whether or not anyone waited on it."""
    receipt = SendReceipt("hello", 1.5)
    event = UndeliveredEvent((receipt,), (), None)
    assert dataclasses.asdict(receipt)["data"] == "hello"
    assert dataclasses.asdict(event)["messages"][0]["size"] == 5
