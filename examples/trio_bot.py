"""The bot of ``bot.py``, on trio: the same client API in a nursery.

Needs trio (``pip install 'wsclient[trio]'``). Start the reference server in
one terminal::

    python -m wsclient.server --port 8765

and the bot in another::

    python examples/trio_bot.py                # runs until Ctrl-C
    python examples/trio_bot.py --count 3      # stops after 3 replies
    python examples/trio_bot.py --url ws://example.com:8765 --interval 0.2

The bot sends an echo command every second (``--interval``) and prints each
reply. Stop the server with Ctrl-C and start it again while the bot runs: the
bot prints the disconnection, retries with backoff, and carries on.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

import wsclient


def on_connect(event: wsclient.ConnectEvent) -> None:
    # Callbacks receive an event object and may be plain functions...
    print(f"connected to {event.url} (attempt {event.attempt})", flush=True)


def on_disconnect(event: wsclient.DisconnectEvent) -> None:
    if event.was_connected:
        reason = f" ({event.reason})" if event.reason else ""
        text = f"disconnected: code {event.code}{reason}"
    else:  # An attempt failed before the connection opened.
        text = f"could not connect: {event.failure}"
    if event.will_reconnect:
        text += f"; reconnecting in {event.delay:.2f} s"
    print(text, flush=True)


async def say_hello(client: wsclient.Client, interval: float) -> None:
    """Send ``hello 1``, ``hello 2``... as echo commands, one per ``interval``."""
    n = 0
    while True:  # Until the nursery is cancelled.
        n += 1
        # While the client is reconnecting, send() buffers the message; the
        # buffer is written in order on the next connection. Once written, a
        # send is at-most-once: a message in flight when the link breaks may
        # be lost (the returned receipt's outcome says what became of it).
        await client.send(json.dumps({"type": "echo", "data": f"hello {n}"}))
        await trio.sleep(interval)


async def main(url: str, count: int | None, interval: float) -> None:
    client = wsclient.Client(
        url,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        # Retry quickly at first; back off up to 10 s while the server is down.
        backoff_initial=0.5,
        backoff_max=10,
    )

    # ... or coroutines, registered with a decorator as well as with kwargs.
    @client.on("reconnect")
    async def on_reconnect(event: wsclient.ReconnectEvent) -> None:
        # The server forgot about us: a real bot would subscribe again here.
        print(f"reconnected after {event.downtime:.2f} s down", flush=True)

    received = 0
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(say_hello, client, interval)
        # One loop across reconnections: it waits while the link is down.
        async for message in client:
            print(f"received: {json.loads(message)['data']}", flush=True)
            received += 1
            if received == count:
                break
        nursery.cancel_scope.cancel()
    print(f"done: received {received} messages", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A small wsclient bot on trio.")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--count", type=int, help="stop after N replies")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds")
    args = parser.parse_args()
    # Nurseries wrap errors in exception groups, hence except*.
    try:
        trio.run(main, args.url, args.count, args.interval)
    except* KeyboardInterrupt:
        pass  # Ctrl-C: the client was closed on the way out.
    except* wsclient.ClientStopped as group:
        # The client stopped for good: a fatal answer such as HTTP 403, or
        # max_attempts / max_downtime ran out. It will not recover by itself.
        sys.exit(f"stopped: {group.exceptions[0]}")
