"""A small server in the common exchange style, on the backend under test.

``{"method": "SUBSCRIBE", "params": [stream], "id": n}`` is answered with
``{"result": null, "id": n}`` (or an error for streams named ``bad*``);
publications go out as ``{"stream": stream, "data": {...}}``. Like most
exchanges it keeps no history.
"""

from __future__ import annotations

import functools
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import sniffio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class ExchangeServer:
    """Subscriptions per connection, and publish() for the tests."""

    def __init__(self) -> None:
        self.port = 0
        self.connections: dict[Any, set[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def publish(self, stream: str, data: object) -> int:
        """Send to every connection subscribed to ``stream``; return how many."""
        message = json.dumps({"stream": stream, "data": data})
        targets = [ws for ws, streams in self.connections.items() if stream in streams]
        for ws in targets:
            await ws.send(message)
        return len(targets)

    async def wait_for_subscribers(self, stream: str, count: int = 1) -> None:
        """Wait until ``count`` connections are subscribed to ``stream``."""
        while sum(stream in s for s in self.connections.values()) < count:
            await self._changed.wait()

    async def abort_all(self) -> None:
        """Drop every connection without a close frame."""
        connections, self.connections = self.connections, {}
        for ws in connections:
            transport = getattr(ws, "transport", None)
            if transport is not None:
                transport.abort()
            else:
                await anyio.aclose_forcefully(ws.stream)

    async def handler(self, ws: Any) -> None:
        streams: set[str] = set()
        self.connections[ws] = streams
        try:
            while True:  # Not "async for": an async generator would outlive an abort.
                request = json.loads(await ws.recv())
                self.requests.append(request)
                reply = self._answer(request, streams)
                await ws.send(json.dumps(reply))
                self._notify()
        except Exception:
            pass
        finally:
            self.connections.pop(ws, None)
            self._notify()

    def _answer(self, request: dict[str, Any], streams: set[str]) -> dict[str, Any]:
        method, params = request.get("method"), request.get("params", [])
        if any(p.startswith("bad") for p in params):
            return {"error": {"code": 2, "msg": "Invalid stream"}, "id": request["id"]}
        if method == "SUBSCRIBE":
            streams.update(params)
        elif method == "UNSUBSCRIBE":
            streams.difference_update(params)
        return {"result": None, "id": request["id"]}

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


@asynccontextmanager
async def exchange_server() -> AsyncIterator[ExchangeServer]:
    """Run an :class:`ExchangeServer` on 127.0.0.1 with websockets' own server."""
    server = ExchangeServer()
    if sniffio.current_async_library() == "trio":
        import trio
        from websockets.trio.server import serve as trio_serve

        async with trio.open_nursery() as nursery:
            serve_here = functools.partial(trio_serve, host="127.0.0.1")
            ws_server = await nursery.start(serve_here, server.handler, 0)
            server.port = ws_server.listeners[0].socket.getsockname()[1]
            yield server
            nursery.cancel_scope.cancel()
    else:
        from websockets.asyncio.server import serve

        async with serve(server.handler, "127.0.0.1", 0) as ws_server:
            server.port = next(iter(ws_server.sockets)).getsockname()[1]
            yield server
