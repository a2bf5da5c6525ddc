"""Dead links are found fast; slow consumers and blocked loops are not dead."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from wsclient import Client, DisconnectEvent
from wsclient._heartbeat import Monitor

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio

SLACK = 100 * T
"""Scheduling slack on top of a detection bound."""


async def time_to_detect_stall(
    server: Server, recorder: Recorder
) -> tuple[float, DisconnectEvent]:
    """Stall the server; return how long until the client reported the link dead."""
    server.stall(True)
    stalled_at = anyio.current_time()
    event = await recorder.wait_for("disconnect")
    return anyio.current_time() - stalled_at, event


def is_pong(message: str | bytes) -> bool:
    return isinstance(message, str) and json.loads(message).get("type") == "pong"


class TestHalfOpen:
    async def test_keepalive_detects_within_interval_plus_timeout(
        self, server: Server
    ) -> None:
        """A stalled server is reported within ping_interval + ping_timeout.

        close_timeout is long on purpose: websockets' own keepalive would wait
        for it on top, since it tries a closing handshake with a dead peer.
        """
        interval, timeout = 100 * T, 100 * T
        recorder = Recorder()
        options = fast_options(
            ping_interval=interval, ping_timeout=timeout, close_timeout=LONG
        )
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                detected_after, event = await time_to_detect_stall(server, recorder)
                server.stall(False)
                await recorder.wait_for("reconnect")
        assert detected_after <= interval + timeout + SLACK
        assert (event.code, event.reason) == (1006, "keepalive ping timeout")
        assert event.will_reconnect
        assert event.loop_blocked is None
        assert client.stats.heartbeat_timeouts == 1

    async def test_round_trip_time_in_stats(self, server: Server) -> None:
        """Each pong updates stats.ping_rtt."""
        options = fast_options(ping_interval=10 * T, ping_timeout=LONG)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                # The second ping goes out only after the first pong was recorded.
                await server.wait_for(lambda n: n.pings_received >= 2)
            rtt = client.stats.ping_rtt
        assert rtt is not None
        assert 0 < rtt < LONG

    async def test_idle_watchdog(self, server: Server) -> None:
        """No frame for idle_timeout seconds means the link is dead."""
        recorder = Recorder()
        options = fast_options(idle_timeout=100 * T)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                detected_after, event = await time_to_detect_stall(server, recorder)
        assert detected_after <= 100 * T + SLACK
        assert event.code == 1006
        assert event.reason.startswith("idle timeout")

    async def test_application_heartbeat_detects(self, server: Server) -> None:
        """Without an answer to the heartbeat message, the link is dead."""
        recorder = Recorder()
        options = fast_options(heartbeat_interval=30 * T, heartbeat_timeout=100 * T)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                detected_after, event = await time_to_detect_stall(server, recorder)
        assert detected_after <= 30 * T + 100 * T + SLACK
        assert event.reason == "application heartbeat timeout"

    async def test_application_heartbeat_replies_filtered(self, server: Server) -> None:
        """Replies matched by heartbeat_reply do not reach async for."""
        options = fast_options(
            heartbeat_interval=10 * T, heartbeat_timeout=LONG, heartbeat_reply=is_pong
        )
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.messages_sent >= 3)
                await client.send('{"type": "echo", "data": "mine"}')
                message = await anext(aiter(client))
        assert json.loads(message)["data"] == "mine"
        assert client.stats.messages_in >= 4


class TestNotDead:
    async def test_slow_consumer_keeps_the_connection(self, server: Server) -> None:
        """A consumer that stops reading longer than interval + timeout is not dead.

        websockets' keepalive closes such a connection with 1011: the pong
        waits, unread, behind the messages the application has not read.
        """
        count, size = 2000, 10_000
        recorder = Recorder()
        options = fast_options(
            ping_interval=20 * T, ping_timeout=50 * T, max_queue=4, max_size=2**16
        )
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG * 4):
                await client.wait_connected()
                request = {"type": "stream", "count": count, "size": size}
                await client.send(json.dumps(request))
                await server.wait_for(lambda n: n.messages_sent >= 100)
                # The behaviour under test: the application does not read.
                await anyio.sleep(300 * T)
                sent_during_stall = server.counters.messages_sent
                # Memory held by the client: max_queue frames plus one socket
                # read (64 KiB, a few frames of this size), not the stream.
                assert client._supervisor is not None
                assert client._supervisor.conn is not None
                assert client._supervisor.conn.pending_messages <= 4 + 16
                seqs = []
                async for message in client:
                    seqs.append(json.loads(message)["seq"])
                    if len(seqs) == count:
                        break
        assert seqs == list(range(count))
        assert recorder.of("disconnect")[-1].code == 1000  # Only the final close.
        assert client.stats.connects == 1
        # Flow control held: the server could not push the whole stream.
        assert sent_during_stall < count

    async def test_blocked_loop_is_not_a_dead_server(self, server: Server) -> None:
        """A loop blocked past the pong deadline does not drop a live link."""
        recorder = Recorder()
        options = fast_options(ping_interval=20 * T, ping_timeout=100 * T)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.pings_received >= 1)
                time.sleep(400 * T)  # noqa: ASYNC251 - the application blocks the loop
                await server.wait_for(lambda n: n.pings_received >= 3)
            assert client.stats.connects == 1
        assert recorder.of("disconnect")[-1].code == 1000
        assert client.stats.loop_lag_max >= 200 * T

    async def test_blocked_loop_reported_when_link_dies(
        self, server: Server, caplog: pytest.LogCaptureFixture
    ) -> None:
        """When a dead link coincides with a blocked loop, the event and log say so."""
        recorder = Recorder()
        options = fast_options(ping_interval=10 * T, ping_timeout=100 * T)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.pings_received >= 1)
                server.stall(True)
                # Let the next ping go out to the stalled server, then block.
                await anyio.sleep(30 * T)
                time.sleep(400 * T)  # noqa: ASYNC251 - blocks the loop on purpose
                event = await recorder.wait_for("disconnect")
            assert client.stats.heartbeat_timeouts == 1
        assert event.reason == "keepalive ping timeout"
        assert event.loop_blocked is not None
        assert event.loop_blocked >= 200 * T
        assert "event loop was blocked" in caplog.text


class TestWatcherBug:
    @pytest.mark.parametrize("alone", [True, False])
    async def test_a_failing_keepalive_drops_the_connection(
        self,
        server: Server,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
        alone: bool,
    ) -> None:
        """A bug in the keepalive (here: it raises after its first sleep) is
        logged and drops the connection, which is then reopened with working
        watchers: never a client left unwatched. Alone (the default) or next
        to another watcher."""
        failed = []

        def broken(self: Monitor, lag: float) -> None:
            if not failed:
                failed.append(lag)
                raise RuntimeError("bug in the keepalive")

        monkeypatch.setattr(Monitor, "_record_lag", broken)
        recorder = Recorder()
        options = fast_options(ping_interval=20 * T, ping_timeout=LONG)
        if not alone:
            options["idle_timeout"] = LONG
        async with Client(server.url, **options, **recorder.callbacks()):
            with anyio.fail_after(LONG):
                disconnect = await recorder.wait_for("disconnect")
                await recorder.wait_for("connect", 2)
        assert disconnect.reason == "keepalive watcher failed"
        assert "the _keepalive watcher failed" in caplog.text
