"""Bad arguments to public functions and methods raise TypeError or ValueError.

Never another exception, never silently accepted, and with a message that
says what to pass instead (checked with ``match=``). ``Client(...)`` options
are covered in ``test_options.py``; this file covers methods, the protocol
adapters, the public value constructors that applications build themselves
(``ExponentialJitter`` for ``wait=``, ``Verdict`` in a ``classify`` hook,
``Position``, ``Failure``), and the reference server's ``serve()`` and fault
methods.

Objects that wsclient hands out and applications do not build (events,
``Message``, ``Gap``, ``Marker``, receipts, ``Stats``, ``Subscription``,
exceptions) are out of scope; ``Subscription``'s and the receipts' methods
take no arguments.

A case marked ``xfail(strict=True)`` is a known bug in a file this test does
not own: its reason says what is wrong; fixing it turns the case into an
XPASS, which fails, so that the mark is removed with the fix.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import (
    Client,
    ExchangeProtocol,
    ExponentialJitter,
    Failure,
    FailureKind,
    Position,
    ReferenceProtocol,
    Verdict,
)
from wsclient.server import Server, serve

from .utils import LONG, fast_options

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio

URL = "ws://127.0.0.1:1/"
"""Nothing listens there; constructing a client does not connect."""


def deep(depth: int = 5000) -> list[Any]:
    """A list nested deeper than the JSON encoder can go."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def bug(reason: str) -> pytest.MarkDecorator:
    """A known bug in a file that this test does not own."""
    return pytest.mark.xfail(strict=True, reason=reason)


def case(
    id: str,
    call: Callable[..., Any],
    error: type[Exception],
    match: str,
    *marks: pytest.MarkDecorator,
) -> Any:
    return pytest.param(call, error, match, id=id, marks=marks)


async def resolve(result: Any) -> Any:
    """Await what a method returned if it is awaitable (async methods)."""
    return await result if inspect.isawaitable(result) else result


def new_client() -> Client:
    return Client(URL, proxy=None)


def on(event: Any, callback: Any) -> Any:
    return new_client().on(event, callback)


def subscribe(*args: Any, **kwargs: Any) -> Any:
    return new_client().subscribe(*args, **kwargs)


def publish_nowait(*args: Any) -> Any:
    return new_client().publish_nowait(*args)


def exchange(**kwargs: Any) -> Any:
    return ExchangeProtocol(**kwargs)


REF = ReferenceProtocol()


# Without a connection: no event loop, no socket.


