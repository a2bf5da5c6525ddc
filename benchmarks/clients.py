"""The two sides measured: raw websockets (A) and wsclient (B), one block each.

A block opens a fresh connection, collects garbage, then times one fixed
amount of work, and closes the connection outside the timed window. Both
sides run the same loop, written as a user would write it, against the same
server; only the client differs. Both disable compression and keepalive and
use no proxy, so that they do the same work.

The hot loops are written out for each side rather than shared through a
helper: a shared wrapper would add the same cost to both sides and pull
every ratio towards 1.
"""

from __future__ import annotations

import collections
import gc
import json
import resource
import secrets
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import wsclient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

__all__ = [
    "BLOCKS",
    "Backend",
    "BlockFunction",
    "Sample",
    "SideName",
    "subscribe_request",
]

Backend = Literal["asyncio", "trio"]
SideName = Literal["raw", "raw_json", "wsclient", "picows", "aiohttp", "tcp"]
"""The client of a side; the last three are context lines (context.py)."""

CHANNEL = "bench"
ECHO_WARMUP = 20
"""Round trips made before timing each echo block, on both sides."""
PUBLISH_WINDOW = 64
"""Publications awaiting their ack at once in publish blocks, on both sides."""

RAW_OPTIONS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "proxy": None,
}
WSCLIENT_OPTIONS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "proxy": None,
}


class Sample:
    """What one block measured.

    Attributes:
        elapsed: Wall-clock seconds of the timed window.
        cpu: CPU seconds (user and system) this process spent in it: unlike
            ``elapsed``, it does not count time other processes took from
            our CPU, so it stays comparable on a loaded machine.
        page_faults: Minor page faults in it (memory the allocator had given
            back to the system and took again): a diagnostic.
        latencies: For echo blocks, each round trip in seconds.
    """

    __slots__ = ("cpu", "elapsed", "latencies", "page_faults")

    def __init__(
        self,
        elapsed: float,
        cpu: float,
        page_faults: int,
        latencies: list[float] | None = None,
    ) -> None:
        self.elapsed = elapsed
        self.cpu = cpu
        self.page_faults = page_faults
        self.latencies = latencies


class Timer:
    """Collects garbage, then starts the clocks of a timed window."""

    __slots__ = ("cpu", "page_faults", "wall")

    def __init__(self) -> None:
        gc.collect()  # Outside the window: each block starts with a clean heap.
        self.page_faults = _page_faults()
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def stop(self, latencies: list[float] | None = None) -> Sample:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return Sample(wall, cpu, _page_faults() - self.page_faults, latencies)


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


BlockFunction: TypeAlias = "Callable[[Backend, str, int, int], Awaitable[Sample]]"
"""``block(backend, url, count, size)`` runs one timed block of ``count``
messages of ``size`` bytes against the server at ``url``."""


class RawConnection(Protocol):
    """What the blocks use of websockets' asyncio and trio connections."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...


def raw_connect(
    backend: Backend, url: str
) -> AbstractAsyncContextManager[RawConnection]:
    """websockets' own ``connect`` for ``backend``, as a user would call it."""
    if backend == "asyncio":
        from websockets.asyncio.client import connect as asyncio_connect

        return asyncio_connect(url, **RAW_OPTIONS)
    from websockets.trio.client import connect as trio_connect

    return trio_connect(url, **RAW_OPTIONS)


def new_client(url: str, **options: Any) -> wsclient.Client:
    return wsclient.Client(url, **WSCLIENT_OPTIONS, **options)


def firehose_request(count: int, size: int) -> str:
    return json.dumps({"cmd": "firehose", "count": count, "size": size})


def subscribe_request(count: int, size: int) -> str:
    """The request ``ReferenceProtocol`` sends first for ``subscribe(CHANNEL)``."""
    params = {"count": count, "size": size}
    return json.dumps({**params, "type": "subscribe", "channel": CHANNEL, "id": 1})


def sink_request(count: int) -> str:
    return json.dumps({"cmd": "sink", "count": count})


def publisher_request() -> str:
    return json.dumps({"cmd": "publisher"})


def payload(size: int) -> str:
    # Never starts with "{": the server echoes it.
    return "x" * size


# Receive throughput: async for on the client (no protocol).


async def raw_recv(backend: Backend, url: str, count: int, size: int) -> Sample:
    async with raw_connect(backend, url) as ws:
        request = firehose_request(count, size)
        timer = Timer()
        await ws.send(request)
        received = 0
        while received < count:
            await ws.recv()
            received += 1
        return timer.stop()


async def wsclient_recv(backend: Backend, url: str, count: int, size: int) -> Sample:
    async with new_client(url) as client:
        await client.wait_connected()
        request = firehose_request(count, size)
        timer = Timer()
        await client.send(request)
        received = 0
        async for _ in client:
            received += 1
            if received >= count:
                break
        return timer.stop()


# Receive throughput: a subscription (the raw side reads the same messages).


async def raw_subscription(backend: Backend, url: str, count: int, size: int) -> Sample:
    async with raw_connect(backend, url) as ws:
        request = subscribe_request(count, size)
        timer = Timer()
        await ws.send(request)
        await ws.recv()  # subscribed
        received = 0
        while received < count:
            await ws.recv()
            received += 1
        return timer.stop()


