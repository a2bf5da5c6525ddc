"""Tests for the reference server's channels: offsets, history, resume, backpressure.

Network tests use raw websockets clients on both backends, as test_server.py
does; the history rules that depend on time are checked on the I/O-free
registry with explicit clock values, so that no test sleeps.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import sniffio

from tests.raw import connect, no_server_errors  # noqa: F401 - a fixture
from tests.utils import LONG
from wsclient.server import ChannelInfo, Server
from wsclient.server._channels import (
    DEDUP_WINDOW,
    AlreadySubscribedError,
    ChannelRegistry,
    Position,
)
from wsclient.server._connection import MAILBOX_SIZE, OUTBOX_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio


# Helpers.


async def send(ws: Any, **message: Any) -> None:
    """Send one JSON command."""
    await ws.send(json.dumps(message))


async def recv(ws: Any) -> Any:
    """Receive one JSON message."""
    return json.loads(await ws.recv())


async def subscribe(ws: Any, channel: str, **fields: Any) -> Any:
    """Subscribe and return the answer (the replay, if any, follows it)."""
    await send(ws, type="subscribe", channel=channel, **fields)
    return await recv(ws)


async def recv_pubs(ws: Any, count: int) -> list[Any]:
    """Receive ``count`` messages and check that they are all publications."""
    messages = [await recv(ws) for _ in range(count)]
    assert [m["type"] for m in messages] == ["pub"] * count, messages
    return messages


async def barrier(ws: Any) -> None:
    """Check that nothing is queued for ``ws``: the next message is our pong.

    Replies go out in command order, so anything the server had queued for
    this connection before the ping would arrive first and fail the check.
    """
    await send(ws, type="ping", id="barrier")
    assert await recv(ws) == {"type": "pong", "id": "barrier"}


def since(epoch: str, offset: Any) -> dict[str, Any]:
    """A resume position, as the client sends it."""
    return {"epoch": epoch, "offset": offset}


# Resume: where a subscribe with `since` lands, one row per boundary.
#
# Every row starts from channel "c" with history_size=5 and offsets 1..8
# published, so the history holds 4..8 (FIRST=4, CURRENT=8), then runs
# `setup`, then subscribes with `since`. The last columns are the expected
# answer fields and the offsets replayed.


def _none(server: Server) -> None:
    pass


def _expire(server: Server) -> None:
    assert server.expire_history() == 5


def _lose(server: Server) -> None:
    server.lose_history()


E = "<epoch>"  # replaced by the channel's epoch before `setup` runs

RESUME_CASES = [
    # (id, setup, since, answer fields, replayed offsets)
    ("no-since", _none, None, {"recovered": None}, []),
    ("in-history", _none, (E, 5), {"recovered": True}, [6, 7, 8]),
    ("oldest-boundary", _none, (E, 3), {"recovered": True}, [4, 5, 6, 7, 8]),
    (
        "truncated-by-one",
        _none,
        (E, 2),
        {"recovered": False, "reason": "truncated", "missing": [3, 3]},
        [4, 5, 6, 7, 8],
    ),
    (
        "truncated-from-zero",
        _none,
        (E, 0),
        {"recovered": False, "reason": "truncated", "missing": [1, 3]},
        [4, 5, 6, 7, 8],
    ),
    ("same-position", _none, (E, 8), {"recovered": True}, []),
    ("future", _none, (E, 9), {"recovered": False, "reason": "future"}, []),
    ("far-future", _none, (E, 2**53), {"recovered": False, "reason": "future"}, []),
    ("other-epoch", _none, ("other", 5), {"recovered": False, "reason": "epoch"}, []),
    (
        "expired",
        _expire,
        (E, 5),
        {"recovered": False, "reason": "truncated", "missing": [6, 8]},
        [],
    ),
    ("expired-same-position", _expire, (E, 8), {"recovered": True}, []),
    (
        "lost-history",
        _lose,
        (E, 0),
        {"recovered": False, "reason": "epoch", "offset": 0},
        [],
    ),
]


@pytest.mark.parametrize(
    ("setup", "position", "fields", "replayed"),
    [pytest.param(*case[1:], id=case[0]) for case in RESUME_CASES],
)
async def test_resume(
    server: Server,
    setup: Callable[[Server], None],
    position: tuple[str, int] | None,
    fields: dict[str, Any],
    replayed: list[int],
) -> None:
    """A subscribe with `since` answers and replays by the table; live ones follow."""
    server.configure_history(size=5)
    for i in range(1, 9):
        assert await server.publish("c", f"m{i}") == i
    epoch = server.channel_info("c").epoch
    setup(server)
    extra = {}
    if position is not None:
        resume_epoch = epoch if position[0] == E else position[0]
        extra["since"] = since(resume_epoch, position[1])
    current = server.channel_info("c")
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            answer = await subscribe(ws, "c", id=7, **extra)
            assert answer == {
                "type": "subscribed",
                "channel": "c",
                "id": 7,
                "epoch": current.epoch,
                "offset": current.offset,
                **fields,
            }
            pubs = await recv_pubs(ws, len(replayed))
            assert [p["offset"] for p in pubs] == replayed
            assert [p["data"] for p in pubs] == [f"m{i}" for i in replayed]
            assert {p["epoch"] for p in pubs} <= {current.epoch}
            # Then live publications, right behind the replay.
            live = await server.publish("c", "live")
            assert live == current.offset + 1
            (pub,) = await recv_pubs(ws, 1)
            assert pub == {
                "type": "pub",
                "channel": "c",
                "epoch": current.epoch,
                "offset": live,
                "data": "live",
            }
            await barrier(ws)


async def test_resume_empty_channel(server: Server) -> None:
    """On an empty channel, offset 0 in its epoch is recovered; 1 is the future."""
    epoch = server.channel_info("empty").epoch
    async with connect(server.url) as ws1, connect(server.url) as ws2:
        with anyio.fail_after(LONG):
            answer = await subscribe(ws1, "empty", since=since(epoch, 0))
            assert answer == {
                "type": "subscribed",
                "channel": "empty",
                "epoch": epoch,
                "offset": 0,
                "recovered": True,
            }
            answer = await subscribe(ws2, "empty", since=since(epoch, 1))
            assert (answer["recovered"], answer["reason"]) == (False, "future")
            await barrier(ws1)
            await barrier(ws2)


async def test_resume_after_lose_history_with_plausible_offset(server: Server) -> None:
    """After lose_history, an old position whose offset exists again gets "epoch"."""
    for i in range(5):
        await server.publish("c", i)
    old = server.channel_info("c").epoch
    server.lose_history()
    for i in range(5):
        await server.publish("c", i)
    info = server.channel_info("c")
    assert info.epoch != old
    assert (info.offset, info.first_available) == (5, 1)
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            answer = await subscribe(ws, "c", since=since(old, 3))
            assert answer == {
                "type": "subscribed",
                "channel": "c",
                "epoch": info.epoch,
                "offset": 5,
                "recovered": False,
                "reason": "epoch",
            }
            await barrier(ws)  # and nothing replayed


MALFORMED_SUBSCRIBES = [
    ("since-null", {"channel": "c", "since": None}, "since must be an object"),
    ("since-list", {"channel": "c", "since": [1, 2]}, "since must be an object"),
    ("since-str", {"channel": "c", "since": "e:1"}, "since must be an object"),
    ("since-int", {"channel": "c", "since": 5}, "since must be an object"),
    ("no-epoch", {"channel": "c", "since": {"offset": 1}}, "since.epoch"),
    ("epoch-int", {"channel": "c", "since": {"epoch": 1, "offset": 1}}, "since.epoch"),
    ("no-offset", {"channel": "c", "since": {"epoch": "e"}}, "since.offset"),
    ("offset-neg", {"channel": "c", "since": since("e", -1)}, "since.offset"),
    ("offset-float", {"channel": "c", "since": since("e", 1.0)}, "since.offset"),
    ("offset-bool", {"channel": "c", "since": since("e", True)}, "since.offset"),
    ("offset-str", {"channel": "c", "since": since("e", "1")}, "since.offset"),
    ("offset-huge", {"channel": "c", "since": since("e", 2**53 + 1)}, "since.offset"),
    ("offset-null", {"channel": "c", "since": since("e", None)}, "since.offset"),
    ("no-channel", {}, "channel must be"),
    ("channel-empty", {"channel": ""}, "channel must be"),
    ("channel-int", {"channel": 5}, "channel must be"),
    ("channel-long", {"channel": "x" * 201}, "at most 200"),
    ("id-list", {"channel": "c", "id": [1]}, "id must be a JSON scalar"),
]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED_SUBSCRIBES],
)
async def test_malformed_subscribe_fails_closed(
    server: Server, fields: dict[str, Any], problem: str
) -> None:
    """A malformed subscribe gets subscribe_error and subscribes to nothing."""
    tag = {} if "id" in fields else {"id": "s1"}
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await send(ws, type="subscribe", **fields, **tag)
            answer = await recv(ws)
            assert answer["type"] == "subscribe_error"
            assert problem in answer["error"]
            assert answer.get("id") == tag.get("id")
            if "channel" in fields:
                assert answer["channel"] == fields["channel"]
            await server.publish("c", "not for you")
            await barrier(ws)
            assert server.channel_info("c").subscribers == 0
            # Not subscribed, so subscribing now is not a duplicate.
            answer = await subscribe(ws, "c", id="s2")
            assert (answer["type"], answer["id"]) == ("subscribed", "s2")
    counters = server.counters
    assert (counters.subscribes, counters.duplicate_subscribes) == (1, 0)


# Publish, ack, offsets, de-duplication.


async def test_publish_ack_and_offsets(server: Server) -> None:
    """Publishes get consecutive offsets; only those with an id are acked."""
    async with connect(server.url) as pub, connect(server.url) as sub:
        with anyio.fail_after(LONG):
            answer = await subscribe(sub, "c")
            epoch = answer["epoch"]
            await send(pub, type="publish", channel="c", data={"a": 1}, id="p1")
            assert await recv(pub) == {
                "type": "ack",
                "channel": "c",
                "id": "p1",
                "offset": 1,
            }
            await send(pub, type="publish", channel="c", data=None)  # no ack
            await send(pub, type="publish", channel="c", data=[2], id=3)
            assert await recv(pub) == {
                "type": "ack",
                "channel": "c",
                "id": 3,
                "offset": 3,
            }
            await barrier(pub)
            pubs = await recv_pubs(sub, 3)
            assert pubs == [
                {"type": "pub", "channel": "c", "epoch": epoch, "offset": i, "data": d}
                for i, d in ((1, {"a": 1}), (2, None), (3, [2]))
            ]
            assert await server.publish("c", "srv") == 4
            assert (await recv(sub))["offset"] == 4
    info = server.channel_info("c")
    assert info == ChannelInfo(epoch, 4, 1, 0)
    assert server.counters.publications == 4


async def test_publisher_gets_its_own_publication_before_the_ack(
    server: Server,
) -> None:
    """A subscribed publisher gets the pub first, then the ack."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "c")
            await send(ws, type="publish", channel="c", data=1, id=1)
            assert (await recv(ws))["type"] == "pub"
            assert (await recv(ws))["type"] == "ack"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"channel": "c"}, "publish needs data", id="no-data"),
        pytest.param({"channel": "", "data": 1}, "channel must be", id="channel"),
        pytest.param({"data": 1}, "channel must be", id="no-channel"),
        pytest.param({"channel": "c", "data": 1, "msg_id": 5}, "msg_id", id="msg-int"),
        pytest.param({"channel": "c", "data": 1, "msg_id": ""}, "msg_id", id="msg-0"),
        pytest.param(
            {"channel": "c", "data": 1, "msg_id": "m" * 201}, "msg_id", id="msg-long"
        ),
    ],
)
async def test_malformed_publish(
    server: Server, fields: dict[str, Any], problem: str
) -> None:
    """A malformed publish gets an error with its id and publishes nothing."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await send(ws, type="publish", id=9, **fields)
            answer = await recv(ws)
            assert answer["type"] == "error"
            assert answer["id"] == 9
            assert problem in answer["error"]
            await send(ws, type="publish", channel="c", data=1, id={"x": 1})
            answer = await recv(ws)
            assert answer["type"] == "error"
            assert "id" not in answer
    assert server.counters.publications == 0


async def test_msg_id_deduplication(server: Server) -> None:
    """A repeated msg_id is acked with the original offset and published once."""
    async with connect(server.url) as pub, connect(server.url) as sub:
        with anyio.fail_after(LONG):
            await subscribe(sub, "c")
            for attempt in (1, 2):
                await send(
                    pub, type="publish", channel="c", data="a", msg_id="m1", id=attempt
                )
            assert await recv(pub) == {
                "type": "ack",
                "channel": "c",
                "id": 1,
                "offset": 1,
            }
            assert await recv(pub) == {
                "type": "ack",
                "channel": "c",
                "id": 2,
                "offset": 1,
                "duplicate": True,
            }
            # Per channel: the same msg_id on another channel is new there.
            await send(pub, type="publish", channel="d", data="a", msg_id="m1", id=3)
            assert await recv(pub) == {
                "type": "ack",
                "channel": "d",
                "id": 3,
                "offset": 1,
            }
            # The server-side publish shares the same memory.
            assert await server.publish("c", "b", msg_id="m2") == 2
            assert await server.publish("c", "b", msg_id="m2") == 2
            await send(pub, type="publish", channel="c", data="b", msg_id="m2", id=4)
            assert (await recv(pub))["duplicate"] is True
            pubs = await recv_pubs(sub, 2)
            assert [(p["offset"], p["data"]) for p in pubs] == [(1, "a"), (2, "b")]
            await barrier(sub)
    counters = server.counters
    assert (counters.publications, counters.duplicate_publications) == (3, 3)


# Subscriptions.


async def test_unsubscribe_stops_delivery(server: Server) -> None:
    """After unsubscribed, no publication comes; a second unsubscribe is an error."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "c")
            await server.publish("c", 1)
            await recv_pubs(ws, 1)
            await send(ws, type="unsubscribe", channel="c", id="u1")
            assert await recv(ws) == {
                "type": "unsubscribed",
                "channel": "c",
                "id": "u1",
            }
            await server.publish("c", 2)
            await barrier(ws)
            await send(ws, type="unsubscribe", channel="c", id="u2")
            assert await recv(ws) == {
                "type": "unsubscribe_error",
                "channel": "c",
                "id": "u2",
                "error": "not subscribed",
            }
            await send(ws, type="unsubscribe", channel=7)
            answer = await recv(ws)
            assert (answer["type"], answer["channel"]) == ("unsubscribe_error", 7)
    counters = server.counters
    assert (counters.subscribes, counters.unsubscribes) == (1, 1)
    assert counters.subscriptions_open == 0


