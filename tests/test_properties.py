"""Random and malformed input never breaks the adapters or the server's parser.

A hostile peer controls what these functions read: a protocol adapter's
``route()`` sees whatever the server sends, and the reference server's
``interpret()`` whatever a client sends. Hypothesis feeds them arbitrary text
and bytes, arbitrary JSON, and near-valid messages (the right ``type`` with
wrong field types, huge integers, NaN, deep nesting, very long strings), and
checks that the answer is always well formed. The builders are checked the
other way round: what an adapter sends, the server understands.

Runs are derandomized and use no example database, so they are the same on
every machine and every run.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import wsclient
from wsclient import (
    Acked,
    ExchangeProtocol,
    Position,
    Publication,
    ReferenceProtocol,
    Subscribed,
    SubscribeFailed,
    Unsubscribed,
)
from wsclient._adapters.base import json_object
from wsclient._adapters.reference import MAX_OFFSET as CLIENT_MAX_OFFSET
from wsclient.server import _wire
from wsclient.server._channels import Resume

CHANNEL_COMMANDS = (_wire.Subscribe, _wire.Unsubscribe, _wire.Publish)

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)

ERROR_REPLY_BOUND = 2 * _wire.MAX_ECHO_LENGTH + 300
"""Longest error reply: the echoed channel and id, plus the type and the
problem, which is one of the server's own short sentences."""


# Checking results.


def strict_loads(text: str | bytes) -> Any:
    """Parse strict JSON: no NaN, no infinities, no numbers beyond a double."""

    def reject(token: str) -> float:
        raise AssertionError(f"{token} in a reply: not strict JSON: {text!r:.200}")

    def finite(token: str) -> float:
        value = float(token)
        assert math.isfinite(value), f"{token} overflows a double"
        return value

    # The checks run deeper in the stack than the code under test did, so
    # they get more room: a reply nested just below the limit must parse here.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 200)
    try:
        return json.loads(text, parse_constant=reject, parse_float=finite)
    finally:
        sys.setrecursionlimit(limit)