NOT_RUNNING = [
    # Client.on
    case("on-unknown-event", lambda: on("connected", print), ValueError, "one of"),
    case("on-event-none", lambda: on(None, print), TypeError, "event name must be"),
    case(
        "on-event-unhashable",
        lambda: on(["connect"], print),
        TypeError,
        "event name must be",
    ),
    case("on-not-callable", lambda: on("connect", 5), TypeError, "must be callable"),
    case(
        "on-decorator-not-callable",
        lambda: new_client().on("reconnect")("print"),  # type: ignore[type-var]
        TypeError,
        "must be callable",
    ),
    # Client.subscribe
    case("sub-channel-int", lambda: subscribe(5), TypeError, "non-empty str"),
    case("sub-channel-none", lambda: subscribe(None), TypeError, "non-empty str"),
    case("sub-channel-bytes", lambda: subscribe(b"c"), TypeError, "non-empty str"),
    case("sub-channel-empty", lambda: subscribe(""), TypeError, "non-empty str"),
    case("sub-max_queue-0", lambda: subscribe("c", max_queue=0), ValueError, ">= 1"),
    case("sub-max_queue-neg", lambda: subscribe("c", max_queue=-1), ValueError, ">= 1"),
    case("sub-max_queue-str", lambda: subscribe("c", max_queue="5"), ValueError, "int"),
    case(
        "sub-max_queue-bool", lambda: subscribe("c", max_queue=True), ValueError, "int"
    ),
    case(
        "sub-max_queue-float", lambda: subscribe("c", max_queue=1.5), ValueError, "int"
    ),
    case(
        "sub-overflow-name",
        lambda: subscribe("c", overflow="drop"),
        ValueError,
        "'block', 'drop_oldest' or 'fail'",
    ),
    case(
        "sub-overflow-list",
        lambda: subscribe("c", overflow=[]),
        ValueError,
        "'block', 'drop_oldest' or 'fail'",
    ),
    case(
        "sub-gaps-name",
        lambda: subscribe("c", gaps="skip"),
        ValueError,
        "'raise' or 'marker'",
    ),
    case("sub-gaps-bool", lambda: subscribe("c", gaps=True), ValueError, "'raise' or"),
    case(
        "sub-stale-zero",
        lambda: subscribe("c", stale_after=0),
        ValueError,
        "seconds > 0, or None",
    ),
    case("sub-stale-neg", lambda: subscribe("c", stale_after=-1), ValueError, "> 0"),
    case(
        "sub-stale-nan",
        lambda: subscribe("c", stale_after=math.nan),
        ValueError,
        "> 0",
    ),
    case(
        "sub-stale-inf",
        lambda: subscribe("c", stale_after=math.inf),
        ValueError,
        "> 0",
    ),
    case(
        "sub-stale-str", lambda: subscribe("c", stale_after="5"), ValueError, "seconds"
    ),
    case(
        "sub-stale-bool",
        lambda: subscribe("c", stale_after=True),
        ValueError,
        "seconds",
    ),
    case(
        "sub-markers-str",
        lambda: subscribe("c", markers="no"),
        TypeError,
        "markers must be a bool",
    ),
    case(
        "sub-params-not-json",
        lambda: subscribe("c", token=object()),
        TypeError,
        "JSON",
    ),
    case(
        "sub-params-nan",
        lambda: subscribe("c", depth=math.nan),
        ValueError,
        "strict JSON",
    ),
    # Client.publish_nowait (Client.publish shares its checks; see below).
    case("pub-channel-int", lambda: publish_nowait(5, 1), TypeError, "non-empty str"),
    case("pub-channel-empty", lambda: publish_nowait("", 1), TypeError, "non-empty"),
    case("pub-channel-none", lambda: publish_nowait(None, 1), TypeError, "non-empty"),
    case(
        "pub-data-object",
        lambda: publish_nowait("c", object()),
        TypeError,
        "publish data must be JSON-serializable",
    ),
    case(
        "pub-data-set",
        lambda: publish_nowait("c", {1, 2}),
        TypeError,
        "JSON-serializable",
    ),
    case(
        "pub-data-nan",
        lambda: publish_nowait("c", [math.nan]),
        ValueError,
        "strict JSON",
    ),
    case(
        "pub-data-inf", lambda: publish_nowait("c", math.inf), ValueError, "strict JSON"
    ),
    case(
        "pub-data-circular",
        lambda: publish_nowait("c", circular()),
        ValueError,
        "circular",
    ),
    case(
        "pub-data-deep",
        lambda: publish_nowait("c", deep()),
        ValueError,
        "nested too deeply",
    ),
    # ReferenceProtocol builders
    case(
        "ref-subscribe-params-object",
        lambda: REF.subscribe("c", {"x": object()}, None, 1),
        TypeError,
        "subscribe params must be JSON-serializable",
    ),
    case(
        "ref-subscribe-params-key",
        lambda: REF.subscribe("c", {(1, 2): 3}, None, 1),  # type: ignore[dict-item]
        TypeError,
        "JSON-serializable",
    ),
    case(
        "ref-subscribe-params-nan",
        lambda: REF.subscribe("c", {"x": math.nan}, None, 1),
        ValueError,
        "subscribe params must be strict JSON",
    ),
    case(
        "ref-subscribe-params-deep",
        lambda: REF.subscribe("c", {"x": deep()}, None, 1),
        ValueError,
        "nested too deeply",
    ),
    case(
        "ref-publish-object",
        lambda: REF.publish("c", object(), "m", 1),
        TypeError,
        "publish data must be JSON-serializable",
    ),
    case(
        "ref-publish-nan",
        lambda: REF.publish("c", {"x": -math.inf}, "m", 1),
        ValueError,
        "publish data must be strict JSON",
    ),
    # ExchangeProtocol(...)
    case(
        "exchange-method_key-int",
        lambda: exchange(method_key=5),
        TypeError,
        "method_key must be a non-empty str",
    ),
    case(
        "exchange-method_key-empty",
        lambda: exchange(method_key=""),
        ValueError,
        "method_key must be a non-empty str",
    ),
    case(
        "exchange-subscribe_method-bytes",
        lambda: exchange(subscribe_method=b"SUBSCRIBE"),
        TypeError,
        "subscribe_method must be",
    ),
    case(
        "exchange-unsubscribe_method-none",
        lambda: exchange(unsubscribe_method=None),
        TypeError,
        "unsubscribe_method must be",
    ),
    case(
        "exchange-channel_key-empty",
        lambda: exchange(channel_key=""),
        ValueError,
        "channel_key must be",
    ),
    case(
        "exchange-data_key-list",
        lambda: exchange(data_key=["data"]),
        TypeError,
        "data_key must be",
    ),
    # Value constructors that applications build.
    case(
        "jitter-initial-negative",
        lambda: ExponentialJitter(initial=-1),
        ValueError,
        "initial",
    ),
    case(
        "jitter-initial-str",
        lambda: ExponentialJitter(initial="1"),  # type: ignore[arg-type]
        TypeError,
        "initial",
    ),
    case(
        "jitter-jitter-2",
        lambda: ExponentialJitter(jitter=2),
        ValueError,
        "jitter",
    ),
    case(
        "jitter-multiplier-half",
        lambda: ExponentialJitter(multiplier=0.5),
        ValueError,
        "multiplier",
    ),
    case(
        "verdict-delay-str",
        lambda: Verdict(retry=True, delay="5"),  # type: ignore[arg-type]
        TypeError,
        "delay",
    ),
    case(
        "verdict-retry-str",
        lambda: Verdict(retry="no"),  # type: ignore[arg-type]
        TypeError,
        "retry",
    ),
    case(
        "verdict-delay-negative",
        lambda: Verdict.again("slow down", delay=-1),
        ValueError,
        "delay",
    ),
    case(
        "position-offset-str",
        lambda: Position("e", "1"),  # type: ignore[arg-type]
        TypeError,
        "offset",
    ),
    case(
        "failure-kind-str",
        lambda: Failure("closed"),  # type: ignore[arg-type]
        TypeError,
        "FailureKind",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), NOT_RUNNING)
