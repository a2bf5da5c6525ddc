"""wss:// against the reference server over TLS, with a throwaway trustme CA.

The server's certificate names 127.0.0.1, the host in its URL (see the
``tls_server`` fixture). Verification failures must stop the client after one
attempt (they are fatal in ``_core/classify.py``), and must leave the server
serving, without an error in its log.
"""

from __future__ import annotations

import json
import logging
import signal
import ssl
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import trustme
import websockets
from anyio.streams.tls import TLSStream
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.uri import parse_uri

import wsclient
from wsclient import Client, FailureKind
from wsclient.server import Server, serve
from wsclient.server.__main__ import main

from .raw import connect, no_server_errors  # noqa: F401 - a fixture
from .utils import LONG, Recorder, T, fast_options, interruptible

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import Process

pytestmark = pytest.mark.anyio

SHORT = 1000 * T
"""A bound for what must not wait for a retry or a timeout (1 s by default)."""

VERIFY_FAILED = "certificate verif"
"""In every verification failure's message: the OpenSSL error ("certificate
verify failed") or wsclient's verdict ("TLS certificate verification failed")."""


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server context with a certificate from ``ca`` for ``names``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def echo(client: Client, data: Any) -> Any:
    """Send an echo command through ``client``; return the data it got back."""
    await client.send(json.dumps({"type": "echo", "data": data}))
    async for message in client:
        return json.loads(message)["data"]
    raise AssertionError("the client stopped")


async def expect_rejected(
    url: str, *, backend: str, **options: Any
) -> wsclient.ConnectionRejected:
    """Connect with ``options``; check that the client stops at once, fatally."""
    recorder = Recorder()
    # A retry would wait LONG: failing within SHORT proves there was none.
    options = fast_options(backoff_initial=LONG, backoff_max=LONG, **options)
    async with Client(url, **options, **recorder.callbacks()) as client:
        with (
            anyio.fail_after(SHORT),
            pytest.raises(wsclient.ConnectionRejected) as info,
        ):
            await client.wait_connected()
    assert client.stats.failed_attempts == 1
    [event] = recorder.of("disconnect")
    assert VERIFY_FAILED in str(info.value)
    assert event.failure.kind is FailureKind.TLS_VERIFY
    assert event.failure.during_handshake
    assert info.value.failure is not None
    assert info.value.failure.kind is FailureKind.TLS_VERIFY
    return info.value


def backend_name(anyio_backend: Any) -> str:
    """The name of the backend under test, from the anyio_backend fixture."""
    name = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    assert isinstance(name, str)
    return name


