"""Authentication: a header (static or fetched per attempt), a token in the
URL, a first message; refused credentials stop the client with
AuthenticationError after at most one retry with fresh ones; redirects never
carry credentials to another origin nor from wss:// to ws://."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import AuthenticationError, Client, ConnectionRejected, FailureKind
from wsclient.server import serve

from .utils import LONG, Recorder, fast_options

if TYPE_CHECKING:
    import ssl

    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def echo(data: object) -> str:
    return json.dumps({"type": "echo", "data": data})


async def round_trip(client: Client, data: object) -> None:
    """Send an echo and read it back: the connection works."""
    with anyio.fail_after(LONG):
        await client.send(echo(data))
        assert json.loads(await anext(aiter(client)))["data"] == data


async def stopped_with(client: Client) -> AuthenticationError:
    """Wait until the client stops; it must be with AuthenticationError."""
    with anyio.fail_after(LONG), pytest.raises(AuthenticationError) as info:
        await client.wait_connected()
    return info.value


class Tokens:
    """A token source that counts its calls, sync: what a bot's refresh does."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0

    def next(self) -> str:
        self.calls += 1
        return self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.next()}"}

    async def async_headers(self) -> dict[str, str]:
        await anyio.lowlevel.checkpoint()
        return self.headers()


class TestHandshakeAuth:
    async def test_static_header(self, server: Server) -> None:
        server.require_auth("t1")
        options = fast_options(additional_headers={"Authorization": "Bearer t1"})
        async with Client(server.url, **options) as client:
            await round_trip(client, 1)
        assert server.requests[-1].header("Authorization") == "Bearer t1"

    async def test_static_header_refused_stops_at_once(self, server: Server) -> None:
        """Static credentials refused: no retry, AuthenticationError everywhere."""
        server.require_auth("right")
        recorder = Recorder()
        options = fast_options(
            additional_headers={"Authorization": "Bearer wrong"}, **recorder.callbacks()
        )
        async with Client(server.url, **options) as client:
            error = await stopped_with(client)
            with pytest.raises(AuthenticationError):
                await anext(aiter(client))
        assert isinstance(error, wsclient.ConnectionRejected)
        assert error.failure is not None
        assert error.failure.status == 401
        assert server.counters.auth_failures == 1
        [disconnect] = recorder.of("disconnect")
        assert disconnect.error is error
        assert not disconnect.will_reconnect
        [give_up] = recorder.of("give_up")
        assert give_up.error is error

    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_header_callable_fetched_per_attempt(
        self, server: Server, kind: str
    ) -> None:
        """The headers callable runs before every attempt: a rotated token is
        picked up on the next connection."""
        server.require_auth("t1")
        tokens = Tokens("t1")
        source = tokens.headers if kind == "sync" else tokens.async_headers
        recorder = Recorder()
        options = fast_options(additional_headers=source, **recorder.callbacks())
        async with Client(server.url, **options) as c:
            await round_trip(c, 1)
            tokens.tokens = ["t2"]
            server.require_auth("t2")  # Rotation: the old token is refused now.
            await server.abort_all()
            with anyio.fail_after(LONG):
                await recorder.wait_for("reconnect")
            await round_trip(c, 2)
        assert tokens.calls == 2
        assert server.counters.auth_failures == 0

    async def test_one_retry_with_fresh_credentials(self, server: Server) -> None:
        """Refused once, then accepted with the freshly fetched token."""
        server.require_auth("fresh")
        tokens = Tokens("expired", "fresh")
        options = fast_options(additional_headers=tokens.headers)
        async with Client(server.url, **options) as client:
            await round_trip(client, 1)
        assert tokens.calls == 2
        assert server.counters.auth_failures == 1

    async def test_refused_twice_stops(self, server: Server) -> None:
        """At most one retry: a second refusal in a row stops the client."""
        server.require_auth("right")
        tokens = Tokens("wrong")
        options = fast_options(additional_headers=tokens.headers)
        async with Client(server.url, **options) as client:
            await stopped_with(client)
        assert tokens.calls == 2
        assert server.counters.auth_failures == 2

    async def test_token_in_url_from_provider(self, server: Server) -> None:
        """A URL provider is called per attempt: a token in the query, refreshed."""
        server.require_auth("q2")
        tokens = Tokens("q1", "q2")

        def provider(attempt: int, last: object) -> str:
            return f"{server.url}/?token={tokens.next()}"

        async with Client(provider, **fast_options()) as client:
            await round_trip(client, 1)
        assert tokens.calls == 2
        assert client.url.endswith("?token=***")

    async def test_auth_close_code_mid_session(self, server: Server) -> None:
        """A close with 4001 (token revoked) while connected: one reconnection
        with fresh credentials; static ones stop the client."""
        server.require_auth("t1")
        tokens = Tokens("t1")
        recorder = Recorder()
        options = fast_options(
            additional_headers=tokens.headers, **recorder.callbacks()
        )
        async with Client(server.url, **options) as c:
            await round_trip(c, 1)
            await server.close_all(4001, "token revoked")
            with anyio.fail_after(LONG):
                await recorder.wait_for("reconnect")
            await round_trip(c, 2)
        static = fast_options(additional_headers={"Authorization": "Bearer t1"})
        async with Client(server.url, **static) as client:
            await round_trip(client, 3)
            await server.close_all(4001, "token revoked")
            error = await stopped_with(client)
        assert error.failure is not None
        assert error.failure.code == 4001

    async def test_accept_then_refuse_does_not_loop(self, server: Server) -> None:
        """A server that accepts every handshake and closes with 4001 at once:
        one retry with fresh credentials, then AuthenticationError, not a
        retry per connection."""
        server.close_after_handshake(4001, "unauthorized")
        tokens = Tokens("t")
        options = fast_options(additional_headers=tokens.headers)
        async with Client(server.url, **options) as client:
            error = await stopped_with(client)
        assert error.failure is not None
        assert error.failure.code == 4001
        assert tokens.calls == 2
        assert server.counters.handshakes_completed == 2