def test_rejects_bad_arguments(
    call: Callable[[], Any], error: type[Exception], match: str
) -> None:
    """Bad arguments raise TypeError or ValueError at the call, saying what to pass."""
    with pytest.raises(error, match=match):
        call()


def test_subscribe_twice_says_what_to_do() -> None:
    """A second subscription to the same channel is refused, saying what to do."""
    client = new_client()
    client.subscribe("c")
    with pytest.raises(ValueError, match="iterate that subscription, or unsubscribe"):
        client.subscribe("c")


def test_valid_arguments_are_accepted() -> None:
    """The boundaries of the checks above are accepted (no false refusals)."""
    client = new_client()
    assert client.on("give_up", print) is print
    client.subscribe("a", max_queue=1, overflow="drop_oldest", gaps="marker")
    client.subscribe("b", overflow=wsclient.Overflow.FAIL, stale_after=0.5)
    client.subscribe("c", markers=True, token="t", depth=[1, {"x": None}])
    client.publish_nowait("c", {"x": [1.5, None, True, "é"]})
    REF.subscribe("c", {}, Position("e", 0), 0)
    ExchangeProtocol(method_key="op", subscribe_method="sub", data_key="d")
    ExponentialJitter(0.1, 1.0, 1.0, 0.0)


# With a running client: both backends, the reference server.


RUNNING = [
    # Client.send
    case(
        "send-int",
        lambda c: c.send(5),
        TypeError,
        r"send\(\) takes str \(text\) or bytes \(binary\), got int",
    ),
    case("send-none", lambda c: c.send(None), TypeError, "takes str"),
    case("send-list", lambda c: c.send(["x"]), TypeError, "takes str"),
    case("send-dict", lambda c: c.send({"op": "x"}), TypeError, "got dict"),
    case(
        "send-too-large",
        lambda c: c.send("x" * (2**20 + 1)),
        ValueError,
        "send smaller messages or raise buffer_max_bytes",
    ),
    case(
        "send-key-unhashable",
        lambda c: c.send("x", key=["k"]),
        TypeError,
        "key must be hashable",
    ),
    # Client.flush / Client.wait_connected
    case(
        "flush-negative",
        lambda c: c.flush(timeout=-1),
        ValueError,
        "timeout",
    ),
    case(
        "flush-str",
        lambda c: c.flush(timeout="1"),
        TypeError,
        "timeout",
    ),
    case(
        "flush-nan",
        lambda c: c.flush(timeout=math.nan),
        ValueError,
        "timeout",
    ),
    case(
        "wait_connected-negative",
        lambda c: c.wait_connected(timeout=-1),
        ValueError,
        "timeout",
    ),
    case(
        "wait_connected-str",
        lambda c: c.wait_connected(timeout="1"),
        TypeError,
        "timeout",
    ),
    case(
        "wait_connected-nan",
        lambda c: c.wait_connected(timeout=math.nan),
        ValueError,
        "timeout",
    ),
    # Client.publish / publish_nowait on a running client
    case("publish-channel-int", lambda c: c.publish(5, 1), TypeError, "non-empty str"),
    case("publish-channel-empty", lambda c: c.publish("", 1), TypeError, "non-empty"),
    case(
        "publish-data-object",
        lambda c: c.publish("c", object()),
        TypeError,
        "publish data must be JSON-serializable",
    ),
    case(
        "publish-data-nan",
        lambda c: c.publish("c", math.nan),
        ValueError,
        "strict JSON",
    ),
    case(
        "publish_nowait-data-bytes",
        lambda c: c.publish_nowait("c", b"x"),
        TypeError,
        "JSON-serializable",
    ),
    # Client.on and Client.subscribe while running
    case("on-running", lambda c: c.on("disconnect", 5), TypeError, "callable"),
    case(
        "subscribe-running", lambda c: c.subscribe("e", max_queue=0), ValueError, ">= 1"
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), RUNNING)
async def test_running_client_rejects_bad_arguments(
    server: Server,
    call: Callable[[Client], Any],
    error: type[Exception],
    match: str,
) -> None:
    """A connected client refuses bad arguments, and stays connected."""
    options = fast_options(protocol=ReferenceProtocol())
    async with Client(server.url, **options) as client:
        with anyio.fail_after(LONG):
            await client.wait_connected()
        client.subscribe("d")  # Before the call: a subscription to keep.
        with anyio.fail_after(LONG), pytest.raises(error, match=match):
            await resolve(call(client))
        assert client.state is wsclient.ClientState.CONNECTED
        with anyio.fail_after(LONG):
            assert await client.publish("ok", 1) == 1  # Still works.


