"""The exchange-style adapter against a small server of that style."""

from __future__ import annotations

import anyio
import pytest

import wsclient
from wsclient import Client, ExchangeProtocol, SubscriptionState

from .exchange_server import exchange_server
from .utils import LONG, Recorder, fast_options

pytestmark = pytest.mark.anyio


async def test_subscribe_and_receive(anyio_backend: object) -> None:
    """Publications on a subscribed stream arrive as Message.data."""
    async with exchange_server() as server:
        options = fast_options(protocol=ExchangeProtocol())
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                async with client.subscribe("btcusdt@trade") as trades:
                    await server.wait_for_subscribers("btcusdt@trade")
                    await server.publish("btcusdt@trade", {"p": "1.0"})
                    message = await anext(aiter(trades))
                    assert trades.state is SubscriptionState.ACTIVE
        assert message.data == {"p": "1.0"}
        assert message.channel == "btcusdt@trade"
        assert message.position is None
        methods = [r["method"] for r in server.requests]
        assert methods == ["SUBSCRIBE", "UNSUBSCRIBE"]


async def test_resubscribes_once_per_connection(anyio_backend: object) -> None:
    """After each reconnection, exactly one SUBSCRIBE per subscription."""
    recorder = Recorder()
    async with exchange_server() as server:
        options = fast_options(protocol=ExchangeProtocol(), **recorder.callbacks())
        async with Client(server.url, **options) as client:
            a = client.subscribe("a@trade")
            b = client.subscribe("b@trade")
            with anyio.fail_after(LONG):
                for n in range(3):
                    await server.wait_for_subscribers("b@trade")
                    await server.abort_all()
                    await recorder.wait_for("reconnect", n + 1)
                await server.publish("a@trade", 1)
                assert (await anext(aiter(a))).data == 1
        subscribes = [
            r["params"][0] for r in server.requests if r["method"] == "SUBSCRIBE"
        ]
        assert sorted(subscribes) == ["a@trade"] * 4 + ["b@trade"] * 4
        assert b.state is SubscriptionState.CLOSED


async def test_refused_subscription(anyio_backend: object) -> None:
    """A server refusal raises SubscriptionError from the iterator."""
    async with exchange_server() as server:
        options = fast_options(protocol=ExchangeProtocol())
        async with Client(server.url, **options) as client:
            bad = client.subscribe("bad@stream")
            with (
                anyio.fail_after(LONG),
                pytest.raises(wsclient.SubscriptionError, match="Invalid"),
            ):
                await anext(aiter(bad))
        assert bad.state is SubscriptionState.FAILED


async def test_other_messages_reach_the_client_stream(anyio_backend: object) -> None:
    """Messages that are not publications go to async for on the client."""
    async with exchange_server() as server:
        options = fast_options(protocol=ExchangeProtocol())
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send(
                    '{"method": "LIST_SUBSCRIPTIONS", "params": [], "id": 99}'
                )
                assert await anext(aiter(client)) == '{"result": null, "id": 99}'