async def test_already_subscribed_is_refused_and_counted(server: Server) -> None:
    """A second subscribe to a held channel is refused; delivery stays single."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "c")
            answer = await subscribe(ws, "c", id=2, since=since("x", 0))
            assert answer == {
                "type": "subscribe_error",
                "channel": "c",
                "id": 2,
                "error": "already subscribed",
            }
            await server.publish("c", 1)
            await recv_pubs(ws, 1)
            await barrier(ws)
            assert server.channel_info("c").subscribers == 1
    counters = server.counters
    assert counters.duplicate_subscribes == 1
    assert counters.subscribes == 1
    assert counters.max_subscriptions_per_channel == 1


async def test_replies_keep_command_order(server: Server) -> None:
    """The answer and the whole replay come before the reply to the next command."""
    for i in range(50):
        await server.publish("c", i)
    epoch = server.channel_info("c").epoch
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await send(ws, type="subscribe", channel="c", since=since(epoch, 0))
            await send(ws, type="echo", data="after")
            assert (await recv(ws))["type"] == "subscribed"
            pubs = await recv_pubs(ws, 50)
            assert [p["offset"] for p in pubs] == list(range(1, 51))
            assert await recv(ws) == {"type": "echo", "data": "after"}


async def test_replay_does_not_block_pings(server: Server) -> None:
    """The server answers pings while a long replay is still going out."""
    server.configure_history(size=1000)
    for _ in range(1000):
        await server.publish("c", "x" * 10_000)
    epoch = server.channel_info("c").epoch
    with anyio.fail_after(LONG):
        # max_queue=None: the client reads eagerly, so it sees the pong as soon
        # as it is on the wire rather than after the messages before it.
        async with connect(server.url, max_queue=None) as ws:
            await send(ws, type="subscribe", channel="c", since=since(epoch, 0))
            waiter = await ws.ping()
            if sniffio.current_async_library() == "trio":
                await waiter.wait()
            else:
                await waiter
            assert server.counters.messages_sent < 1000
            assert server.counters.pings_received == 1


# Publications racing a resume.


async def publish_from_client(url: str, count: int) -> None:
    """Publish 1..count on "race" from a client, as fast as it can send."""
    async with connect(url) as ws:
        for i in range(1, count + 1):
            await send(ws, type="publish", channel="race", data=i)
        await barrier(ws)  # every publish handled before we close


async def publish_from_server(server: Server, count: int) -> None:
    """Publish 1..count on "race" with Server.publish, back to back."""
    for i in range(1, count + 1):
        assert await server.publish("race", i) == i


RESUMES = [(1000, 500), (1500, 1499), (2000, 1000)]
"""(publications seen before subscribing, offset resumed from): a long and a
short replay racing live publications, and a resume after the last one."""


@pytest.mark.parametrize("publisher", ["server", "client"])
async def test_publications_racing_a_resume(server: Server, publisher: str) -> None:
    """While 2,000 publications race resumes from K, each gets exactly K+1..2000."""
    count = 2000
    server.configure_history(size=count)  # every resume is recoverable
    epoch = server.channel_info("race").epoch
    live: list[int] = []
    resumed: dict[tuple[int, int], list[int]] = {}
    answers: dict[tuple[int, int], Any] = {}

    async def live_subscriber(*, task_status: Any) -> None:
        # Subscribed from the start: it must see every publication too.
        async with connect(server.url) as ws:
            await subscribe(ws, "race")
            task_status.started()
            pubs = await recv_pubs(ws, count)
            live.extend(p["offset"] for p in pubs)

    async def resuming_subscriber(seen: int, resume_at: int) -> None:
        async with connect(server.url) as ws:
            await server.wait_for(lambda c: c.publications >= seen)
            answer = await subscribe(ws, "race", since=since(epoch, resume_at))
            answers[seen, resume_at] = answer
            pubs = await recv_pubs(ws, count - resume_at)
            resumed[seen, resume_at] = [p["offset"] for p in pubs]
            assert [p["data"] for p in pubs] == resumed[seen, resume_at]
            await barrier(ws)  # and nothing after 2000

    # About 7,000 messages in all: allow more than LONG under asyncio's debug mode.
    with anyio.fail_after(3 * LONG):
        async with anyio.create_task_group() as tg:
            await tg.start(live_subscriber)
            for seen, resume_at in RESUMES:
                tg.start_soon(resuming_subscriber, seen, resume_at)
            if publisher == "server":
                await publish_from_server(server, count)
            else:
                await publish_from_client(server.url, count)
    assert live == list(range(1, count + 1))
    for seen, resume_at in RESUMES:
        assert resumed[seen, resume_at] == list(range(resume_at + 1, count + 1))
        assert answers[seen, resume_at]["recovered"] is True
        assert seen <= answers[seen, resume_at]["offset"] <= count


# Server restarts.


async def test_go_down_and_come_back_keep_history(server: Server) -> None:
    """Channels, epochs and history survive go_down and come_back."""
    for i in range(1, 6):
        await server.publish("c", i)
    before = server.channel_info("c")
    with anyio.fail_after(LONG):
        await server.go_down()
        await server.come_back()
        assert server.channel_info("c") == before
        async with connect(server.url) as ws:
            answer = await subscribe(ws, "c", since=since(before.epoch, 2))
            assert (answer["recovered"], answer["epoch"]) == (True, before.epoch)
            pubs = await recv_pubs(ws, 3)
            assert [p["data"] for p in pubs] == [3, 4, 5]


async def test_go_down_drops_subscriptions(server: Server) -> None:
    """Connections dropped by go_down lose their subscriptions."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "c")
            await server.go_down()
            await server.wait_for(lambda c: c.subscriptions_open == 0)
            assert server.channel_info("c").subscribers == 0
            await server.come_back()
    assert server.counters.unsubscribes == 0


