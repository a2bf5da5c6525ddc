"""Reconnection policy against real faults of the reference server."""

from __future__ import annotations

import email.utils
import ssl
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import tenacity
import trustme

import wsclient
from wsclient import Client, ClientState, FailureKind, Verdict

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from wsclient.server import Server

pytestmark = pytest.mark.anyio


class TestBackoff:
    async def test_delays_grow_with_jitter(self, server: Server) -> None:
        """Each delay lies in [base/2, base] and the base doubles per failure."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(backoff_initial=10 * T, backoff_max=80 * T)
        async with Client(server.url, **options, **recorder.callbacks()):
            with anyio.fail_after(LONG):
                await recorder.wait_for("disconnect", 6)
        delays = [event.delay for event in recorder.of("disconnect")[:6]]
        bases = [10 * T, 20 * T, 40 * T, 80 * T, 80 * T, 80 * T]
        for delay, base in zip(delays, bases, strict=True):
            assert base / 2 <= delay <= base
        assert all(
            e.failure.kind is FailureKind.REFUSED for e in recorder.of("disconnect")
        )

    async def test_accept_and_close_is_not_a_tight_loop(self, server: Server) -> None:
        """A server that accepts then closes with 1012 gets backed-off attempts.

        websockets' own loop resets its backoff on every successful handshake
        and reconnects thousands of times per second against such a server.
        """
        server.close_after_handshake(1012, "restart")
        recorder = Recorder()
        options = fast_options(backoff_initial=10 * T, backoff_max=LONG)
        async with Client(server.url, **options, **recorder.callbacks()):
            with anyio.fail_after(LONG):
                await recorder.wait_for("disconnect", 6)
        delays = [event.delay for event in recorder.of("disconnect")[:6]]
        assert all(e.code == 1012 for e in recorder.of("disconnect")[:6])
        # Consecutive failures keep growing although every handshake worked.
        for n, delay in enumerate(delays):
            assert delay >= 10 * T * 2**n / 2

    async def test_backoff_resets_after_stable_connection(self, server: Server) -> None:
        """After stable_after seconds of uptime, the delay is back at initial."""
        recorder = Recorder()
        options = fast_options(
            backoff_initial=10 * T, backoff_jitter=0, stable_after=100 * T
        )
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                for n in range(1, 4):  # Unstable: aborted as soon as connected.
                    await recorder.wait_for("connect", n)
                    await server.abort_all()
                await recorder.wait_for("connect", 4)
                await anyio.sleep(150 * T)  # The behaviour under test: uptime.
                await server.abort_all()
                await recorder.wait_for("connect", 5)
                assert client.state is ClientState.CONNECTED
        delays = [event.delay for event in recorder.of("disconnect")[:4]]
        assert delays == pytest.approx([10 * T, 20 * T, 40 * T, 10 * T])

    async def test_delay_counts_from_the_loss(self, server: Server) -> None:
        """The backoff runs from when the connection was found closed: time
        spent tearing it down (here a connect callback still running, which
        the disconnect waits for) overlaps the delay instead of adding to it."""
        delay, busy = 200 * T, 150 * T
        connected: list[float] = []
        release = anyio.Event()
        changed = [anyio.Event(), anyio.Event()]

        async def on_connect(_: wsclient.ConnectEvent) -> None:
            connected.append(anyio.current_time())
            changed[len(connected) - 1].set()
            if len(connected) == 1:
                await release.wait()  # Still running when the link is lost.

        options = fast_options(
            backoff_initial=delay, backoff_max=delay, backoff_jitter=0
        )
        async with Client(server.url, **options, on_connect=on_connect):
            with anyio.fail_after(LONG):
                await changed[0].wait()
                await server.abort_all()
                lost = anyio.current_time()
                await anyio.sleep(busy)  # The behaviour under test: a busy callback.
                release.set()
                await changed[1].wait()
        # From the loss: about `delay`, not `busy + delay` (350 ms).
        assert delay - 10 * T <= connected[1] - lost < delay + 100 * T

    async def test_user_tenacity_wait(self, server: Server) -> None:
        """A tenacity wait strategy given as wait= sets the delays."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(wait=tenacity.wait_fixed(0.015))
        async with Client(server.url, **options, **recorder.callbacks()):
            with anyio.fail_after(LONG):
                await recorder.wait_for("disconnect", 3)
        assert [e.delay for e in recorder.of("disconnect")[:3]] == [0.015] * 3


