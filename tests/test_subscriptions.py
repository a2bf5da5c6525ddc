"""Subscriptions against the reference server: restored, recovered, reported."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.frames import Opcode

import wsclient
from wsclient import Client, Gap, GapReason, SubscriptionState

from .hostile import Peer, hostile_server, raw_frame
from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient import Subscription
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def channel_options(**overrides: Any) -> dict[str, Any]:
    """Test options with the reference server's channel protocol."""
    return fast_options(protocol=wsclient.ReferenceProtocol(), **overrides)


async def take(subscription: Subscription, count: int) -> list[object]:
    """Read ``count`` items (messages' data, or Gap markers) from a subscription."""
    items: list[object] = []
    async for item in subscription:
        items.append(item if isinstance(item, Gap) else item.data)
        if len(items) == count:
            break
    return items


async def publish_many(server: Server, channel: str, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await server.publish(channel, n)


class TestBasics:
    async def test_receive_with_positions(self, server: Server) -> None:
        """Publications arrive in order, with their channel and position."""
        async with Client(server.url, **channel_options()) as client:
            async with client.subscribe("news") as news:
                with anyio.fail_after(LONG):
                    await server.wait_for(lambda n: n.subscriptions_open == 1)
                    await publish_many(server, "news", 1, 3)
                    messages = [await anext(aiter(news)) for _ in range(3)]
                assert news.state is SubscriptionState.ACTIVE
        assert [m.data for m in messages] == [1, 2, 3]
        assert [m.position.offset for m in messages if m.position] == [1, 2, 3]
        assert {m.channel for m in messages} == {"news"}
        assert news.state is SubscriptionState.CLOSED

    async def test_subscribe_while_disconnected(self, server: Server) -> None:
        """A subscription made while the server is down is sent on connect."""
        await server.go_down()
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news")
            assert news.state is SubscriptionState.PENDING
            with anyio.fail_after(LONG):
                await server.come_back()
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.publish("news", "hello")
                assert (await anext(aiter(news))).data == "hello"

    async def test_client_stream_still_works(self, server: Server) -> None:
        """Messages that are not publications still reach async for on the client."""
        async with Client(server.url, **channel_options()) as client:
            client.subscribe("news")
            with anyio.fail_after(LONG):
                await client.send(json.dumps({"type": "echo", "data": "mine"}))
                assert json.loads(await anext(aiter(client)))["data"] == "mine"

    async def test_refusal(self, server: Server) -> None:
        """A subscription the server refuses raises SubscriptionError."""
        async with Client(server.url, **channel_options()) as client:
            bad = client.subscribe("x" * 300)  # Over the server's name limit.
            with anyio.fail_after(LONG), pytest.raises(wsclient.SubscriptionError):
                await anext(aiter(bad))
        assert bad.state is SubscriptionState.FAILED

    async def test_application_request_ids_do_not_clash(self, server: Server) -> None:
        """The application's own numbered requests get their answers; ours stay ours."""
        async with Client(server.url, **channel_options()) as client:
            client.subscribe("a")
            with anyio.fail_after(LONG):
                await client.wait_connected()
                for request_id in (1, 2, 3):
                    publish = {"type": "publish", "channel": "b", "data": 0}
                    await client.send(json.dumps({**publish, "id": request_id}))
                b = client.subscribe("b")
                answers = [json.loads(await anext(aiter(client))) for _ in range(3)]
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                await server.publish("b", "hello")
                message = await anext(aiter(b))
        assert [(a["type"], a["id"]) for a in answers] == [
            ("ack", 1),
            ("ack", 2),
            ("ack", 3),
        ]
        assert message.position is not None  # type: ignore[union-attr]
        assert message.position.offset == 4  # type: ignore[union-attr]

    async def test_protocol_chosen_before_start(self, server: Server) -> None:
        """Subscribing before entering picks the reference protocol; after, it must
        have been chosen, since it decides how the connection is read."""
        early = Client(server.url, **fast_options())
        news = early.subscribe("news")
        async with early:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.publish("news", 1)
                assert (await anext(aiter(news))).data == 1
        async with Client(server.url, **fast_options()) as late:
            with pytest.raises(RuntimeError, match="protocol="):
                late.subscribe("news")

    async def test_bad_arguments(self, server: Server) -> None:
        """Bad arguments to subscribe() raise with a message that says what to do."""
        client = Client(server.url, **channel_options())
        with pytest.raises(TypeError, match="non-empty str"):
            client.subscribe("")
        with pytest.raises(ValueError, match="overflow must be"):
            client.subscribe("a", overflow="explode")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_queue"):
            client.subscribe("a", max_queue=0)
        client.subscribe("a")
        with pytest.raises(ValueError, match="already subscribed"):
            client.subscribe("a")


class TestReconnection:
    async def test_resume_replays_what_was_missed(self, server: Server) -> None:
        """After a reconnection, publications made meanwhile arrive once, in order."""
        recorder = Recorder()
        async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
            news = c.subscribe("news")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 5)
                assert await take(news, 2) == [1, 2]
                await server.go_down()
                await publish_many(server, "news", 6, 10)
                await server.come_back()
                await recorder.wait_for("reconnect")
                await publish_many(server, "news", 11, 12)
                assert await take(news, 10) == list(range(3, 13))
        assert news.tracker.duplicates >= 0
        assert server.counters.duplicate_subscribes == 0

    async def test_on_reconnect_sees_resubscribed_client(self, server: Server) -> None:
        """on_reconnect fires after the subscriptions were restored."""
        seen: list[int] = []
        async with Client(server.url, **channel_options()) as client:
            client.subscribe("news")
            back = anyio.Event()

            @client.on("reconnect")
            def check(event: wsclient.ReconnectEvent) -> None:
                seen.append(server.channel_info("news").subscribers)
                back.set()

            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.abort_all()
                await back.wait()
        assert seen == [1]

    async def test_unsubscribed_channel_is_never_resubscribed(
        self, server: Server
    ) -> None:
        """After unsubscribe, reconnections do not subscribe the channel again."""
        recorder = Recorder()
        async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
            kept, dropped = c.subscribe("kept"), c.subscribe("dropped")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                await dropped.unsubscribe()
                await server.wait_for(lambda n: n.unsubscribes == 1)
                await server.abort_all()
                await recorder.wait_for("reconnect")
                await server.wait_for(lambda n: n.subscribes == 3)
            assert server.channel_info("dropped").subscribers == 0
            assert server.channel_info("kept").subscribers == 1
            assert kept.state is SubscriptionState.ACTIVE
        assert [m async for m in dropped] == []