async def test_lose_history(server: Server) -> None:
    """lose_history: new epoch, offsets from 0, msg_ids forgotten; subscribers stay."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            old = (await subscribe(ws, "c"))["epoch"]
            assert await server.publish("c", "a", msg_id="m") == 1
            assert await server.publish("c", "b") == 2
            server.lose_history()
            info = server.channel_info("c")
            assert info.epoch != old
            assert (info.offset, info.first_available, info.subscribers) == (0, 1, 1)
            assert await server.publish("c", "a", msg_id="m") == 1  # not a duplicate
            pubs = await recv_pubs(ws, 3)
            assert [(p["epoch"], p["offset"]) for p in pubs] == [
                (old, 1),
                (old, 2),
                (info.epoch, 1),
            ]


# Backpressure.


async def test_slow_subscriber_holds_publishers_back(server: Server) -> None:
    """A subscriber that does not read makes publishers wait; nothing is lost.

    The server is stalled, so the subscriber's queues fill and stay full:
    publishing must stop after a bounded number of publications, and resume
    in order once the subscriber reads again.
    """
    count = 1000
    done = anyio.Event()

    async def publisher() -> None:
        await publish_from_server(server, count)
        done.set()

    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "race")
            server.stall(True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(publisher)
                await anyio.wait_all_tasks_blocked()
                held = server.counters.publications
                # A full mailbox, a full outbox, one message in the pump's
                # hands, a write batch (at most a full outbox plus one), and
                # the publisher's last one: far below `count`.
                assert MAILBOX_SIZE <= held <= MAILBOX_SIZE + 2 * OUTBOX_SIZE + 3
                assert not done.is_set()
                await anyio.wait_all_tasks_blocked()
                assert server.counters.publications == held
                server.stall(False)
                pubs = await recv_pubs(ws, count)
            assert [p["data"] for p in pubs] == list(range(1, count + 1))


async def test_cancelled_publish_publishes_nothing(server: Server) -> None:
    """Canceling a publish that waits for room publishes nothing."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "c")
            server.stall(True)
            offsets: list[int] = []

            async def publish_forever() -> None:
                while True:
                    offsets.append(await server.publish("c", len(offsets) + 1))

            async with anyio.create_task_group() as tg:
                tg.start_soon(publish_forever)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()  # while it waits for room
            held = server.counters.publications
            assert offsets == list(range(1, held + 1))
            server.stall(False)
            assert await server.publish("c", held + 1) == held + 1
            pubs = await recv_pubs(ws, held + 1)
            assert [p["offset"] for p in pubs] == list(range(1, held + 2))