class TestGiveUp:
    async def test_max_attempts(self, server: Server) -> None:
        """After max_attempts failures the client gives up, everywhere at once."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(max_attempts=3)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                give_up = await recorder.wait_for("give_up")
                with pytest.raises(wsclient.GaveUp) as raised:
                    await client.wait_connected()
                with pytest.raises(wsclient.GaveUp):
                    await client.send("x")
                with pytest.raises(wsclient.GaveUp):
                    await anext(aiter(client))
        assert raised.value.attempts == 3
        assert give_up.attempts == 3
        assert give_up.error is raised.value
        assert client.state is ClientState.CLOSED
        assert recorder.names() == ["disconnect"] * 3 + ["give_up"]
        assert [e.will_reconnect for e in recorder.of("disconnect")] == [
            True,
            True,
            False,
        ]
        assert isinstance(raised.value.__cause__, OSError)

    async def test_max_attempts_after_a_stable_connection(self, server: Server) -> None:
        """max_attempts counts reconnection attempts, not the drop itself."""
        recorder = Recorder()
        options = fast_options(max_attempts=2, stable_after=0)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.go_down()
                give_up = await recorder.wait_for("give_up")
        disconnects = recorder.of("disconnect")
        assert [e.was_connected for e in disconnects] == [True, False, False]
        assert give_up.attempts == 2
        assert client.stats.failed_attempts == 2

    async def test_max_downtime(self, server: Server) -> None:
        """After max_downtime seconds without a connection the client gives up."""
        await server.go_down()
        options = fast_options(backoff_initial=10 * T, max_downtime=60 * T)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG), pytest.raises(wsclient.GaveUp) as raised:
                await client.wait_connected()
        assert raised.value.downtime >= 60 * T


class TestClassification:
    @pytest.mark.parametrize(
        ("status", "fatal"),
        [
            (401, True),
            (403, True),
            (404, True),
            (426, True),
            (500, False),
            (503, False),
        ],
    )
    async def test_handshake_status(
        self, server: Server, status: int, fatal: bool
    ) -> None:
        """Handshake statuses follow the table: fatal ones stop the client."""
        server.refuse_next(1, status=status)
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                if fatal:
                    with pytest.raises(wsclient.ConnectionRejected) as raised:
                        await c.wait_connected()
                    assert raised.value.failure is not None
                    assert raised.value.failure.status == status
                    assert str(status) in str(raised.value)
                else:
                    await c.wait_connected()
        first = recorder.of("disconnect")[0]
        assert first.will_reconnect is not fatal
        assert first.failure.status == status
        assert first.code is None

    @pytest.mark.parametrize(
        ("code", "fatal"), [(1008, True), (1003, True), (1012, False), (4000, False)]
    )
    async def test_close_code(self, server: Server, code: int, fatal: bool) -> None:
        """Close codes follow the table: 1008 stops the client, 1012 reconnects."""
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                await c.wait_connected()
                await server.close_all(code, "bye")
                if fatal:
                    await recorder.wait_for("give_up")
                    with pytest.raises(wsclient.ConnectionRejected):
                        await c.wait_connected()
                else:
                    await recorder.wait_for("reconnect")
        event = recorder.of("disconnect")[0]
        assert (event.code, event.reason, event.will_reconnect) == (
            code,
            "bye",
            not fatal,
        )
        assert c.stats.last_close_code == code

    async def test_classify_hook(self, server: Server) -> None:
        """A classify hook overrides the table: here 1012 becomes fatal."""

        def classify(failure: wsclient.Failure, default: Verdict) -> Verdict:
            if failure.code == 1012:
                return Verdict.fatal("deployments are final here")
            return default

        async with Client(server.url, **fast_options(classify=classify)) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.close_all(1012)
                with pytest.raises(wsclient.ConnectionRejected, match="deployments"):
                    async for _ in client:
                        pass

    async def test_tls_verification_failure_is_fatal(self, tmp_path: Any) -> None:
        """A certificate that does not verify stops the client at once."""
        server_ca, client_ca = trustme.CA(), trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ca.issue_cert("127.0.0.1").configure_cert(server_context)
        client_context = ssl.create_default_context()
        client_ca.configure_trust(client_context)  # Trusts another CA.
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tls = anyio.streams.tls.TLSListener(listener, server_context)

        async def handle(stream: anyio.abc.ByteStream) -> None:
            await stream.aclose()

        recorder = Recorder()
        async with tls, anyio.create_task_group() as tg:
            tg.start_soon(tls.serve, handle)
            url = f"wss://127.0.0.1:{port}"
            options = fast_options(ssl=client_context, **recorder.callbacks())
            async with Client(url, **options) as client:
                with anyio.fail_after(LONG), pytest.raises(wsclient.ConnectionRejected):
                    await client.wait_connected()
            tg.cancel_scope.cancel()
        assert recorder.of("disconnect")[0].failure.kind is FailureKind.TLS_VERIFY
        assert len(recorder.of("disconnect")) == 1


class TestHandshakeFaults:
    """Servers that break the opening handshake: each is retried with backoff."""

    async def run_against(
        self,
        handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
        **options: Any,
    ) -> list[wsclient.DisconnectEvent]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        recorder = Recorder()
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            url = f"ws://127.0.0.1:{port}"
            async with Client(url, **fast_options(**options), **recorder.callbacks()):
                with anyio.fail_after(LONG):
                    await recorder.wait_for("disconnect", 3)
            tg.cancel_scope.cancel()
        return recorder.of("disconnect")[:3]

    async def test_reset_during_handshake(self) -> None:
        """A server that drops the TCP connection before answering is retried."""

        async def drop(stream: anyio.abc.SocketStream) -> None:
            await stream.aclose()

        events = await self.run_against(drop)
        assert {e.failure.kind for e in events} == {FailureKind.RESET}
        assert all(e.will_reconnect and not e.was_connected for e in events)

    async def test_open_timeout(self) -> None:
        """A server that never answers the handshake times out, then is retried."""

        async def never_answer(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await anyio.sleep_forever()

        events = await self.run_against(never_answer, open_timeout=50 * T)
        assert {e.failure.kind for e in events} == {FailureKind.TIMEOUT}
        assert all(e.will_reconnect for e in events)

    async def test_not_websocket(self) -> None:
        """An HTTP server that answers 200 is not a WebSocket server: fatal."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def http_ok(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.receive()
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, http_ok)
            url = f"ws://127.0.0.1:{port}"
            async with Client(url, **fast_options()) as client:
                with anyio.fail_after(LONG), pytest.raises(wsclient.ConnectionRejected):
                    await client.wait_connected()
            tg.cancel_scope.cancel()
        assert client.stats.failed_attempts == 1