# The reference server.


def refuse(*args: Any, **kwargs: Any) -> Callable[[Server], Any]:
    return lambda server: server.refuse_next(*args, **kwargs)


SERVER = [
    # refuse_next
    case("refuse-n-negative", refuse(-1), ValueError, "n must be an integer >= 0"),
    case("refuse-n-float", refuse(1.5), TypeError, "n must be an integer"),
    case("refuse-n-bool", refuse(True), TypeError, "n must be an integer"),
    case("refuse-status-200", refuse(1, 200), ValueError, "from 400 to 599"),
    case("refuse-status-600", refuse(1, 600), ValueError, "from 400 to 599"),
    case("refuse-status-str", refuse(1, "503"), TypeError, "from 400 to 599"),
    case("refuse-retry-negative", refuse(1, 503, -1), ValueError, ">= 0 seconds"),
    case("refuse-retry-float", refuse(1, 503, 1.5), TypeError, "an int .seconds."),
    case(
        "refuse-retry-crlf",
        refuse(1, 503, "1\r\nX-Injected: 1"),
        ValueError,
        "printable ASCII",
    ),
    case("refuse-retry-empty", refuse(1, 503, ""), ValueError, "non-empty"),
    case("refuse-body-bytes", refuse(1, 503, None, b"x"), TypeError, "body must be"),
    # close_after_handshake
    case(
        "close-after-1006",
        lambda s: s.close_after_handshake(1006),
        ValueError,
        "use abort_all",
    ),
    case(
        "close-after-str",
        lambda s: s.close_after_handshake("1000"),
        TypeError,
        "close code allowed on the wire",
    ),
    case(
        "close-after-reason-int",
        lambda s: s.close_after_handshake(1000, 5),
        TypeError,
        "reason must be a str",
    ),
    case(
        "close-after-reason-long",
        lambda s: s.close_after_handshake(1000, "x" * 124),
        ValueError,
        "123 bytes",
    ),
    # close_all (async)
    case("close_all-1005", lambda s: s.close_all(1005), ValueError, "allowed on the"),
    case("close_all-5000", lambda s: s.close_all(5000), ValueError, "3000-4999"),
    case("close_all-bool", lambda s: s.close_all(True), TypeError, "close code"),
    case(
        "close_all-reason-bytes",
        lambda s: s.close_all(1000, b"bye"),
        TypeError,
        "reason must be a str",
    ),
    # set_latency, stall
    case(
        "latency-negative", lambda s: s.set_latency(-1), ValueError, "finite and >= 0"
    ),
    case("latency-nan", lambda s: s.set_latency(math.nan), ValueError, "finite"),
    case("latency-inf", lambda s: s.set_latency(math.inf), ValueError, "finite"),
    case("latency-str", lambda s: s.set_latency("1"), TypeError, "must be a number"),
    case("latency-bool", lambda s: s.set_latency(True), TypeError, "must be a number"),
    case("stall-none", lambda s: s.stall(None), TypeError, "stalled must be a bool"),
    case("stall-int", lambda s: s.stall(1), TypeError, "stalled must be a bool"),
    # broadcast (async)
    case("broadcast-int", lambda s: s.broadcast(5), TypeError, "str or bytes"),
    case("broadcast-none", lambda s: s.broadcast(None), TypeError, "str or bytes"),
    # configure_history, expire_history
    case(
        "history-size-negative",
        lambda s: s.configure_history(size=-1),
        ValueError,
        "size must be an integer >= 0",
    ),
    case(
        "history-size-str",
        lambda s: s.configure_history(size="10"),
        TypeError,
        "size must be an integer",
    ),
    case(
        "history-size-bool",
        lambda s: s.configure_history(size=True),
        TypeError,
        "size must be an integer",
    ),
    case(
        "history-ttl-zero",
        lambda s: s.configure_history(ttl=0),
        ValueError,
        "ttl must be a number of seconds > 0",
    ),
    case(
        "history-ttl-nan",
        lambda s: s.configure_history(ttl=math.nan),
        ValueError,
        "seconds > 0",
    ),
    case(
        "history-ttl-str",
        lambda s: s.configure_history(ttl="1"),
        TypeError,
        "seconds > 0",
    ),
    case(
        "expire-negative",
        lambda s: s.expire_history(-1),
        ValueError,
        "finite number >= 0",
    ),
    case("expire-nan", lambda s: s.expire_history(math.nan), ValueError, "finite"),
    case("expire-str", lambda s: s.expire_history("0"), TypeError, "finite number"),
    # channel_info
    case("info-empty", lambda s: s.channel_info(""), ValueError, "non-empty str"),
    case("info-long", lambda s: s.channel_info("x" * 201), ValueError, "at most 200"),
    case("info-int", lambda s: s.channel_info(5), TypeError, "non-empty str"),
    # publish (async)
    case("publish-channel-empty", lambda s: s.publish("", 1), ValueError, "non-empty"),
    case("publish-channel-bytes", lambda s: s.publish(b"c", 1), TypeError, "str"),
    case(
        "publish-msg_id-int",
        lambda s: s.publish("c", 1, msg_id=1),
        TypeError,
        "msg_id must be a str of 1 to 200",
    ),
    case(
        "publish-msg_id-long",
        lambda s: s.publish("c", 1, msg_id="m" * 201),
        ValueError,
        "msg_id must be",
    ),
    case(
        "publish-data-object",
        lambda s: s.publish("c", object()),
        TypeError,
        "data must be JSON-serializable",
    ),
    # Regression: NaN was published as is, an invalid JSON frame that clients
    # could not parse.
    case(
        "publish-data-nan",
        lambda s: s.publish("c", {"x": math.nan}),
        ValueError,
        "data must be JSON-serializable",
    ),
    # Regression: RecursionError escaped.
    case(
        "publish-data-deep",
        lambda s: s.publish("c", deep()),
        ValueError,
        "nested too deeply",
    ),
    # wait_for (async)
    case(
        "wait_for-not-callable",
        lambda s: s.wait_for(5),
        TypeError,
        "predicate must be",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), SERVER)
