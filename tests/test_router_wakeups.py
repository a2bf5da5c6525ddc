"""The router's deferred wake-ups are bounded even when the buffer never empties.

The router takes buffered messages without awaiting and puts off waking
readers until it yields (Router._read). Under a stream that never lets the
buffer empty, it must still yield, and wake them, within READY_STREAK
messages: else a reader would starve. That condition cannot
be produced on demand over a real socket (whether the buffer empties depends
on scheduling), so this test drives the router's reader with a connection
that always has one more message ready; the real-socket tests of the same
wake-ups are in test_subscriptions.py (TestWakeUps) and test_publish.py.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from websockets.frames import Frame, Opcode

from wsclient import ReferenceProtocol
from wsclient._core.stats import Stats
from wsclient._router import Router, _Link
from wsclient._subscription import Overflow, Subscription, SubscriptionState
from wsclient._transport.receiving import READY_STREAK

from .utils import LONG

pytestmark = pytest.mark.anyio

STREAM = 100 * READY_STREAK


class EndlessConnection:
    """Has one message on channel "b", then messages on "a" (up to STREAM),
    always with another one ready: its queue of frames (what take_message()
    reads of websockets' assembler) never runs dry, and awaiting get() is a
    checkpoint, as on trio."""

    pending_messages = 1
    get_in_progress = paused = False  # As websockets' assembler.

    def __init__(self) -> None:
        self.read = 0
        self.recv_messages = self

    def recv_queue(self) -> tuple[EndlessConnection, EndlessConnection]:
        return self, self  # The assembler, and its queue of frames.

    def diversion(self, take: object) -> EndlessConnection:
        return self  # Its own diversion, which never takes anything.

    def on(self) -> None:
        pass

    def off(self) -> None:
        pass

    def __bool__(self) -> bool:
        return self.read < STREAM

    def __getitem__(self, index: int) -> Frame:
        assert index == 0
        channel = "b" if self.read == 0 else "a"
        data = {"type": "pub", "channel": channel, "data": self.read + 1}
        return Frame(Opcode.TEXT, json.dumps(data).encode())

    def popleft(self) -> None:
        self.read += 1

    async def get(self) -> str:
        await anyio.lowlevel.checkpoint()
        if not self:
            await anyio.sleep_forever()
        frame = self[0]
        self.popleft()
        return frame.data.decode()

    recv_next = get  # As the connection's, which reads this "assembler".


def subscription(channel: str) -> Subscription[Any]:
    async def unsubscribe(_: Subscription[Any]) -> None:
        pass

    sub: Subscription[Any] = Subscription(
        channel,
        {},
        max_queue=STREAM,
        overflow=Overflow.BLOCK,
        gaps="report",
        on_unsubscribe=unsubscribe,
    )
    sub.state = SubscriptionState.ACTIVE
    return sub


async def test_waiting_reader_is_woken_within_a_batch() -> None:
    router = Router(ReferenceProtocol(), Stats(), None)
    conn = EndlessConnection()
    link = _Link(conn, router._ids)  # type: ignore[arg-type]
    a, b = subscription("a"), subscription("b")
    for sub in (a, b):
        router.subscriptions[sub.channel] = sub
        link.sent[sub] = 0
    with anyio.fail_after(LONG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(router._read, link)
            message = await anext(aiter(b))
            woken_after = conn.read
            tg.cancel_scope.cancel()
    assert message.data == 1
    # Woken at the end of the streak "b"'s message was in; the router may run
    # its next streak before "b" does (trio runs a batch of runnable tasks in
    # random order), but not a third: "b" runs in that same batch.
    assert woken_after <= 2 * READY_STREAK + 3, woken_after
