"""The outbound buffer over real sockets: what send() does while disconnected.

Each test takes the reference server down, sends through a client that
cannot connect, and checks what the buffer did (receipts, counters), then
brings the server back and checks what the server echoes, in order.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import BufferFull, Client, ClientClosed, GaveUp, Outcome

from .utils import LONG, Recorder, T, fast_options, faults

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def echo(data: object) -> str:
    return json.dumps({"type": "echo", "data": data})


async def echoed(client: Client, count: int) -> list[Any]:
    """The data of the next ``count`` echoes the client receives."""
    received = []
    with anyio.fail_after(LONG):
        async for message in client:
            received.append(json.loads(message)["data"])
            if len(received) == count:
                break
    return received


def outcomes(receipts: list[wsclient.SendReceipt]) -> list[Outcome | None]:
    return [receipt.outcome for receipt in receipts]


async def test_buffered_while_down_then_flushed_in_order(server: Server) -> None:
    """Sends while down return at once, buffered; they go out in order."""
    await server.go_down()
    async with Client(server.url, **fast_options()) as client:
        receipts = [await client.send(echo(n)) for n in range(100)]
        assert outcomes(receipts) == [None] * 100
        assert client.stats.buffered == 100
        assert client.stats.buffered_bytes == sum(len(echo(n)) for n in range(100))
        await server.come_back()
        assert await echoed(client, 100) == list(range(100))
        assert outcomes(receipts) == [Outcome.WRITTEN] * 100
        assert client.stats.buffered == client.stats.buffered_bytes == 0
        assert client.stats.messages_out == 100


async def test_connected_send_is_written_at_once(server: Server) -> None:
    """Connected, send() writes directly: the receipt says WRITTEN on return."""
    async with Client(server.url, **fast_options()) as client:
        await client.wait_connected(LONG)
        receipt = await client.send(echo("now"), key="k")
        assert receipt.outcome is Outcome.WRITTEN
        assert await receipt.wait() is Outcome.WRITTEN
        assert (receipt.data, receipt.key, receipt.size) == (echo("now"), "k", 31)
        assert client.stats.buffered == 0
        assert await echoed(client, 1) == ["now"]


async def test_buffered_bytearray_is_copied(server: Server) -> None:
    """A buffered bytearray is copied: reusing it afterwards changes nothing."""
    await server.go_down()
    async with Client(server.url, **fast_options()) as client:
        payload = bytearray(b"before")
        await client.send(payload)
        payload[:] = b"after!"
        await server.come_back()
        with anyio.fail_after(LONG):
            assert await anext(aiter(client)) == b"before"


async def test_sends_during_flush_do_not_overtake(server: Server) -> None:
    """A producer that never pauses across the reconnection: the server sees
    its messages exactly in order, whether buffered, flushed or direct."""
    await server.go_down()
    count, padding = 3000, "x" * 1000  # Large enough for the flush to yield.
    options = fast_options(buffer_max_messages=count, buffer_max_bytes=2**23)
    async with Client(server.url, **options) as client:

        async def produce() -> None:
            for n in range(count):
                if n == 500:
                    await server.come_back()
                await client.send(echo([n, padding]))
                await anyio.lowlevel.checkpoint()  # Let the flush run meanwhile.

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            received = [n for n, _ in await echoed(client, count)]
        assert received == list(range(count)), faults(received, count)
        assert client.stats.connects == 1


async def test_order_kept_across_faults(server: Server) -> None:
    """Through repeated aborts, messages arrive in order without duplicates;
    any missing one was written (at-most-once), never dropped by the buffer."""
    count = 2000
    options = fast_options(buffer_max_messages=count, buffer_max_bytes=2**22)
    async with Client(server.url, **options) as client:
        await client.wait_connected(LONG)
        receipts: list[wsclient.SendReceipt] = []
        received: list[int] = []
        done = anyio.Event()

        async def produce() -> None:
            for n in range(count):
                receipts.append(await client.send(echo(n)))
                if n % 250 == 125:
                    # Mid-stream: sends go on, buffered until reconnected.
                    await client.wait_connected(LONG)
                    await server.abort_all()
                await anyio.lowlevel.checkpoint()
            await client.flush(LONG)
            await client.send(echo("end"))

        async def consume() -> None:
            async for message in client:
                data = json.loads(message)["data"]
                if data == "end":
                    done.set()
                    return
                received.append(data)

        with anyio.fail_after(3 * LONG):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                tg.start_soon(produce)
                await done.wait()
        assert received == sorted(set(received)), faults(received, count)
        missing = set(range(count)) - set(received)
        assert {receipts[n].outcome for n in missing} <= {
            Outcome.WRITTEN,
            Outcome.POSSIBLY_LOST,
        }
        assert client.stats.reconnects >= 8
        assert client.stats.buffer_dropped == client.stats.buffer_expired == 0


class TestOverflow:
    async def test_drop_oldest(self, server: Server) -> None:
        """drop_oldest: the oldest buffered messages make room, DROPPED."""
        await server.go_down()
        options = fast_options(buffer_max_messages=3, buffer_overflow="drop_oldest")
        async with Client(server.url, **options) as client:
            receipts = [await client.send(echo(n)) for n in range(5)]
            assert outcomes(receipts) == [Outcome.DROPPED] * 2 + [None] * 3
            assert client.stats.buffer_dropped == 2
            await server.come_back()
            assert await echoed(client, 3) == [2, 3, 4]

    async def test_drop_newest(self, server: Server) -> None:
        """drop_newest: the new message is DROPPED, the buffered ones stay."""
        await server.go_down()
        options = fast_options(buffer_max_messages=3, buffer_overflow="drop_newest")
        async with Client(server.url, **options) as client:
            receipts = [await client.send(echo(n)) for n in range(5)]
            assert outcomes(receipts) == [None] * 3 + [Outcome.DROPPED] * 2
            assert client.stats.buffer_dropped == 2
            await server.come_back()
            assert await echoed(client, 3) == [0, 1, 2]

    async def test_fail(self, server: Server) -> None:
        """fail: send() raises BufferFull and the message is not buffered."""
        await server.go_down()
        options = fast_options(buffer_max_messages=3, buffer_overflow="fail")
        async with Client(server.url, **options) as client:
            for n in range(3):
                await client.send(echo(n))
            with pytest.raises(BufferFull, match="full: retry later"):
                await client.send(echo(3))
            assert client.stats.buffered == 3
            await server.come_back()
            await client.wait_connected(LONG)  # Connected once flushed.
            await client.send(echo(4))
            assert await echoed(client, 4) == [0, 1, 2, 4]

    async def test_block_until_flushed(self, server: Server) -> None:
        """block: send() waits for room, then goes on in order."""
        await server.go_down()
        async with Client(server.url, **fast_options(buffer_max_messages=3)) as client:
            for n in range(3):
                await client.send(echo(n))
            blocked: list[wsclient.SendReceipt] = []
            async with anyio.create_task_group() as tg:

                async def send_blocked() -> None:
                    blocked.append(await client.send(echo(3)))

                tg.start_soon(send_blocked)
                await anyio.wait_all_tasks_blocked()
                assert blocked == []
                await server.come_back()
            assert await echoed(client, 4) == [0, 1, 2, 3]
            assert blocked[0].outcome is Outcome.WRITTEN

    async def test_block_timeout(self, server: Server) -> None:
        """block with buffer_timeout: BufferFull once the timeout passed."""
        await server.go_down()
        options = fast_options(
            buffer_max_messages=1, buffer_timeout=50 * T, drain_timeout=0
        )
        async with Client(server.url, **options) as client:
            await client.send(echo(0))
            started = anyio.current_time()
            with (
                anyio.fail_after(LONG),
                pytest.raises(BufferFull, match="buffer_timeout="),
            ):
                await client.send(echo(1))
            assert anyio.current_time() - started >= 50 * T
            assert client.stats.buffered == 1

    async def test_byte_limit(self, server: Server) -> None:
        """The byte limit counts too: 3 messages of 40 bytes do not fit in 100."""
        await server.go_down()
        options = fast_options(buffer_max_bytes=100, buffer_overflow="drop_oldest")
        async with Client(server.url, **options) as client:
            receipts = [await client.send(b"%02d" % n + b"." * 38) for n in range(3)]
            assert outcomes(receipts) == [Outcome.DROPPED, None, None]
            assert client.stats.buffered_bytes == 80
            with pytest.raises(ValueError, match="exceeds buffer_max_bytes=100"):
                await client.send(b"x" * 101)
            await server.come_back()
            with anyio.fail_after(LONG):
                assert (await anext(aiter(client)))[:2] == b"01"
                assert (await anext(aiter(client)))[:2] == b"02"

    async def test_flood_stays_within_byte_limit(self, server: Server) -> None:
        """20 MiB sent to a disconnected client keep at most max_bytes buffered,
        and memory does not grow with what was sent."""
        await server.go_down()
        limit = 64 * 1024
        options = fast_options(
            buffer_max_messages=10**6,
            buffer_max_bytes=limit,
            buffer_overflow="drop_oldest",
        )
        async with Client(server.url, **options) as client:
            stats = client.stats
            tracemalloc.start()
            try:
                for n in range(20_000):
                    await client.send(b"%08d" % n + b"." * 1016)  # 1 KiB each.
                    assert stats.buffered_bytes <= limit
                growth = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert growth < 1024 * 1024, f"peak of {growth} bytes traced"
            assert stats.buffered == 64
            assert stats.buffer_dropped == 20_000 - 64
            await server.come_back()
            with anyio.fail_after(LONG):
                first = await anext(aiter(client))
            assert first[:8] == b"%08d" % (20_000 - 64)


async def test_ttl_expires_while_down(server: Server) -> None:
    """A message older than buffer_ttl expires unsent, while still down."""
    await server.go_down()
    async with Client(server.url, **fast_options(buffer_ttl=50 * T)) as client:
        old = await client.send(echo("old"))
        with anyio.fail_after(LONG):
            assert await old.wait() is Outcome.EXPIRED
        assert client.stats.buffer_expired == 1
        assert client.stats.buffered == 0
        await server.come_back()
        await client.wait_connected(LONG)  # Else "new" could expire too.
        await client.send(echo("new"))
        assert await echoed(client, 1) == ["new"]


async def test_ttl_expiry_makes_room_for_blocked_sender(server: Server) -> None:
    """A sender blocked on a full buffer gets room when the older message
    expires; its own message then expires in turn, ttl after it was sent."""
    await server.go_down()
    options = fast_options(buffer_max_messages=1, buffer_ttl=400 * T)
    async with Client(server.url, **options) as client:
        first = await client.send(echo(0))
        # Not a synchronisation: the two ttl windows must differ, by far more
        # than a scheduling hiccup.
        await anyio.sleep(200 * T)
        with anyio.fail_after(LONG):
            second = await client.send(echo(1))  # Blocked until first expires.
            assert first.outcome is Outcome.EXPIRED
            assert second.outcome is None
            assert await second.wait() is Outcome.EXPIRED
        assert second.expires_at is not None
        assert anyio.current_time() >= second.expires_at


async def test_coalescing_key(server: Server) -> None:
    """A newer message with the same key replaces the buffered one, and goes
    at the end: what is sent stays a subsequence of what was sent."""
    await server.go_down()
    async with Client(server.url, **fast_options()) as client:
        v1 = await client.send(echo("a=1"), key="a")
        other = await client.send(echo("b=1"), key="b")
        v2 = await client.send(echo("a=2"), key="a")
        assert outcomes([v1, other, v2]) == [Outcome.REPLACED, None, None]
        assert client.stats.buffer_replaced == 1
        await server.come_back()
        assert await echoed(client, 2) == ["b=1", "a=2"]


class TestFlush:
    async def test_flush_times_out_then_succeeds(self, server: Server) -> None:
        """flush() waits for the buffer to be written; TimeoutError keeps it."""
        await server.go_down()
        async with Client(server.url, **fast_options()) as client:
            receipt = await client.send(echo(1))
            with pytest.raises(TimeoutError):
                await client.flush(timeout=50 * T)
            assert receipt.outcome is None
            await server.come_back()
            await client.flush(LONG)
            assert receipt.outcome is Outcome.WRITTEN

    async def test_flush_waits_for_acks(self, server: Server) -> None:
        """With publications in flight, flush() also waits for their acks."""
        options = fast_options(protocol=wsclient.ReferenceProtocol())
        async with Client(server.url, **options) as client:
            await client.wait_connected(LONG)
            server.stall()
            receipt = client.publish_nowait("c", 1)
            with pytest.raises(TimeoutError):
                await client.flush(timeout=50 * T)
            server.stall(False)
            await client.flush(LONG)
            assert receipt.outcome is Outcome.ACKED

    async def test_flush_raises_when_client_gives_up(self, server: Server) -> None:
        """flush() raises why the client stopped; the buffer is reported."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(max_attempts=1, **recorder.callbacks())
        async with Client(server.url, **options) as client:
            receipt = await client.send(echo(1))
            with anyio.fail_after(LONG), pytest.raises(GaveUp):
                await client.flush()
            event = await recorder.wait_for("undelivered")
        assert event.messages == (receipt,)
        assert isinstance(event.error, GaveUp)
        assert receipt.outcome is Outcome.DROPPED