async def test_server_rejects_bad_arguments(
    server: Server,
    call: Callable[[Server], Any],
    error: type[Exception],
    match: str,
) -> None:
    """Fault and channel methods refuse bad arguments and change nothing."""
    before = server.counters
    with anyio.fail_after(LONG), pytest.raises(error, match=match):
        await resolve(call(server))
    assert server.counters == before
    assert server.channel_info("c").offset == 0  # Nothing was published.


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"host": None}, TypeError, "host must be", id="host-none"),
        pytest.param({"host": ""}, TypeError, "non-empty str", id="host-empty"),
        pytest.param({"port": True}, TypeError, "port must be an int", id="port-bool"),
        pytest.param({"port": "80"}, TypeError, "port must be an int", id="port-str"),
        pytest.param({"port": -1}, ValueError, "0 .any free port.", id="port-neg"),
        pytest.param({"port": 70000}, ValueError, "to 65535", id="port-big"),
        pytest.param({"max_size": 0}, ValueError, ">= 1 byte", id="max_size-0"),
        pytest.param({"max_size": "1"}, TypeError, "int or None", id="max_size-str"),
        pytest.param({"max_size": True}, TypeError, "int or None", id="max_size-bool"),
    ],
)
async def test_serve_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """serve() refuses a bad host, port or max_size before binding anything."""
    with anyio.fail_after(LONG), pytest.raises(error, match=match):
        async with serve(**kwargs):
            pass


def test_failure_kind_is_the_documented_type() -> None:
    """Failure takes a FailureKind; the valid form is accepted."""
    assert Failure(FailureKind.CLOSED, code=1006).code == 1006
