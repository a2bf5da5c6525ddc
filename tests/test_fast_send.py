"""One str or bytes on an open connection skips websockets' send_context().

Each backend's ``send()`` frames the message itself and writes it
(``_transport/sending.py``), and hands anything else to websockets. These
tests check, over real sockets, what that shortcut must keep from
websockets' ``send()``: the frame types, waiting for flow control, and
ending the connection when a write fails.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from wsclient import Client, Outcome

from .hostile import Peer, hostile_server
from .utils import LONG, Recorder, T, fast_options, wait_for_reconnects

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def raw_socket(client: Client) -> Any:
    """The client's TCP socket (asyncio: the transport's; trio: the stream's)."""
    conn: Any = client._supervisor.conn  # type: ignore[union-attr]
    transport = getattr(conn, "transport", None)
    if transport is not None:
        return transport.get_extra_info("socket")
    return conn.stream.socket


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


async def test_a_failed_write_ends_the_connection(server: Server) -> None:
    """A write that fails (the socket's sending side shut) ends the
    connection: send() does not raise it, and the client reconnects."""
    recorder = Recorder()
    async with Client(server.url, **fast_options(), **recorder.callbacks()) as client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
            raw_socket(client).shutdown(socket.SHUT_WR)
            receipt = await client.send("into a shut socket")
            await wait_for_reconnects(client)
            await client.send(json.dumps({"type": "echo", "data": "after"}))
            assert json.loads(await anext(aiter(client)))["data"] == "after"
    # Handed to the socket on asyncio (its transport fails later); failed
    # while writing on trio.
    assert receipt.outcome in {Outcome.WRITTEN, Outcome.POSSIBLY_LOST}
    assert recorder.of("disconnect")