class TestGaps:
    async def test_truncated_history_raises_messages_lost(self, server: Server) -> None:
        """Publications gone from history raise MessagesLost with their range."""
        server.configure_history(size=3)
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 2)
                assert await take(news, 2) == [1, 2]
                await server.go_down()
                await publish_many(server, "news", 3, 10)  # History keeps 8..10.
                await server.come_back()
                with pytest.raises(wsclient.MessagesLost) as lost:
                    await anext(aiter(news))
                assert await take(news, 3) == [8, 9, 10]  # Iteration goes on.
        assert (lost.value.first, lost.value.last) == (3, 7)
        assert lost.value.gap.reason is GapReason.TRUNCATED
        assert news.gaps == 1

    async def test_lost_history_is_an_unknown_gap_marker(self, server: Server) -> None:
        """A server that lost its history yields a Gap marker with an open range."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news", gaps="marker")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 2)
                assert await take(news, 2) == [1, 2]
                await server.go_down()
                server.lose_history()
                await server.come_back()
                await server.wait_for(lambda n: n.subscribes == 2)
                await server.publish("news", "after")
                gap, after = await take(news, 2)
        assert isinstance(gap, Gap)
        assert (gap.reason, gap.first, gap.last) == (GapReason.EPOCH, 3, None)
        assert after == "after"


class TestOverflow:
    async def test_drop_oldest(self, server: Server) -> None:
        """With drop_oldest, a full queue drops the oldest and counts it."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news", max_queue=3, overflow="drop_oldest")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 10)
                await client.send(json.dumps({"type": "echo", "data": "sync"}))
                await anext(aiter(client))  # All ten publications were routed.
                assert await take(news, 3) == [8, 9, 10]
        assert news.dropped == 7

    async def test_fail(self, server: Server) -> None:
        """With fail, a full queue fails the subscription."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news", max_queue=3, overflow="fail")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 4)
                await client.send(json.dumps({"type": "echo", "data": "sync"}))
                await anext(aiter(client))  # All four publications were routed.
                with pytest.raises(wsclient.SubscriptionError, match="overflowed"):
                    await take(news, 4)

    async def test_block_delivers_everything(self, server: Server) -> None:
        """With block, a slow subscriber gets everything, in order."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news", max_queue=2)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish_many, server, "news", 1, 200)
                    assert await take(news, 200) == list(range(1, 201))