class TestClose:
    async def test_close_drains_buffer(self, server: Server) -> None:
        """close() delivers what is buffered when a connection comes in time."""
        await server.go_down()
        options = fast_options(drain_timeout=LONG)
        async with Client(server.url, **options) as client:
            receipts = [await client.send(echo(n)) for n in range(3)]
            async with anyio.create_task_group() as tg:
                results: list[wsclient.UndeliveredEvent] = []

                async def close() -> None:
                    results.append(await client.close())

                tg.start_soon(close)
                await anyio.wait_all_tasks_blocked()
                assert results == []  # Draining: waiting for a connection.
                await server.come_back()
        assert len(results[0]) == 0
        assert outcomes(receipts) == [Outcome.WRITTEN] * 3
        assert server.counters.messages_received == 3

    async def test_close_reports_undelivered(self, server: Server) -> None:
        """Past drain_timeout, close() returns what is left, DROPPED, and the
        undelivered callback gets the same; nothing is silent."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(drain_timeout=50 * T, **recorder.callbacks())
        async with Client(server.url, **options) as client:
            receipts = [await client.send(echo(n)) for n in range(3)]
            with anyio.fail_after(LONG):
                undelivered = await client.close()
            with pytest.raises(ClientClosed):
                await client.send(echo("late"))
        assert undelivered.messages == tuple(receipts)
        assert undelivered.publications == ()
        assert undelivered.error is None
        assert outcomes(receipts) == [Outcome.DROPPED] * 3
        assert recorder.of("undelivered") == [undelivered]
        assert client.stats.buffer_dropped == 3
        assert client.stats.buffered == 0
        assert await client.close() is undelivered  # Idempotent.

    async def test_close_with_nothing_pending_is_prompt(self, server: Server) -> None:
        """With nothing buffered, close() does not wait for drain_timeout."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(drain_timeout=10 * LONG, **recorder.callbacks())
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                undelivered = await client.close()
        assert len(undelivered) == 0
        assert recorder.of("undelivered") == []

    async def test_drain_timeout_zero(self, server: Server) -> None:
        """drain_timeout=0 closes at once and reports the buffer."""
        await server.go_down()
        async with Client(server.url, **fast_options(drain_timeout=0)) as client:
            receipt = await client.send(echo(0))
            with anyio.fail_after(LONG):
                undelivered = await client.close()
        assert undelivered.messages == (receipt,)