def is_strict_json(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def is_int(value: object) -> bool:
    """An int that is not a bool, as JSON means it."""
    return isinstance(value, int) and not isinstance(value, bool)


def optional(value: object, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def optional_int(value: object) -> bool:
    return value is None or is_int(value)


def check_routed(routed: object, *, reference: bool) -> None:
    """``routed`` is None or a routed object whose fields have the documented types."""
    if routed is None:
        return
    if isinstance(routed, Publication):
        assert isinstance(routed.channel, str)
        assert optional(routed.epoch, str)
        assert optional_int(routed.offset)
        if reference:  # A position is whole and plausible, or absent.
            assert (routed.epoch is None) == (routed.offset is None)
            assert routed.offset is None or 0 <= routed.offset <= CLIENT_MAX_OFFSET
    elif isinstance(routed, Subscribed):
        assert optional_int(routed.request_id)
        assert optional(routed.channel, str)
        assert optional(routed.epoch, str)
        assert optional_int(routed.offset)
        assert optional(routed.recovered, bool)
        assert optional(routed.reason, str)
        if routed.missing is not None:
            first, last = routed.missing
            assert is_int(first)
            assert is_int(last)
            assert 0 <= first <= last <= CLIENT_MAX_OFFSET
        if routed.offset is not None:
            assert 0 <= routed.offset <= CLIENT_MAX_OFFSET
    elif isinstance(routed, SubscribeFailed):
        assert optional_int(routed.request_id)
        assert isinstance(routed.error, str)
        assert optional(routed.channel, str)
    elif isinstance(routed, Unsubscribed):
        assert optional_int(routed.request_id)
        assert optional(routed.channel, str)
    elif isinstance(routed, Acked):
        assert optional_int(routed.request_id)
        assert optional_int(routed.offset)
        assert isinstance(routed.duplicate, bool)
        if reference and routed.offset is not None:
            assert 0 <= routed.offset <= CLIENT_MAX_OFFSET
    else:
        raise AssertionError(f"route() returned {routed!r}, not a Routed")


def check_error_text(routed: object, message: object) -> None:
    """A refusal's error is the server's own str, or a short description."""
    if isinstance(routed, SubscribeFailed):
        assert isinstance(message, str)
        assert len(routed.error) <= max(len(message), 200)


def check_scalar_tag(tag: dict[str, Any]) -> None:
    assert set(tag) <= {"id"}
    if tag:
        assert tag["id"] is None or isinstance(tag["id"], str | int | float | bool)
        strict_loads(_wire.dumps(tag))


def check_action(action: object) -> None:
    """``action`` is None (echo) or a well-formed action; replies are strict JSON."""
    if action is None:
        return
    if isinstance(action, _wire.Reply | _wire.Broadcast):
        reply = strict_loads(action.text)
        assert isinstance(reply, dict)
        assert isinstance(reply.get("type"), str)
        if reply["type"] in ("error", "subscribe_error", "unsubscribe_error"):
            assert isinstance(reply["error"], str)
            assert len(action.text) <= ERROR_REPLY_BOUND, action.text[:200]
    elif isinstance(action, _wire.StreamJob):
        assert type(action.count) is int
        assert 0 <= action.count <= _wire.MAX_STREAM_COUNT
        assert type(action.size) is int
        assert 0 <= action.size <= _wire.MAX_STREAM_SIZE
    elif isinstance(action, CHANNEL_COMMANDS):
        assert _wire.channel_problem(action.channel) is None
        check_scalar_tag(action.tag)
        strict_loads(_wire.channel_reply("x", action.channel, action.tag, error="e"))
        if isinstance(action, _wire.Subscribe) and action.since is not None:
            epoch, offset = action.since
            assert isinstance(epoch, str)
            assert type(offset) is int
            assert 0 <= offset <= _wire.MAX_OFFSET
        if isinstance(action, _wire.Subscribe):
            resume = Resume("e", 3, False, "truncated", (1, 2))
            strict_loads(_wire.subscribed(action, resume))
        if isinstance(action, _wire.Publish):
            strict_loads(action.data_json)
            strict_loads(_wire.pub_frame(action.channel, "e", 1, action.data_json))
            if action.msg_id is not None:
                assert _wire.msg_id_problem(action.msg_id) is None
    else:
        raise AssertionError(f"interpret() returned {action!r}, not an Action")


# Strategies.

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included.
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""JSON values as Python's json module accepts them, NaN and infinities included."""

FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Strict JSON values, which survive a round trip unchanged."""


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


FRAGMENTS = st.one_of(
    JSON_VALUES.map(json.dumps),  # NaN comes out as NaN: Python's json allows it.
    st.sampled_from(
        [
            "NaN",
            "-Infinity",
            "Infinity",
            "1e400",
            "-1e400",
            "1" * 5000,  # More digits than Python parses into an int.
            "-0",
            "1.0",
            "true",
            "null",
            "{}",
            "[]",
            str(2**53),
            str(2**53 + 1),
            str(2**64),
            "-1",
            '"x"',
            '{"epoch": "e", "offset": 1}',
            '{"epoch": 1, "offset": "1"}',
            '{"msg": 5, "code": []}',
        ]
    ),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.integers(min_value=0, max_value=200_000).map(lambda n: json.dumps("x" * n)),
    st.one_of(
        st.integers(min_value=1, max_value=40),
        st.integers(min_value=900, max_value=1100),
        st.just(5000),
    ).map(nested),
    st.lists(st.integers(min_value=-2, max_value=2**54), max_size=3).map(json.dumps),
)
"""JSON text for one field: valid or not, at the limits of the parser, or huge."""


@st.composite
def near_valid(draw: st.DrawFn, kinds: list[str], keys: list[str]) -> str:
    """A JSON object with a known ``type`` (usually) and junk in known fields."""
    parts: dict[str, str] = {}
    if draw(st.integers(min_value=0, max_value=9)):
        parts["type"] = json.dumps(draw(st.sampled_from(kinds)))
    else:
        parts["type"] = draw(FRAGMENTS)
    for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))):
        parts[key] = draw(FRAGMENTS)
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in parts.items()) + "}"


REFERENCE_MESSAGES = near_valid(
    [
        *("pub", "subscribed", "subscribe_error", "unsubscribed", "unsubscribe_error"),
        *("ack", "error", "echo", "Pub", ""),
    ],
    [
        *("channel", "epoch", "offset", "data", "id", "recovered", "reason"),
        *("missing", "error", "duplicate", "since"),
    ],
)
EXCHANGE_MESSAGES = near_valid(
    ["SUBSCRIBE", "x"],
    ["stream", "data", "id", "error", "result", "method", "params", "msg"],
)
SERVER_COMMANDS = near_valid(
    [
        *("echo", "ping", "broadcast", "stream", "subscribe", "unsubscribe"),
        *("publish", "pub", "ack", "__class__", ""),
    ],
    ["data", "id", "count", "size", "channel", "since", "msg_id"],
)
ANY_MESSAGE = st.one_of(
    st.text(),
    st.binary(),
    JSON_VALUES.map(json.dumps),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)

CHANNELS = st.text(min_size=1, max_size=_wire.MAX_CHANNEL_LENGTH)
POSITIONS = st.builds(
    Position, st.text(max_size=40), st.integers(min_value=0, max_value=_wire.MAX_OFFSET)
)
REQUEST_IDS = st.integers(min_value=0, max_value=2**63)
RESERVED = {"type", "channel", "id", "since"}
PARAMS = st.dictionaries(
    st.text(max_size=10).filter(lambda key: key not in RESERVED),
    FINITE_JSON,
    max_size=3,
)


# The adapters' route().


@PROPERTY
@given(ANY_MESSAGE | REFERENCE_MESSAGES)
@example('{"type": []}')  # Unhashable type: raised TypeError.
@example('{"type": {"pub": 1}, "channel": "c"}')
@example('{"type": "subscribe_error", "error": ' + nested(5000) + "}")
@example('{"type": "ack", "id": 1, "offset": -5}')  # Implausible: no offset.
def test_reference_route_never_raises(message: str | bytes) -> None:
    """ReferenceProtocol.route returns None or a well-typed routed object."""
    routed = ReferenceProtocol().route(message)
    check_routed(routed, reference=True)
    check_error_text(routed, message)
    if isinstance(message, bytes):
        assert routed is None  # Binary frames are never protocol messages.


@PROPERTY
@given(ANY_MESSAGE | EXCHANGE_MESSAGES)
@example('{"id": 1, "error": ' + json.dumps([[["x" * 10_000]]]) + "}")
@example('{"id": 1, "error": {"msg": ' + nested(900) + "}}")
def test_exchange_route_never_raises(message: str | bytes) -> None:
    """ExchangeProtocol.route returns None or a well-typed routed object."""
    routed = ExchangeProtocol().route(message)
    check_routed(routed, reference=False)
    check_error_text(routed, message)
    if isinstance(message, bytes):
        assert routed is None


def loads_object(message: str | bytes) -> Any:
    """What json_object() must return: json.loads() for text holding an object."""
    if not isinstance(message, str) or not message.startswith("{"):
        return None
    try:
        value = json.loads(message)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@PROPERTY
@given(
    ANY_MESSAGE
    | REFERENCE_MESSAGES
    | st.tuples(JSON_VALUES.map(json.dumps), st.text(" \t\n\r,}]x0")).map("".join)
)
@example('{"a": 1}  \n')  # Trailing whitespace is valid JSON.
@example('{"a": 1} x')  # Trailing data is not.
@example('{"a": 1}{}')
@example('{"a": NaN, "b": -Infinity}')
@example('{"a": "\x01"}')  # A raw control character: strict JSON refuses it.
@example('{"a": [1, 2}')
@example("{")
def test_json_object_parses_as_json_loads(message: str | bytes) -> None:
    """json_object() (the scanner without json.loads' wrapper) accepts and
    refuses exactly what json.loads does, with the same value."""
    expected = loads_object(message)
    actual = json_object(message)
    if expected is None:
        assert actual is None
    else:
        # NaN != NaN: compare the JSON text of both.
        assert json.dumps(actual) == json.dumps(expected)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param('{{"type": "pub", "channel": "c", "data": {}}}', id="ref-data"),
        pytest.param('{{"type": "subscribe_error", "error": {}}}', id="ref-error"),
        pytest.param('{{"type": "ack", "id": {}}}', id="ref-id"),
        pytest.param('{{"id": 1, "error": {}}}', id="exchange-error"),
        pytest.param('{{"stream": "s", "data": {}}}', id="exchange-data"),
    ],
)
def test_route_survives_every_nesting_depth(wrap: str) -> None:
    """No depth of nesting makes route() raise, up to past the parser's limit."""
    adapters = (ReferenceProtocol(), ExchangeProtocol())
    for depth in range(0, sys.getrecursionlimit() + 20, 7):
        message = wrap.format(nested(depth))
        for adapter in adapters:
            check_routed(adapter.route(message), reference=adapter is adapters[0])


def test_route_describes_a_hostile_error_briefly() -> None:
    """A refusal whose error is not a str is described in a few dozen characters."""
    huge = json.dumps({"code": 1, "detail": ["x" * 100_000] * 3})
    for adapter, message in (
        (
            ReferenceProtocol(),
            f'{{"type": "subscribe_error", "id": 1, "error": {huge}}}',
        ),
        (ExchangeProtocol(), f'{{"id": 1, "error": {huge}}}'),
    ):
        routed = adapter.route(message)
        assert isinstance(routed, SubscribeFailed)
        assert routed.request_id == 1
        assert "code" in routed.error
        assert len(routed.error) < 300


# The reference server's interpret().


@PROPERTY
@given(st.text() | SERVER_COMMANDS)
@example('{"type": "echo", "data": NaN}')  # Was echoed back as invalid JSON.
@example('{"type": "ping", "id": 1e400}')  # Was answered with Infinity.
@example('{"type": "publish", "channel": "c", "data": [-Infinity]}')
@example('{"type": "subscribe", "channel": ' + json.dumps("x" * 100_000) + "}")
@example('{"type": "publish", "id": ' + json.dumps("i" * 100_000) + "}")
@example('{"type": "subscribe", "channel": ' + json.dumps([["x" * 100_000]]) + "}")
def test_interpret_never_raises(text: str) -> None:
    """interpret() returns None or a well-formed action; replies are strict JSON."""
    check_action(_wire.interpret(text))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param('{{"type": "echo", "data": {}}}', id="echo"),
        pytest.param('{{"type": "ping", "id": 1, "x": {}}}', id="ping"),
        pytest.param('{{"type": "broadcast", "data": {}}}', id="broadcast"),
        pytest.param('{{"type": "subscribe", "channel": {}}}', id="subscribe"),
        pytest.param('{{"type": "unsubscribe", "channel": {}}}', id="unsubscribe"),
        pytest.param('{{"type": "publish", "channel": "c", "data": {}}}', id="pub"),
        pytest.param('{{"type": "publish", "channel": {}}}', id="pub-channel"),
    ],
)
def test_interpret_survives_every_nesting_depth(wrap: str) -> None:
    """No depth of nesting makes interpret() raise.

    Regression: JSON nested just below the parser's limit parsed, then failed
    to serialize again with RecursionError, which crashed the connection.
    """
    for depth in range(sys.getrecursionlimit() + 20):
        check_action(_wire.interpret(wrap.format(nested(depth))))


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "echo", "data": NaN}',
        '{"type": "broadcast", "data": {"x": Infinity}}',
        '{"type": "ping", "id": -Infinity}',
        '{"type": "ping", "id": 1e400}',
        '{"type": "publish", "channel": "c", "data": 1e999, "id": 1}',
        '{"type": "subscribe", "channel": "c", "id": NaN}',
    ],
)
def test_interpret_echoes_non_strict_json(text: str) -> None:
    """NaN, infinities and overflowing numbers are not JSON: echoed verbatim."""
    assert _wire.interpret(text) is None