class TestWakeUps:
    """Readers are woken for every message, whatever the batching.

    On trio the router defers wake-ups while more messages are buffered
    (Router._read): the last ones of a burst must still reach a reader that
    waits, with nothing arriving after them.
    """

    async def test_burst_then_silence(self, server: Server) -> None:
        """A burst that is no multiple of the wake batch is read to its end."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publish_many, server, "news", 1, 150)
                    assert await take(news, 150) == list(range(1, 151))

    async def test_two_readers_and_the_inbox(self, server: Server) -> None:
        """Interleaved channels and plain messages: every reader gets its own."""
        async with Client(server.url, **channel_options()) as client:
            a, b = client.subscribe("a"), client.subscribe("b")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 2)

                async def burst() -> None:
                    for n in range(1, 101):
                        await server.publish("a", n)
                        await server.publish("b", -n)
                        if n % 10 == 0:
                            await server.broadcast(f"plain {n}")

                async def plain() -> list[object]:
                    return [await anext(aiter(client)) for _ in range(10)]

                results: dict[str, list[object]] = {}

                async def collect(name: str, reader: Any) -> None:
                    results[name] = await reader

                async with anyio.create_task_group() as tg:
                    tg.start_soon(collect, "a", take(a, 100))
                    tg.start_soon(collect, "b", take(b, 100))
                    tg.start_soon(collect, "plain", plain())
                    tg.start_soon(burst)
        assert results["a"] == list(range(1, 101))
        assert results["b"] == [-n for n in range(1, 101)]
        assert results["plain"] == [f"plain {n}" for n in range(10, 101, 10)]

    async def test_message_before_a_partial_one_is_not_held(self) -> None:
        """A complete message buffered before the first fragment of the next
        is delivered without waiting for the rest of that one."""
        got_first = anyio.Event()

        async def behaviour(peer: Peer) -> None:
            await peer.handshake()
            first = raw_frame(Opcode.TEXT, b"hello")
            partial = raw_frame(Opcode.TEXT, b"par", fin=False)
            await peer.send_raw(first + partial)  # In one write.
            with anyio.fail_after(LONG):
                await got_first.wait()  # Never, if the client held "hello".
            await peer.send_raw(raw_frame(Opcode.CONT, b"tial"))
            await peer.serve()

        async with hostile_server(behaviour) as server:
            async with Client(server.url, **channel_options()) as client:
                with anyio.fail_after(LONG):
                    assert await anext(aiter(client)) == "hello"
                    got_first.set()
                    assert await anext(aiter(client)) == "partial"


class TestMarkers:
    async def test_reconnected_and_recovered_in_the_stream(
        self, server: Server
    ) -> None:
        """markers=True puts reconnected and recovered around the replay."""
        recorder = Recorder()
        async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
            news = c.subscribe("news", markers=True)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.publish("news", 1)
                first = await anext(aiter(news))
                await server.go_down()
                await publish_many(server, "news", 2, 3)
                await server.come_back()
                await recorder.wait_for("reconnect")
                items = [await anext(aiter(news)) for _ in range(4)]
        assert isinstance(first, wsclient.Message)
        kinds = [
            item.kind if isinstance(item, wsclient.Marker) else item.data  # type: ignore[union-attr]
            for item in items
        ]
        assert kinds == ["reconnected", 2, 3, "recovered"]

    async def test_stale_channel_is_renewed(self, server: Server) -> None:
        """A channel silent for stale_after is renewed, counted and marked."""
        async with Client(server.url, **channel_options()) as client:
            quiet = client.subscribe("quiet", stale_after=50 * T, markers=True)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscribes >= 2)  # Renewed once.
                marker = await anext(aiter(quiet))
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.publish("quiet", "still here")
                message = await anext(aiter(quiet))
        assert isinstance(marker, wsclient.Marker)
        assert marker.kind == "stale"
        assert quiet.stale_renewals >= 1
        assert message.data == "still here"  # type: ignore[union-attr]
        assert server.counters.duplicate_subscribes == 0


class TestSlowConsumer:
    async def test_one_blocking_subscriber_holds_the_others(
        self, server: Server
    ) -> None:
        """With overflow="block", a full queue pauses every subscription (documented);
        with drop_oldest on the slow one, the others keep flowing."""
        async with Client(server.url, **channel_options()) as client:
            slow = client.subscribe("slow", max_queue=2, overflow="drop_oldest")
            fast = client.subscribe("fast")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                for n in range(1, 51):
                    await server.publish("slow", n)
                    await server.publish("fast", n)
                assert await take(fast, 50) == list(range(1, 51))
                assert await take(slow, 2) == [49, 50]
        assert slow.dropped == 48

    async def test_blocking_subscriber_stalls_the_others(self, server: Server) -> None:
        """With overflow="block", the others wait until the slow one reads."""
        async with Client(server.url, **channel_options()) as client:
            slow = client.subscribe("slow", max_queue=2)
            fast = client.subscribe("fast")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                for n in (1, 2, 3):
                    await server.publish("slow", n)  # The third fills the queue.
                await server.publish("fast", "behind")
                with anyio.move_on_after(50 * T):  # Time passing is the point.
                    await anext(aiter(fast))
                    pytest.fail("fast should wait behind the full slow queue")
                assert await take(slow, 3) == [1, 2, 3]
                assert await take(fast, 1) == ["behind"]

    async def test_blocked_subscriber_is_not_a_dead_link(self, server: Server) -> None:
        """A subscriber that stops reading past ping_interval + ping_timeout keeps
        its connection: the heartbeat sees the backpressure, not a dead server."""
        recorder = Recorder()
        options = channel_options(
            ping_interval=20 * T,
            ping_timeout=50 * T,
            max_queue=4,
            **recorder.callbacks(),
        )
        count = 500
        async with Client(server.url, **options) as client:
            news = client.subscribe("news", max_queue=4)
            with anyio.fail_after(LONG * 2):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                async with anyio.create_task_group() as tg:

                    async def publish() -> None:
                        for n in range(1, count + 1):
                            await server.publish("news", {"n": n, "pad": "x" * 2000})

                    tg.start_soon(publish)
                    await anyio.sleep(300 * T)  # The subscriber does not read.
                    received = [
                        m.data["n"]
                        for m in [await anext(aiter(news)) for _ in range(count)]
                    ]  # type: ignore[union-attr]
        assert received == list(range(1, count + 1))
        assert client.stats.connects == 1
        assert client.stats.heartbeat_timeouts == 0


class TestReviewRegressions:
    async def test_blocked_message_is_replayed_after_reconnect(
        self, server: Server
    ) -> None:
        """A publication the reader held when the connection was replaced is
        replayed by the resume, not lost."""
        recorder = Recorder()
        options = channel_options(close_timeout=50 * T, **recorder.callbacks())
        async with Client(server.url, **options) as client:
            news = client.subscribe("news", max_queue=1)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 5)
                await server.wait_for(lambda n: n.messages_sent >= 5)
                await server.close_all(1012)
                await recorder.wait_for("reconnect")
                assert await take(news, 5) == [1, 2, 3, 4, 5]

    async def test_overflowed_subscription_can_be_replaced(
        self, server: Server
    ) -> None:
        """A subscription failed by overflow stops its flow and can be made again."""
        async with Client(server.url, **channel_options()) as client:
            news = client.subscribe("news", max_queue=1, overflow="fail")
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "news", 1, 3)
                await client.send(json.dumps({"type": "echo", "data": "sync"}))
                await anext(aiter(client))  # All three publications were routed.
                with pytest.raises(wsclient.SubscriptionError):
                    await take(news, 3)
                await server.wait_for(lambda n: n.subscriptions_open == 0)
                again = client.subscribe("news")
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await server.publish("news", "again")
                assert await take(again, 1) == ["again"]

    async def test_subscribe_while_connection_closes(self, server: Server) -> None:
        """Subscribing while a blocked reader hands over a closed connection does
        not stop the client."""
        recorder = Recorder()
        options = channel_options(close_timeout=100 * T, **recorder.callbacks())
        async with Client(server.url, **options) as client:
            first = client.subscribe("a", max_queue=1)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 1)
                await publish_many(server, "a", 1, 3)
                await server.wait_for(lambda n: n.messages_sent >= 3)
                await server.abort_all()
                second = client.subscribe("b")  # Sent on a closed connection.
                assert await take(first, 3) == [1, 2, 3]
                await recorder.wait_for("reconnect")
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                await server.publish("b", "fine")
                assert await take(second, 1) == ["fine"]
            assert client.state is wsclient.ClientState.CONNECTED

    async def test_stale_watchdog_ignores_a_blocked_reader(
        self, server: Server
    ) -> None:
        """A reader blocked on a full queue does not make channels look stale."""
        async with Client(server.url, **channel_options()) as client:
            slow = client.subscribe("slow", max_queue=1, stale_after=30 * T)
            busy = client.subscribe("busy", stale_after=30 * T)
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.subscriptions_open == 2)
                await publish_many(server, "slow", 1, 3)
                await anyio.sleep(100 * T)  # Blocked for several stale periods.
                assert await take(slow, 3) == [1, 2, 3]
        assert slow.stale_renewals == 0
        assert busy.stale_renewals <= 1  # Quiet after the reader unblocked, at most.
