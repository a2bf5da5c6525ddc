"""Subscriptions that survive reconnections, on the reference server's channels.

Start the reference server in one terminal::

    python -m wsclient.server --port 8765

and the subscriber in another::

    python examples/subscriber.py                 # runs until Ctrl-C
    python examples/subscriber.py --count 20      # stops after 20 messages
    python examples/subscriber.py --url ws://example.com:8765 --interval 0.1

It subscribes to two channels, ``trades.BTC`` and ``trades.ETH``, and prints
every message with its position in the channel's history. The reference
server publishes only what someone publishes, so the example is its own
publisher too: a task sends a ``publish`` command every ``--interval``
seconds, on each channel in turn.

Kill the connection while it runs (stop the server with Ctrl-C and start it
again quickly, or call ``server.abort_all()`` from a test): the client
reconnects, subscribes again from the last position it delivered, and the
server replays what was published meanwhile, so nothing is lost or repeated.
When the server cannot replay (its history was truncated, or it restarted
and lost it, as a new ``python -m wsclient.server`` does), the subscription
reports the gap: ``trades.BTC`` raises :exc:`wsclient.MessagesLost`, which is
the default, and ``trades.ETH`` yields a :class:`wsclient.Gap` marker in its
stream, which is the alternative (``gaps="marker"``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys

import wsclient

CHANNELS = ["trades.BTC", "trades.ETH"]


class Quota:
    """Counts the messages of every channel; ``reached`` is set after ``count``."""

    def __init__(self, count: int | None) -> None:
        self.count = count
        self.received = 0
        self.reached = asyncio.Event()

    def add_one(self) -> None:
        self.received += 1
        if self.received == self.count:
            self.reached.set()


def on_reconnect(event: wsclient.ReconnectEvent) -> None:
    # By now the subscriptions were restored: no need to subscribe again here.
    print(f"reconnected after {event.downtime:.2f} s down", flush=True)


async def publish(client: wsclient.Client, interval: float) -> None:
    """Publish a trade every ``interval`` seconds, on each channel in turn."""
    for n, channel in enumerate(itertools.cycle(CHANNELS), start=1):
        trade = {"n": n, "price": round(random.uniform(99, 101), 2)}
        # That is how a client publishes on the reference server. While the
        # client reconnects, send() buffers the command; the buffer is written
        # in order once the subscriptions are restored. A plain send is
        # at-most-once (client.publish() is the acknowledged way). Without an
        # "id" the server sends no ack (acks would go to "async for message in
        # client", which nothing reads here).
        command = {"type": "publish", "channel": channel, "data": trade}
        await client.send(json.dumps(command))
        await asyncio.sleep(interval)


async def consume(subscription: wsclient.Subscription, quota: Quota) -> None:
    """Print the messages of one subscription, and the gaps in them."""
    while True:
        try:
            async for item in subscription:
                if isinstance(item, wsclient.Gap):
                    # gaps="marker": the gap comes in the stream, where it
                    # happened, and iteration simply goes on.
                    print(f"gap (marker): {item}", flush=True)
                elif isinstance(item, wsclient.Message):
                    if quota.reached.is_set():
                        return  # --count messages printed (a burst may overshoot).
                    # Position: (epoch, offset). The offset numbers the
                    # channel's publications 1, 2, 3...; the epoch names the
                    # history they belong to, which changes if the server
                    # loses it.
                    position = item.position
                    where = f"#{position.offset}" if position else "#?"
                    print(f"{item.channel} {where}: {item.data}", flush=True)
                    quota.add_one()
            return  # Unsubscribed, or the client was closed.
        except wsclient.MessagesLost as lost:
            # gaps="raise" (the default): the iterator raised, which ends
            # "async for", but the subscription is fine: iterate it again to
            # go on after the gap. lost.first and lost.last give the range.
            print(f"gap (MessagesLost): {lost}", flush=True)


async def main(url: str, count: int | None, interval: float) -> None:
    client = wsclient.Client(
        url,
        # How subscribe/unsubscribe/publications look on the wire: here, the
        # reference server's protocol, which can resume from a position.
        protocol=wsclient.ReferenceProtocol(),
        on_reconnect=on_reconnect,
        backoff_initial=0.5,
        backoff_max=10,
    )
    quota = Quota(count)
    # Leaving a subscription's "async with" unsubscribes; leaving the client's
    # closes the connection. On every connection, the client subscribes before
    # it reports itself connected and lets send() through, so subscribing
    # first, as here, means the first publications are not missed.
    async with (
        client,
        client.subscribe("trades.BTC") as btc,  # gaps="raise", the default.
        client.subscribe("trades.ETH", gaps="marker") as eth,
        asyncio.TaskGroup() as tasks,
    ):
        jobs = [
            tasks.create_task(consume(btc, quota)),
            tasks.create_task(consume(eth, quota)),
            tasks.create_task(publish(client, interval)),
        ]
        await quota.reached.wait()  # Forever without --count.
        for job in jobs:
            job.cancel()
    print(f"done: received {quota.received} messages", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Subscribe to two channels.")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--count", type=int, help="stop after N messages in total")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between publications"
    )
    args = parser.parse_args()
    # Task groups wrap errors in exception groups, hence except*.
    try:
        asyncio.run(main(args.url, args.count, args.interval))
    except* KeyboardInterrupt:
        pass  # Ctrl-C: the client was closed on the way out.
    except* wsclient.ClientStopped as group:
        # The client stopped for good (a fatal answer, or the stop strategy
        # ran out); the subscriptions' iterators raised it too.
        sys.exit(f"stopped: {group.exceptions[0]}")