async def test_dropping_a_slow_subscriber_releases_publishers(server: Server) -> None:
    """A publisher waiting for a subscriber is released when that one is dropped."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await subscribe(ws, "race")
            server.stall(True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(publish_from_server, server, 1000)
                await anyio.wait_all_tasks_blocked()
                assert server.counters.publications < 1000
                await server.abort_all()
            assert server.counters.publications == 1000
            server.stall(False)


# Counters and history settings.


async def test_subscription_counters(server: Server) -> None:
    """Counters follow subscribes, unsubscribes and closed connections."""
    async with connect(server.url) as ws1:
        with anyio.fail_after(LONG):
            async with connect(server.url) as ws2:
                await subscribe(ws1, "a")
                await subscribe(ws1, "b")
                await subscribe(ws2, "a")
                assert server.channel_info("a").subscribers == 2
                counters = server.counters
                assert (counters.subscribes, counters.subscriptions_open) == (3, 3)
                await send(ws1, type="unsubscribe", channel="b")
                await recv(ws1)
                assert server.counters.subscriptions_open == 2
            await server.wait_for(lambda c: c.subscriptions_open == 1)
    with anyio.fail_after(LONG):
        counters = await server.wait_for(lambda c: c.subscriptions_open == 0)
    assert counters.subscribes == 3
    assert counters.unsubscribes == 1
    assert counters.duplicate_subscribes == 0
    assert counters.max_subscriptions_per_channel == 1


async def test_configure_history_truncates_at_once(server: Server) -> None:
    """A smaller history size applies to existing channels at once."""
    for i in range(10):
        await server.publish("c", i)
    server.configure_history(size=3)
    assert server.channel_info("c").first_available == 8
    server.configure_history(size=0)
    info = server.channel_info("c")
    assert (info.offset, info.first_available) == (10, 11)
    assert server.expire_history() == 0


async def test_expire_history(server: Server) -> None:
    """expire_history drops entries by age; a huge age drops none."""
    for i in range(4):
        await server.publish("c", i)
    assert server.expire_history(older_than=3600) == 0
    assert server.expire_history() == 4
    info = server.channel_info("c")
    assert (info.offset, info.first_available) == (4, 5)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda s: s.configure_history(size=-1), ValueError, id="size<0"),
        pytest.param(lambda s: s.configure_history(size=1.5), TypeError, id="size-f"),
        pytest.param(lambda s: s.configure_history(size=True), TypeError, id="size-b"),
        pytest.param(lambda s: s.configure_history(ttl=0), ValueError, id="ttl-0"),
        pytest.param(lambda s: s.configure_history(ttl=-1), ValueError, id="ttl<0"),
        pytest.param(
            lambda s: s.configure_history(ttl=math.nan), ValueError, id="ttl-nan"
        ),
        pytest.param(lambda s: s.configure_history(ttl="1"), TypeError, id="ttl-str"),
        pytest.param(lambda s: s.expire_history(-1), ValueError, id="expire<0"),
        pytest.param(lambda s: s.expire_history(math.inf), ValueError, id="expire-inf"),
        pytest.param(lambda s: s.expire_history("0"), TypeError, id="expire-str"),
        pytest.param(lambda s: s.channel_info(""), ValueError, id="info-empty"),
        pytest.param(lambda s: s.channel_info("x" * 201), ValueError, id="info-long"),
        pytest.param(lambda s: s.channel_info(b"c"), TypeError, id="info-bytes"),
    ],
)
async def test_invalid_channel_arguments(
    server: Server, call: Callable[[Server], object], error: type[Exception]
) -> None:
    """Channel methods reject bad arguments with TypeError or ValueError."""
    with pytest.raises(error):
        call(server)


async def test_invalid_publish_arguments(server: Server) -> None:
    """Server.publish rejects a bad channel, msg_id or data, and publishes nothing."""
    with pytest.raises(ValueError, match="channel"):
        await server.publish("", 1)
    with pytest.raises(TypeError, match="channel"):
        await server.publish(1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="msg_id"):
        await server.publish("c", 1, msg_id=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="msg_id"):
        await server.publish("c", 1, msg_id="")
    with pytest.raises(TypeError, match="JSON"):
        await server.publish("c", object())
    assert server.counters.publications == 0
    server.configure_history(ttl=math.inf)  # no age limit is allowed


# The registry alone: time-dependent rules, with explicit clock values.


class _Sink:
    def __init__(self) -> None:
        self.posted: list[bytes] = []

    def post(self, payload: bytes) -> None:
        self.posted.append(payload)


def _offsets(frames: tuple[bytes, ...] | list[bytes]) -> list[int]:
    return [json.loads(frame)["offset"] for frame in frames]


def test_registry_ttl_expires_only_old_entries() -> None:
    """Entries older than the TTL are never replayed; younger ones are."""
    registry: ChannelRegistry[_Sink] = ChannelRegistry(history_ttl=10.0)
    for offset, now in ((1, 0.0), (2, 0.0), (3, 5.0), (4, 9.0)):
        assert registry.publish("c", "null", None, now).offset == offset
    epoch = registry.info("c", 9.0).epoch
    # At t=10, offsets 1 and 2 are exactly 10 s old: still there.
    assert registry.info("c", 10.0).first_available == 1
    # At t=10.5 they are older than the TTL: gone, even for a subscribe.
    resume = registry.subscribe(_Sink(), "c", Position(epoch, 0), 10.5)
    assert (resume.recovered, resume.reason, resume.missing) == (
        False,
        "truncated",
        (1, 2),
    )
    assert _offsets(resume.replay) == [3, 4]
    resume = registry.subscribe(_Sink(), "c", Position(epoch, 2), 10.5)
    assert resume.recovered is True
    assert _offsets(resume.replay) == [3, 4]
    # Once everything expired, the latest position is still recovered.
    assert registry.info("c", 100.0).first_available == 5
    assert registry.subscribe(_Sink(), "c", Position(epoch, 4), 100.0).recovered


def test_registry_shorter_ttl_applies_at_once() -> None:
    """configure() with a shorter TTL drops entries at once."""
    registry: ChannelRegistry[_Sink] = ChannelRegistry()
    registry.publish("c", "1", None, 0.0)
    registry.publish("c", "2", None, 50.0)
    registry.configure(None, 30.0, 60.0)
    assert registry.info("c", 60.0).first_available == 2


def test_registry_dedup_window() -> None:
    """Only the last DEDUP_WINDOW msg_ids are remembered."""
    registry: ChannelRegistry[_Sink] = ChannelRegistry(history_size=0)
    for i in range(DEDUP_WINDOW + 1):
        registry.publish("c", "null", f"m{i}", 0.0)
    assert registry.publish("c", "null", f"m{DEDUP_WINDOW}", 0.0).duplicate
    assert registry.publish("c", "null", "m1", 0.0).duplicate
    published = registry.publish("c", "null", "m0", 0.0)
    assert (published.offset, published.duplicate) == (DEDUP_WINDOW + 2, False)


def test_registry_subscriptions() -> None:
    """Subscribers get publications in order; duplicates and drops are handled."""
    registry: ChannelRegistry[_Sink] = ChannelRegistry()
    sink = _Sink()
    registry.subscribe(sink, "a", None, 0.0)
    registry.subscribe(sink, "b", None, 0.0)
    with pytest.raises(AlreadySubscribedError):
        registry.subscribe(sink, "a", None, 0.0)
    assert registry.subscriptions(sink, "a") == 1
    for channel in ("a", "b", "a"):
        registry.publish(channel, "null", None, 0.0)
    assert _offsets(sink.posted) == [1, 1, 2]
    assert registry.subscriptions_open == 2
    assert registry.unsubscribe(sink, "b")
    assert not registry.unsubscribe(sink, "b")
    assert registry.drop(sink) == 1
    assert registry.subscriptions_open == 0
    assert list(registry.subscribers("a")) == []
