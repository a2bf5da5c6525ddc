"""One str or bytes on an open connection skips websockets' send_context().

Each backend's ``send()`` frames the message itself and writes it
(``_transport/sending.py``), and hands anything else to websockets. These
tests check, over real sockets, what that shortcut must keep from
websockets' ``send()``: the frame types, waiting for flow control, and
ending the connection when a write fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from wsclient import Client, Outcome

from .hostile import Peer, hostile_server
from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


async def test_frame_types() -> None:
    """str goes as a text frame, bytes as binary (shortcut); bytearray and
    memoryview as binary too (websockets' send())."""
    sent: list[Any] = ["héllo", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")]
    all_in = anyio.Event()

    async def on_message(peer: Peer, _: str | bytes) -> None:
        if len(peer.messages) == len(sent):
            all_in.set()

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve(on_message)

    async with hostile_server(behaviour) as server:
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                receipts = [await client.send(message) for message in sent]
                await all_in.wait()
    received = server.peers[0].messages
    assert received == ["héllo", b"\x00\xff", b"ab", b"cd"]
    assert [type(message) for message in received] == [str, bytes, bytes, bytes]
    assert {receipt.outcome for receipt in receipts} == {Outcome.WRITTEN}


async def test_send_waits_while_the_server_does_not_read(server: Server) -> None:
    """Sending to a server that reads nothing fills the socket buffers, then
    send() waits (flow control) instead of buffering without end, until the
    heartbeat finds the link dead."""
    blob = b"x" * 65536
    count = 2000  # 125 MiB: far more than the socket buffers hold.
    recorder = Recorder()
    options = fast_options(
        ping_interval=100 * T, ping_timeout=100 * T, compression=None
    )
    written_before_disconnect = 0
    async with Client(server.url, **options, **recorder.callbacks()) as client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
            server.stall(True)
            written = 0

            async def flood() -> None:
                nonlocal written
                for _ in range(count):
                    receipt = await client.send(blob)
                    if receipt.outcome is Outcome.WRITTEN:
                        written += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                await recorder.wait_for("disconnect")
                written_before_disconnect = written
                tg.cancel_scope.cancel()
            server.stall(False)
    # Without waiting, all of them would have been written in a few ms.
    assert 0 < written_before_disconnect < count // 4, written_before_disconnect


async def test_a_write_that_fails_ends_the_connection(server: Server) -> None:
    """The server resets the link while send() waits for flow control: the
    write fails (asyncio: drain() raises the reset; trio: send_all() does),
    which ends the connection as websockets would. send() does not raise
    it: the message is reported possibly lost, and the client reconnects."""
    recorder = Recorder()
    options = fast_options(compression=None, **recorder.callbacks())
    blob = b"x" * 65536
    async with Client(server.url, **options) as client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
            server.stall(True)
            receipts: list[Any] = []

            async def flood() -> None:
                for _ in range(2000):  # 125 MiB: send() waits long before.
                    receipts.append(await client.send(blob))  # noqa: PERF401 (cancelled midway)

            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                # Every task waits: the flood on flow control, the server
                # on its stall.
                await anyio.wait_all_tasks_blocked()
                written = len(receipts)
                await server.abort_all()
                server.stall(False)
                await recorder.wait_for("reconnect")
                tg.cancel_scope.cancel()
    assert written < 2000
    assert receipts[written].outcome is Outcome.POSSIBLY_LOST
    assert recorder.of("disconnect")[0].code == 1006


async def test_text_that_cannot_be_encoded_goes_to_websockets(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A str with a lone surrogate is no UTF-8: the shortcut leaves it to
    websockets' send(), which logs it and ends the connection (as before the
    shortcut); the client reconnects. (client.send() refuses such a str
    itself: a heartbeat message goes straight to the connection.)"""
    recorder = Recorder()
    options = fast_options(
        heartbeat_interval=10 * T,
        heartbeat_timeout=LONG,
        heartbeat_message=lambda: "\ud800",
        **recorder.callbacks(),
    )
    async with Client(server.url, **options):
        with anyio.fail_after(LONG):
            await recorder.wait_for("reconnect")
    assert "unexpected internal error" in caplog.text
    assert "UnicodeEncodeError" in caplog.text