class TestFirstMessageAuth:
    async def test_token_in_first_message(self, server: Server) -> None:
        """The auth message goes first; subscriptions follow once accepted."""
        server.require_auth("m1", via="message")
        options = fast_options(protocol=wsclient.ReferenceProtocol(), auth="m1")
        client = Client(server.url, **options)
        news = client.subscribe("news")
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.publish("news", "hello")
                assert (await anext(aiter(news))).data == "hello"
        assert server.counters.auth_failures == 0
        assert server.counters.subscribes == 1

    async def test_refused_token_stops(self, server: Server) -> None:
        server.require_auth("m1", via="message")
        recorder = Recorder()
        options = fast_options(
            protocol=wsclient.ReferenceProtocol(), auth="bad", **recorder.callbacks()
        )
        async with Client(server.url, **options) as client:
            error = await stopped_with(client)
        assert error.failure is not None
        assert error.failure.kind is FailureKind.AUTH
        assert "invalid token" in str(error)
        assert server.counters.auth_failures == 1

    async def test_auth_callable_retried_once(self, server: Server) -> None:
        server.require_auth("m2", via="message")
        tokens = Tokens("m1", "m2")

        async def token() -> str:
            return tokens.next()

        options = fast_options(protocol=wsclient.ReferenceProtocol(), auth=token)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
        assert tokens.calls == 2
        assert server.counters.auth_failures == 1

    async def test_close_without_answer_is_a_refusal(self, server: Server) -> None:
        """A server that closes with 4001 instead of answering: refused, not a
        timeout retried forever."""
        server.close_after_handshake(4001, "unauthorized")
        options = fast_options(protocol=wsclient.ReferenceProtocol(), auth="t")
        async with Client(server.url, **options) as client:
            error = await stopped_with(client)
        assert error.failure is not None
        assert error.failure.code == 4001
        assert server.counters.handshakes_completed == 1
        assert client.stats.connects == 0  # A refused attempt, not a connection.

    async def test_token_not_sent_across_origins(self, server: Server) -> None:
        """Redirected to another origin, the first message is not sent there."""
        async with serve() as other:
            server.redirect_next(1, other.url)
            options = fast_options(protocol=wsclient.ReferenceProtocol(), auth="t")
            async with Client(server.url, **options) as client:
                with anyio.fail_after(LONG), pytest.raises(ConnectionRejected) as info:
                    await client.wait_connected()
            assert other.counters.messages_received == 0
        assert "redirected to another origin" in str(info.value)

    def test_auth_needs_an_adapter_that_authenticates(self) -> None:
        with pytest.raises(ValueError, match="protocol adapter that implements"):
            Client("ws://127.0.0.1:1/", auth="t")
        with pytest.raises(ValueError, match="protocol adapter that implements"):
            Client("ws://127.0.0.1:1/", auth="t", protocol=wsclient.ExchangeProtocol())
        with pytest.raises(TypeError, match="auth must be a token"):
            Client("ws://127.0.0.1:1/", auth=5, protocol=wsclient.ReferenceProtocol())

    def test_auth_over_plain_ws_to_another_host_refused(self) -> None:
        with pytest.raises(ValueError, match="the auth credentials"):
            Client("ws://example.com/", auth="t", protocol=wsclient.ReferenceProtocol())


class TestRedirects:
    async def test_cross_origin_redirect_strips_credentials(
        self, server: Server
    ) -> None:
        """To another origin, secret-looking headers stay behind; others go."""
        headers = {
            "Authorization": "Bearer t",
            "X-Api-Key": "k",
            "Cookie": "s=1",
            "X-Trace": "keep me",
        }
        async with serve() as other:
            server.redirect_next(1, f"{other.url}/moved")
            async with Client(server.url, **fast_options(additional_headers=headers)):
                with anyio.fail_after(LONG):
                    await other.wait_for(lambda c: c.handshakes_completed == 1)
            [request] = other.requests
        assert request.path == "/moved"
        assert request.header("X-Trace") == "keep me"
        for name in ("Authorization", "X-Api-Key", "Cookie"):
            assert request.header(name) is None, name
        assert server.counters.redirects == 1

    async def test_same_origin_redirect_keeps_credentials(self, server: Server) -> None:
        server.redirect_next(1, f"{server.url}/moved")
        options = fast_options(additional_headers={"Authorization": "Bearer t"})
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
        assert server.requests[-1].path == "/moved"
        assert server.requests[-1].header("Authorization") == "Bearer t"

    async def test_no_downgrade_from_wss_to_ws(
        self, tls_server: Server, tls_client_context: ssl.SSLContext
    ) -> None:
        """A wss:// server redirecting to ws:// is not followed."""
        recorder = Recorder()
        async with serve() as plain:
            tls_server.redirect_next(1, plain.url)
            options = fast_options(
                ssl=tls_client_context,
                additional_headers={"Authorization": "Bearer t"},
                **recorder.callbacks(),
            )
            async with Client(tls_server.url, **options) as client:
                with anyio.fail_after(LONG):
                    await client.wait_connected()  # Retried: not redirected.
            assert plain.counters.connections_accepted == 0
        first: Any = recorder.of("disconnect")[0]
        assert "non-secure" in first.reason