async def test_publish_receipt_outcomes(server: Server) -> None:
    """A publication never sent ends DROPPED; an acknowledged one ACKED."""
    options = fast_options(protocol=wsclient.ReferenceProtocol())
    unstarted = Client(server.url, **options)
    never = unstarted.publish_nowait("c", 0)
    assert never.outcome is None
    await unstarted.close()
    assert never.outcome is Outcome.DROPPED
    async with Client(server.url, **options) as client:
        receipt = client.publish_nowait("c", 1)
        with anyio.fail_after(LONG):
            await receipt.wait()
    assert receipt.outcome is Outcome.ACKED


class TestOrderAndCallbacks:
    async def test_blocked_senders_go_first_come_first_served(
        self, server: Server
    ) -> None:
        """Senders blocked on a full buffer are admitted in the order they came
        (trio wakes waiters in random order: a queue keeps them fair)."""
        await server.go_down()
        async with Client(server.url, **fast_options(buffer_max_messages=2)) as client:
            await client.send(echo("m0"))
            await client.send(echo("m1"))
            async with anyio.create_task_group() as tg:
                for n in range(5):
                    tg.start_soon(client.send, echo(f"c{n}"))
                    await anyio.wait_all_tasks_blocked()  # In line before the next.
                await server.come_back()
            expected = ["m0", "m1"] + [f"c{n}" for n in range(5)]
            assert await echoed(client, 7) == expected

    async def test_connect_callback_sends_before_the_buffer(
        self, server: Server
    ) -> None:
        """What on_connect sends goes first (a raw client re-authenticates or
        resubscribes there), then the buffer, then everything else."""
        await server.go_down()
        client: Client

        async def hello(event: wsclient.ConnectEvent) -> None:
            await client.send(echo("hello"))

        async with Client(server.url, **fast_options(on_connect=hello)) as client:
            await client.send(echo("b1"))
            await client.send(echo("b2"))
            await server.come_back()
            await client.wait_connected(LONG)
            await client.send(echo("after"))
            assert await echoed(client, 4) == ["hello", "b1", "b2", "after"]

    async def test_flush_in_a_callback_raises(self, server: Server) -> None:
        """flush() cannot wait in a callback (the client flushes only after
        it returns): RuntimeError rather than a deadlock."""
        await server.go_down()
        errors: list[BaseException] = []
        client: Client

        async def on_give_up(event: wsclient.GiveUpEvent) -> None:
            try:
                await client.flush()
            except RuntimeError as exc:
                errors.append(exc)

        options = fast_options(max_attempts=1, on_give_up=on_give_up)
        async with Client(server.url, **options) as client:
            await client.send(echo(1))
            with anyio.fail_after(LONG), pytest.raises(GaveUp):
                await client.wait_connected()
        assert len(errors) == 1
        assert "cannot be awaited in a callback" in str(errors[0])

    async def test_full_buffer_in_a_callback_raises(self, server: Server) -> None:
        """send() in a callback cannot wait for room: BufferFull at once."""
        await server.go_down()
        errors: list[BaseException] = []
        client: Client

        async def on_disconnect(event: wsclient.DisconnectEvent) -> None:
            try:
                await client.send(echo("from callback"))
            except BufferFull as exc:
                errors.append(exc)

        recorder = Recorder()
        options = fast_options(
            buffer_max_messages=1, drain_timeout=0, **recorder.callbacks()
        )
        async with Client(server.url, **options) as client:
            client.on("disconnect", on_disconnect)
            await client.send(echo("fills it"))
            with anyio.fail_after(LONG):
                await recorder.wait_for("disconnect", 2)
        assert errors, "the callback's send() did not raise"
        assert "called from a callback" in str(errors[0])