async def raw_json_subscription(
    backend: Backend, url: str, count: int, size: int
) -> Sample:
    """The raw loop that does a subscription's job: decode, take the data."""
    async with raw_connect(backend, url) as ws:
        request = subscribe_request(count, size)
        timer = Timer()
        await ws.send(request)
        await ws.recv()  # subscribed
        received = 0
        while received < count:
            json.loads(await ws.recv())["data"]
            received += 1
        return timer.stop()


async def wsclient_subscription(
    backend: Backend, url: str, count: int, size: int
) -> Sample:
    async with new_client(url, protocol=wsclient.ReferenceProtocol()) as client:
        await client.wait_connected()
        timer = Timer()
        subscription = client.subscribe(CHANNEL, count=count, size=size)
        received = 0
        async for _ in subscription:
            received += 1
            if received >= count:
                break
        return timer.stop()


# Send throughput: until the server has read every message.


async def raw_send(backend: Backend, url: str, count: int, size: int) -> Sample:
    async with raw_connect(backend, url) as ws:
        await ws.send(sink_request(count))
        await ws.recv()  # ready
        message = payload(size)
        timer = Timer()
        for _ in range(count):
            await ws.send(message)
        await ws.recv()  # done
        return timer.stop()


async def wsclient_send(backend: Backend, url: str, count: int, size: int) -> Sample:
    async with new_client(url) as client:
        await client.send(sink_request(count))
        await anext(client)  # ready
        message = payload(size)
        timer = Timer()
        for _ in range(count):
            await client.send(message)
        await anext(client)  # done
        return timer.stop()


# Acknowledged publish, windowed: up to PUBLISH_WINDOW awaiting their ack.


async def raw_publish(backend: Backend, url: str, count: int, size: int) -> Sample:
    """The raw loop that does ``publish()``'s job: number each publication,
    keep it until acked (to resend it after a reconnection), read the acks."""
    async with raw_connect(backend, url) as ws:
        await ws.send(publisher_request())
        await ws.recv()  # ready
        data = payload(size)
        prefix = secrets.token_hex(8)
        unacked: dict[int, str] = {}
        timer = Timer()
        for request_id in range(1, count + 1):
            if len(unacked) >= PUBLISH_WINDOW:
                del unacked[json.loads(await ws.recv())["id"]]
            message = json.dumps(
                {
                    "type": "publish",
                    "channel": CHANNEL,
                    "data": data,
                    "id": request_id,
                    "msg_id": f"{prefix}-{request_id}",
                }
            )
            unacked[request_id] = message
            await ws.send(message)
        while unacked:
            del unacked[json.loads(await ws.recv())["id"]]
        return timer.stop()


async def wsclient_publish(backend: Backend, url: str, count: int, size: int) -> Sample:
    protocol = wsclient.ReferenceProtocol()
    async with new_client(
        url, protocol=protocol, publish_window=PUBLISH_WINDOW
    ) as client:
        await client.send(publisher_request())
        await anext(client)  # ready
        data = payload(size)
        in_flight: collections.deque[wsclient.PublishReceipt] = collections.deque()
        timer = Timer()
        for _ in range(count):
            if len(in_flight) >= PUBLISH_WINDOW:
                await in_flight.popleft().wait()
            in_flight.append(client.publish_nowait(CHANNEL, data))
        while in_flight:
            await in_flight.popleft().wait()
        return timer.stop()


# Echo round trips, one at a time.


async def raw_echo(backend: Backend, url: str, count: int, size: int) -> Sample:
    clock = time.perf_counter
    latencies: list[float] = []
    async with raw_connect(backend, url) as ws:
        message = payload(size)
        for _ in range(ECHO_WARMUP):
            await ws.send(message)
            await ws.recv()
        timer = Timer()
        for _ in range(count):
            sent = clock()
            await ws.send(message)
            await ws.recv()
            latencies.append(clock() - sent)
        return timer.stop(latencies)


async def wsclient_echo(backend: Backend, url: str, count: int, size: int) -> Sample:
    clock = time.perf_counter
    latencies: list[float] = []
    async with new_client(url) as client:
        message = payload(size)
        for _ in range(ECHO_WARMUP):
            await client.send(message)
            await anext(client)
        timer = Timer()
        for _ in range(count):
            sent = clock()
            await client.send(message)
            await anext(client)
            latencies.append(clock() - sent)
        return timer.stop(latencies)


BLOCKS: dict[str, dict[SideName, BlockFunction]] = {
    "recv_client": {"raw": raw_recv, "wsclient": wsclient_recv},
    "recv_sub": {
        "raw": raw_subscription,
        "raw_json": raw_json_subscription,
        "wsclient": wsclient_subscription,
    },
    "send": {"raw": raw_send, "wsclient": wsclient_send},
    "publish": {"raw": raw_publish, "wsclient": wsclient_publish},
    "echo": {"raw": raw_echo, "wsclient": wsclient_echo},
}
"""The block of each side, by kind of figure."""
