"""A trading bot on an exchange-style market stream, with a tiny exchange built in.

Self-contained: no server to start. Run it with::

    python examples/exchange_bot.py               # runs until Ctrl-C
    python examples/exchange_bot.py --count 20    # stops after 20 trades

The exchange runs in this process (websockets' asyncio server on a free
port of 127.0.0.1). It speaks the style of many crypto exchanges' market
streams: ``{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}``
is answered ``{"result": null, "id": 1}``, and trades arrive as
``{"stream": "btcusdt@trade", "data": {"p": "64012.50", "q": "0.0150"}}``.
Halfway through (after ``--count / 2`` trades, or 50) it drops every
connection once, without a close frame, as a crashing gateway would.

The bot subscribes to two streams with :class:`wsclient.ExchangeProtocol`,
prints the trades, and prints the reconnection: the client reconnects with
backoff and subscribes to both streams again by itself. Unlike the reference
server's channels, this protocol style keeps no history: trades published
while the bot was disconnected are not replayed, and since they carry no
position, the loss cannot even be detected (``message.position`` is None).
A bot that needs every trade resynchronises from a REST snapshot in its
``on_reconnect`` callback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import wsclient

STREAMS = ["btcusdt@trade", "ethusdt@trade"]


# The exchange: just enough of one to show the client at work.


class TinyExchange:
    """Streams of random trades; drops every connection once, after some trades."""

    def __init__(self, drop_after: int) -> None:
        self.subscribers: dict[ServerConnection, set[str]] = {}
        self.prices = {"btcusdt@trade": 64000.0, "ethusdt@trade": 3100.0}
        self.trades_sent = 0
        self.drop_after = drop_after
        self.dropped = False

    async def handler(self, ws: ServerConnection) -> None:
        """Answer SUBSCRIBE and UNSUBSCRIBE requests of one connection."""
        streams = self.subscribers[ws] = set()
        try:
            async for raw in ws:
                request = json.loads(raw)
                if request.get("method") == "SUBSCRIBE":
                    streams.update(request["params"])
                elif request.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(request["params"])
                await ws.send(json.dumps({"result": None, "id": request.get("id")}))
        except ConnectionClosed:
            pass  # Dropped by drop_all(): nothing to clean up but the entry.
        finally:
            self.subscribers.pop(ws, None)

    async def run_market(self, interval: float) -> None:
        """Publish a trade on a random stream every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            stream = random.choice(STREAMS)
            self.prices[stream] *= random.uniform(0.999, 1.001)
            price, quantity = self.prices[stream], random.random()
            trade = {"p": f"{price:.2f}", "q": f"{quantity:.4f}"}
            message = json.dumps({"stream": stream, "data": trade})
            for ws, streams in list(self.subscribers.items()):
                if stream in streams:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(message)
                        self.trades_sent += 1
            if self.trades_sent >= self.drop_after and not self.dropped:
                self.drop_all()

    def drop_all(self) -> None:
        """Reset every connection: clients see an abnormal closure (1006)."""
        self.dropped = True
        for ws in self.subscribers:
            ws.transport.abort()


# The bot: what a real one would look like, pointed at a real exchange.


def on_reconnect(event: wsclient.ReconnectEvent) -> None:
    # The client subscribed to both streams again before calling this; the
    # trades of the last event.downtime seconds are gone for good.
    print(f"reconnected after {event.downtime:.2f} s down", flush=True)


class Tally:
    """Trades printed over both streams; ``reached`` is set after ``count``."""

    def __init__(self, count: int | None) -> None:
        self.count = count
        self.printed = 0
        self.reached = asyncio.Event()

    def add_one(self) -> None:
        self.printed += 1
        if self.printed == self.count:
            self.reached.set()


async def print_trades(trades: wsclient.Subscription, tally: Tally) -> None:
    """Print the trades of one stream."""
    async for message in trades:
        # Other kinds of items (Gap markers...) come only when asked for in
        # subscribe(); exchange-style streams cannot even detect gaps.
        assert isinstance(message, wsclient.Message)
        trade = message.data  # {"p": price, "q": quantity}, as sent.
        print(f"{message.channel}: {trade['q']} at {trade['p']}", flush=True)
        tally.add_one()


async def run_bot(url: str, tally: Tally) -> None:
    client = wsclient.Client(
        url,
        # How subscriptions look on the wire: {"method": "SUBSCRIBE", ...}.
        protocol=wsclient.ExchangeProtocol(),
        on_reconnect=on_reconnect,
        backoff_initial=0.1,
        backoff_max=5,
        proxy=None,  # The exchange runs in this process: never use a proxy.
    )
    # Subscribing before the first connection opens: the client subscribes
    # on every connection, this one and each one after a reconnection.
    async with (
        client,
        client.subscribe("btcusdt@trade") as btc,
        client.subscribe("ethusdt@trade") as eth,
        asyncio.TaskGroup() as tasks,
    ):
        readers = [
            tasks.create_task(print_trades(btc, tally)),
            tasks.create_task(print_trades(eth, tally)),
        ]
        await tally.reached.wait()  # Forever without --count.
        for reader in readers:
            reader.cancel()


async def main(count: int | None) -> None:
    exchange = TinyExchange(drop_after=count // 2 if count else 50)
    tally = Tally(count)
    async with (
        serve(exchange.handler, "127.0.0.1", 0) as server,
        asyncio.TaskGroup() as tasks,
    ):
        port = next(iter(server.sockets)).getsockname()[1]
        market = tasks.create_task(exchange.run_market(interval=0.005))
        await run_bot(f"ws://127.0.0.1:{port}", tally)
        market.cancel()
    print(f"done: printed {tally.printed} trades", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A bot on an exchange-style stream.")
    parser.add_argument("--count", type=int, help="stop after N trades")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: closed on the way out.
        asyncio.run(main(args.count))