class TestRetryAfter:
    async def test_seconds(self, server: Server) -> None:
        """Retry-After in seconds on a 429 sets the minimum delay."""
        server.refuse_next(1, status=429, retry_after=7)
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()):
            with anyio.fail_after(LONG):
                event = await recorder.wait_for("disconnect")
        assert event.delay == 7.0

    async def test_http_date(self, server: Server) -> None:
        """Retry-After as an HTTP-date on a 503 sets the delay until that date."""
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        server.refuse_next(1, status=503, retry_after=when)
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()):
            with anyio.fail_after(LONG):
                event = await recorder.wait_for("disconnect")
        assert 28 <= event.delay <= 30


class TestUrls:
    async def test_rotation(self, server: Server) -> None:
        """With a list of URLs the client moves on after a failure."""
        await server.go_down()
        dead = server.url
        await server.come_back()
        async with serve_other() as other:
            await server.go_down()
            recorder = Recorder()
            urls = [dead, other.url]
            async with Client(urls, **fast_options(), **recorder.callbacks()) as client:
                with anyio.fail_after(LONG):
                    await client.wait_connected()
            assert recorder.of("connect")[0].url == other.url
            assert recorder.of("connect")[0].attempt == 2

    async def test_provider(self, server: Server) -> None:
        """An async URL provider is called per attempt with the last failure."""
        calls: list[tuple[int, FailureKind | None]] = []

        async def provider(attempt: int, last: wsclient.Failure | None) -> str:
            calls.append((attempt, None if last is None else last.kind))
            return server.url + f"/?token=secret{attempt}"

        server.refuse_next(1, status=503)
        async with Client(provider, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
            assert "secret" not in client.url
            assert "secret" not in repr(client)
        assert calls == [(1, None), (2, FailureKind.STATUS)]

    async def test_provider_error_is_fatal(self, server: Server) -> None:
        """A provider returning a non-WebSocket URL stops the client clearly."""
        async with Client(lambda attempt, last: "http://x", **fast_options()) as c:
            with anyio.fail_after(LONG), pytest.raises(wsclient.ConnectionRejected):
                await c.wait_connected()

    async def test_server_comes_back(self, server: Server) -> None:
        """The client reconnects once the server is back on the same port."""
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                await c.wait_connected()
                await server.go_down()
                await recorder.wait_for("disconnect", 2)
                await server.come_back()
                event = await recorder.wait_for("reconnect")
        assert event.attempt >= 2
        assert c.stats.failed_attempts >= 1


def serve_other() -> Any:
    from wsclient.server import serve

    return serve()