class TestTrusted:
    """A client that trusts the server's CA: wss:// works like ws://, faults too."""

    async def test_echo_over_wss(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """The URL is wss:// and a client that trusts the CA echoes through it."""
        assert tls_server.url == f"wss://127.0.0.1:{tls_server.port}"
        options = fast_options(ssl=tls_client_context)
        async with Client(tls_server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                assert await echo(client, {"over": "tls"}) == {"over": "tls"}
        assert tls_server.counters.tls_handshakes_failed == 0

    async def test_reconnects_after_abort(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """After abort_all() the client reconnects over TLS and echoes again."""
        recorder = Recorder()
        options = fast_options(ssl=tls_client_context)
        async with Client(tls_server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                assert await echo(client, 1) == 1
                await tls_server.abort_all()
                event = await recorder.wait_for("disconnect")
                await recorder.wait_for("reconnect")
                assert await echo(client, 2) == 2
        assert (event.code, event.will_reconnect) == (1006, True)
        assert tls_server.counters.handshakes_completed == 2

    async def test_go_down_and_come_back(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """go_down() and come_back() work over TLS: the client reconnects."""
        recorder = Recorder()
        options = fast_options(ssl=tls_client_context)
        async with Client(tls_server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await tls_server.go_down()
                # Refused while down: REFUSED is retried, unlike TLS_VERIFY.
                await recorder.wait_for("disconnect", 2)
                await tls_server.come_back()
                await recorder.wait_for("reconnect")
                assert await echo(client, "back") == "back"

    async def test_refusal_is_retried(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """An HTTP 503 over TLS is retried, then the client connects."""
        recorder = Recorder()
        tls_server.refuse_next(1, 503)
        options = fast_options(ssl=tls_client_context)
        async with Client(tls_server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
        event = recorder.of("disconnect")[0]
        assert (event.failure.status, event.will_reconnect) == (503, True)
        assert tls_server.counters.handshakes_refused == 1

    async def test_heartbeat_detects_stall(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """A stalled wss:// server is detected by the heartbeat, then rejoined."""
        recorder = Recorder()
        options = fast_options(
            ssl=tls_client_context, ping_interval=50 * T, ping_timeout=100 * T
        )
        async with Client(tls_server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                tls_server.stall()
                event = await recorder.wait_for("disconnect")
                tls_server.stall(False)
                await recorder.wait_for("reconnect")
                assert await echo(client, 3) == 3
        assert (event.code, event.reason) == (1006, "keepalive ping timeout")

    async def test_close_all_over_tls(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """close_all() closes a websockets client over TLS cleanly, without delay.

        close_all() returns once the socket is closed, so a TLS shutdown that
        waited for a timeout on either side would take about a second.
        """
        async with connect(tls_server.url, ssl=tls_client_context) as ws:
            with anyio.fail_after(LONG):
                await tls_server.wait_for(lambda c: c.handshakes_completed == 1)
            with anyio.fail_after(SHORT):
                await tls_server.close_all(1012, "restart")
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
        close = info.value.rcvd
        assert close is not None
        assert (close.code, close.reason) == (1012, "restart")
        assert info.value.rcvd_then_sent

    @pytest.mark.parametrize("closer", ["server", "client"])
    async def test_clean_close_sends_close_notify(
        self, closer: str, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """After the closing handshake, TLS ends with close_notify, not a bare FIN.

        A standard-compatible anyio TLS stream tells them apart: EndOfStream
        after close_notify, BrokenResourceError after a bare TCP close.
        """
        with anyio.fail_after(LONG):
            stream, protocol = await open_sans_io(tls_server.url, tls_client_context)
        with anyio.fail_after(SHORT):
            async with anyio.create_task_group() as task_group:
                if closer == "server":
                    task_group.start_soon(tls_server.close_all, 1012, "restart")
                else:
                    protocol.send_close(1000)
                    await flush(stream, protocol)
                # The client protocol answers a close frame by itself.
                await receive_until(stream, protocol, is_close_frame)
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                await stream.aclose()  # Answers with our close_notify.
            await tls_server.wait_for(lambda c: c.connections_open == 0)

    async def test_stall_holds_tls_handshake(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """While stalled, the server does not even answer the TLS handshake."""
        handshaken = anyio.Event()
        streams: list[TLSStream] = []

        async def open_tls() -> None:
            stream = await anyio.connect_tcp(
                "127.0.0.1",
                tls_server.port,
                ssl_context=tls_client_context,
                tls_standard_compatible=False,
            )
            streams.append(stream)
            handshaken.set()

        tls_server.stall()
        with anyio.fail_after(LONG):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(open_tls)
                await tls_server.wait_for(lambda c: c.connections_accepted == 1)
                # Both sides had every chance to progress: the server's
                # connection task runs to the stall gate without any I/O.
                await anyio.wait_all_tasks_blocked()
                assert not handshaken.is_set()
                tls_server.stall(False)
                await handshaken.wait()
            await streams[0].aclose()

    async def test_exit_ends_pending_tls_handshakes(
        self, tls_ca: trustme.CA, anyio_backend: Any
    ) -> None:
        """Leaving serve() drops a client stuck in the TLS handshake, at once."""
        context = server_context(tls_ca, "127.0.0.1")
        with anyio.fail_after(LONG):
            async with serve(ssl=context) as server:
                # A TCP client that never starts the TLS handshake.
                raw = await anyio.connect_tcp("127.0.0.1", server.port)
                await server.wait_for(lambda c: c.connections_accepted == 1)
                start = anyio.current_time()
            elapsed = anyio.current_time() - start
            await raw.aclose()
        assert elapsed < SHORT
        assert server.counters.connections_open == 0


class TestVerification:
    """Certificates that do not verify stop the client after one attempt."""

    async def test_untrusted_ca_is_fatal(
        self, tls_server: Server, anyio_backend: Any
    ) -> None:
        """A CA the client does not trust: ConnectionRejected, once, at once."""
        untrusted = client_context(trustme.CA())  # Trusts another CA.
        backend = backend_name(anyio_backend)
        error = await expect_rejected(tls_server.url, backend=backend, ssl=untrusted)
        with anyio.fail_after(LONG):
            await tls_server.wait_for(
                lambda c: c.tls_handshakes_failed == 1 and c.connections_open == 0
            )
        assert tls_server.counters.connections_accepted == 1
        assert "unable to get local issuer certificate" in str(error)

    async def test_wrong_host_name_is_fatal(
        self, tls_ca: trustme.CA, anyio_backend: Any
    ) -> None:
        """A trusted certificate for another name: ConnectionRejected, at once."""
        backend = backend_name(anyio_backend)
        context = server_context(tls_ca, "example.org")
        async with serve(ssl=context) as server:
            error = await expect_rejected(
                server.url, backend=backend, ssl=client_context(tls_ca)
            )
            with anyio.fail_after(LONG):
                await server.wait_for(lambda c: c.tls_handshakes_failed == 1)
            assert server.counters.connections_accepted == 1
        assert "IP address mismatch" in str(error)

    async def test_default_context_verifies(
        self, tls_server: Server, anyio_backend: Any
    ) -> None:
        """Without ssl=, the system store is used: it does not trust trustme's CA."""
        await expect_rejected(tls_server.url, backend=backend_name(anyio_backend))
        with anyio.fail_after(LONG):
            await tls_server.wait_for(lambda c: c.tls_handshakes_failed == 1)


class TestServerSide:
    """Failed TLS handshakes are the client's problem, not the server's."""

    async def test_failed_handshake_is_logged_at_info_and_server_goes_on(
        self,
        tls_server: Server,
        tls_client_context: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture,
        anyio_backend: Any,
    ) -> None:
        """An untrusting client leaves an INFO line, no error, and a working server."""
        caplog.set_level(logging.INFO, logger="wsclient.server")
        untrusted = client_context(trustme.CA())
        backend = backend_name(anyio_backend)
        await expect_rejected(tls_server.url, backend=backend, ssl=untrusted)
        with anyio.fail_after(LONG):
            await tls_server.wait_for(lambda c: c.tls_handshakes_failed == 1)
        async with Client(tls_server.url, **fast_options(ssl=tls_client_context)) as ok:
            with anyio.fail_after(LONG):
                assert await echo(ok, "still here") == "still here"
        failures = [
            record
            for record in caplog.records
            if record.name == "wsclient.server"
            and record.getMessage().startswith("TLS handshake failed")
        ]
        assert [record.levelno for record in failures] == [logging.INFO]
        # no_server_errors checks that nothing was logged at ERROR.

    async def test_plain_ws_client_is_turned_away(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """A ws:// client fails against a wss:// server, which goes on serving."""
        plain_url = tls_server.url.replace("wss://", "ws://", 1)
        with anyio.fail_after(LONG):
            with pytest.raises((websockets.InvalidHandshake, OSError)):
                async with connect(plain_url):
                    pass
            await tls_server.wait_for(
                lambda c: c.tls_handshakes_failed == 1 and c.connections_open == 0
            )
            async with connect(tls_server.url, ssl=tls_client_context) as ws:
                await ws.send(json.dumps({"type": "echo", "data": 1}))
                assert json.loads(await ws.recv()) == {"type": "echo", "data": 1}

    async def test_abort_during_tls_handshake(self, tls_server: Server) -> None:
        """abort_all() drops a client stuck in the TLS handshake; no task is left."""
        with anyio.fail_after(LONG):
            raw = await anyio.connect_tcp("127.0.0.1", tls_server.port)
            await raw.send(b"\x16\x03\x01")  # The start of a TLS record.
            await tls_server.wait_for(lambda c: c.connections_accepted == 1)
            await tls_server.abort_all()
            assert tls_server.counters.connections_open == 0
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await raw.receive()
            await raw.aclose()


class TestArguments:
    """serve(ssl=...) and the command line check what they get."""

    def test_ssl_must_be_a_context(self) -> None:
        """A non-context is a TypeError; a client-side context a ValueError."""
        with pytest.raises(TypeError, match=r"ssl\.SSLContext"):
            Server("127.0.0.1", 0, max_size=None, ssl="cert.pem")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="server-side"):
            Server("127.0.0.1", 0, max_size=None, ssl=ssl.create_default_context())

    def test_cli_rejects_bad_tls_arguments(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing or invalid certificate, or a lone --keyfile, is a usage error."""
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("not a certificate\n")
        for argv in (
            ["--certfile", str(tmp_path / "missing.pem")],
            ["--certfile", str(garbage)],
            ["--keyfile", str(garbage)],
        ):
            with pytest.raises(SystemExit) as info:
                main(argv)
            assert info.value.code == 2
            assert "usage:" in capsys.readouterr().err

    async def test_cli_serves_wss(
        self, tmp_path: Path, tls_ca: trustme.CA, anyio_backend: Any
    ) -> None:
        """`python -m wsclient.server --certfile C --keyfile K` serves wss://."""
        cert = tls_ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
        cert.private_key_pem.write_to_path(tmp_path / "key.pem")
        argv = [sys.executable, "-m", "wsclient.server", "--port", "0"]
        argv += ["--backend", backend_name(anyio_backend)]
        argv += ["--certfile", str(tmp_path / "cert.pem")]
        argv += ["--keyfile", str(tmp_path / "key.pem")]
        async with cli_process(argv) as process:
            assert process.stdout is not None
            output = b""
            while b"\n" not in output:
                output += await process.stdout.receive()
            url = output.decode().split()[2]
            assert url.startswith("wss://127.0.0.1:")
            async with connect(url, ssl=client_context(tls_ca)) as ws:
                await ws.send(json.dumps({"type": "echo", "data": 1}))
                assert json.loads(await ws.recv()) == {"type": "echo", "data": 1}
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


async def open_sans_io(
    url: str, context: ssl.SSLContext
) -> tuple[TLSStream, ClientProtocol]:
    """Open a WebSocket connection with websockets' Sans-I/O client over anyio TLS."""
    uri = parse_uri(url)
    stream = await anyio.connect_tcp(
        uri.host, uri.port, ssl_context=context, tls_standard_compatible=True
    )
    assert isinstance(stream, TLSStream)
    protocol = ClientProtocol(uri)
    protocol.send_request(protocol.connect())
    await flush(stream, protocol)
    await receive_until(stream, protocol, lambda event: isinstance(event, Response))
    assert protocol.state is OPEN
    return stream, protocol


async def flush(stream: TLSStream, protocol: ClientProtocol) -> None:
    """Write what the protocol has to send; the client never half-closes TLS."""
    for data in protocol.data_to_send():
        if data:
            await stream.send(data)


async def receive_until(
    stream: TLSStream, protocol: ClientProtocol, predicate: Callable[[Any], bool]
) -> None:
    """Feed received bytes to the protocol until an event matches ``predicate``."""
    while True:
        protocol.receive_data(await stream.receive())
        await flush(stream, protocol)
        if any(predicate(event) for event in protocol.events_received()):
            return


def is_close_frame(event: Any) -> bool:
    return isinstance(event, Frame) and event.opcode is Opcode.CLOSE


ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test: `python -m` from here runs its code."""


@asynccontextmanager
async def cli_process(argv: list[str]) -> AsyncIterator[Process]:
    """Run the server's command line, bounded by LONG; kill it if still running."""
    with anyio.fail_after(2 * LONG):
        process = await anyio.open_process(interruptible(argv), cwd=ROOT)
        async with process:
            try:
                yield process
            finally:
                if process.returncode is None:
                    process.kill()