class TestStopping:
    async def test_send_after_supervisor_cancelled(self, server: Server) -> None:
        """Once an enclosing cancellation stopped the client, send() and
        wait_connected() raise ClientClosed instead of buffering or hanging."""
        with anyio.CancelScope() as outer:
            async with Client(server.url, **fast_options()) as client:
                await client.wait_connected(LONG)
                try:
                    outer.cancel()
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True), anyio.fail_after(LONG):
                        with pytest.raises(ClientClosed):
                            await client.wait_connected()
                        with pytest.raises(ClientClosed):
                            await client.send(echo("goodbye"))
        assert client.stats.buffered == 0

    async def test_block_exit_with_error_reports_undelivered(
        self, server: Server
    ) -> None:
        """Leaving the block with an exception skips the drain, but the
        undelivered callback still hears of the buffered messages."""
        await server.go_down()
        recorder = Recorder()
        client = Client(server.url, **fast_options(**recorder.callbacks()))
        receipts = []

        async def fail_in_block() -> None:
            async with client:
                receipts.append(await client.send(echo(1)))
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await fail_in_block()
        [receipt] = receipts
        [event] = recorder.of("undelivered")
        assert event.messages == (receipt,)
        assert receipt.outcome is Outcome.DROPPED
        assert await client.close() is event

    async def test_close_before_start_reports_publications(self) -> None:
        """Closing a client never started reports what publish_nowait queued."""
        recorder = Recorder()
        options = fast_options(
            protocol=wsclient.ReferenceProtocol(), **recorder.callbacks()
        )
        client = Client("ws://127.0.0.1:9", **options)
        receipt = client.publish_nowait("never", 1)
        undelivered = await client.close()
        assert undelivered.publications == (receipt,)
        assert recorder.of("undelivered") == [undelivered]
        assert receipt.outcome is Outcome.DROPPED
        assert await client.close() is undelivered

    async def test_close_while_flushing_large_messages(self, server: Server) -> None:
        """close() during the flush of large messages lets the message being
        written finish: the closing handshake does not wait for close_timeout
        (a frame cut in the middle would corrupt the stream on trio)."""
        await server.go_down()
        options = fast_options(
            buffer_max_bytes=2**23, drain_timeout=0, close_timeout=4 * LONG
        )
        async with Client(server.url, **options) as client:
            payload = b"x" * 2**19
            receipts = [await client.send(payload) for _ in range(8)]
            await server.come_back()
            with anyio.fail_after(LONG):
                await server.wait_for(lambda c: c.messages_received >= 1)
                undelivered = await client.close()
        assert all(receipt.outcome is not None for receipt in receipts)
        written = [r for r in receipts if r.outcome is Outcome.WRITTEN]
        assert list(undelivered.messages) == receipts[len(written) :]