def test_error_reply_does_not_echo_huge_fields() -> None:
    """A huge channel or id is left out of the error reply; a short one is kept."""
    huge = "x" * 100_000
    for text in (
        json.dumps({"type": "subscribe", "channel": huge, "id": 7}),
        json.dumps({"type": "unsubscribe", "channel": huge, "id": 7}),
        json.dumps({"type": "publish", "channel": huge, "data": 1, "id": 7}),
    ):
        action = _wire.interpret(text)
        assert isinstance(action, _wire.Reply)
        reply = strict_loads(action.text)
        assert "channel" not in reply
        assert reply["id"] == 7
        assert "at most 200" in reply["error"]
    action = _wire.interpret(json.dumps({"type": "publish", "id": huge}))
    assert isinstance(action, _wire.Reply)
    assert strict_loads(action.text) == {
        "type": "error",
        "error": "channel must be a non-empty str",
    }


def test_server_dumps_refuses_what_clients_could_not_parse() -> None:
    """_wire.dumps raises ValueError for NaN and for nesting too deep."""
    with pytest.raises(ValueError, match="JSON"):
        _wire.dumps({"x": math.nan})
    deep: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 10):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        _wire.dumps(deep)


# The builders: what an adapter sends, the reference server understands.


@PROPERTY
@given(CHANNELS, PARAMS, st.none() | POSITIONS, REQUEST_IDS)
def test_reference_subscribe_round_trip(
    channel: str, params: dict[str, Any], since: Position | None, request_id: int
) -> None:
    """ReferenceProtocol.subscribe builds the subscribe that the server reads."""
    message = ReferenceProtocol().subscribe(channel, params, since, request_id)
    assert isinstance(message, str)
    request = strict_loads(message)
    for key, value in params.items():
        assert request[key] == value
    expected = None if since is None else (since.epoch, since.offset)
    assert _wire.interpret(message) == _wire.Subscribe(
        channel, expected, {"id": request_id}
    )


@PROPERTY
@given(CHANNELS, REQUEST_IDS)
def test_reference_unsubscribe_round_trip(channel: str, request_id: int) -> None:
    """ReferenceProtocol.unsubscribe builds the unsubscribe that the server reads."""
    message = ReferenceProtocol().unsubscribe(channel, {"x": 1}, request_id)
    assert isinstance(message, str)
    assert _wire.interpret(message) == _wire.Unsubscribe(channel, {"id": request_id})


@PROPERTY
@given(
    CHANNELS,
    FINITE_JSON,
    st.text(min_size=1, max_size=_wire.MAX_MSG_ID_LENGTH),
    REQUEST_IDS,
)
def test_reference_publish_round_trip(
    channel: str, data: Any, msg_id: str, request_id: int
) -> None:
    """ReferenceProtocol.publish builds the publish that the server reads."""
    message = ReferenceProtocol().publish(channel, data, msg_id, request_id)
    assert isinstance(message, str)
    action = _wire.interpret(message)
    assert isinstance(action, _wire.Publish)
    assert (action.channel, action.msg_id, action.tag) == (
        channel,
        msg_id,
        {"id": request_id},
    )
    assert strict_loads(action.data_json) == data


@PROPERTY
@given(JSON_VALUES, st.sampled_from(["params", "data"]))
def test_reference_builders_refuse_non_strict_json(value: Any, where: str) -> None:
    """Builders raise ValueError for NaN or infinity, else send strict JSON."""
    adapter = ReferenceProtocol()

    def build() -> str | bytes:
        if where == "params":
            return adapter.subscribe("c", {"p": value}, None, 1)
        return adapter.publish("c", value, "m", 1)

    if is_strict_json(value):
        check_action(_wire.interpret(str(build())))
    else:
        with pytest.raises(ValueError, match="strict JSON"):
            build()


@PROPERTY
@given(CHANNELS, FINITE_JSON, st.text(max_size=40), st.integers(0, _wire.MAX_OFFSET))
def test_reference_route_reads_the_servers_publications(
    channel: str, data: Any, epoch: str, offset: int
) -> None:
    """What the server publishes, ReferenceProtocol.route reads back exactly."""
    frame = _wire.pub_frame(channel, epoch, offset, _wire.dumps(data))
    routed = ReferenceProtocol().route(frame.decode())
    assert routed == Publication(channel, data, epoch, offset)


@PROPERTY
@given(
    CHANNELS,
    REQUEST_IDS,
    st.integers(0, _wire.MAX_OFFSET),
    st.booleans(),
    st.text(max_size=100),
)
def test_reference_route_reads_the_servers_answers(
    channel: str, request_id: int, offset: int, duplicate: bool, error: str
) -> None:
    """Acks, refusals and unsubscribes from the server route back exactly."""
    adapter, tag = ReferenceProtocol(), {"id": request_id}
    extra = {"duplicate": True} if duplicate else {}
    ack = _wire.channel_reply("ack", channel, tag, offset=offset, **extra)
    assert adapter.route(ack.decode()) == Acked(request_id, offset, duplicate)
    refused = _wire.channel_reply("subscribe_error", channel, tag, error=error)
    assert adapter.route(refused.decode()) == SubscribeFailed(
        request_id, error, channel
    )
    gone = _wire.channel_reply("unsubscribed", channel, tag)
    assert adapter.route(gone.decode()) == Unsubscribed(request_id, channel)


EXCHANGE_KEYS = st.text(min_size=1, max_size=12).filter(
    lambda key: key not in {"id", "error", "result", "params"}
)


@PROPERTY
@given(
    st.lists(EXCHANGE_KEYS, min_size=3, max_size=3, unique=True),
    st.text(min_size=1, max_size=12),
    CHANNELS,
    REQUEST_IDS,
    FINITE_JSON,
)
def test_exchange_builders_and_route_agree(
    keys: list[str], method: str, channel: str, request_id: int, data: Any
) -> None:
    """ExchangeProtocol builds its requests, and routes answers and publications."""
    method_key, channel_key, data_key = keys
    adapter = ExchangeProtocol(
        method_key=method_key,
        subscribe_method=method,
        channel_key=channel_key,
        data_key=data_key,
    )
    request = strict_loads(adapter.subscribe(channel, {}, None, request_id))
    assert request == {method_key: method, "params": [channel], "id": request_id}
    request = strict_loads(adapter.unsubscribe(channel, {}, request_id))
    assert request == {method_key: "UNSUBSCRIBE", "params": [channel], "id": request_id}
    answer = json.dumps({"result": None, "id": request_id})
    assert adapter.route(answer) == Acked(request_id)
    publication = json.dumps({channel_key: channel, data_key: data})
    assert adapter.route(publication) == Publication(channel, data)


def test_adapters_are_public() -> None:
    """The adapters under test are the ones the package exports."""
    assert wsclient.ReferenceProtocol is ReferenceProtocol
    assert wsclient.ExchangeProtocol is ExchangeProtocol
