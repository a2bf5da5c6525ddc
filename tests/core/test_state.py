"""The client's lifecycle transitions."""

from __future__ import annotations

import itertools

import pytest

from wsclient._core.state import TRANSITIONS, ClientState, check_transition

S = ClientState

# Written out by hand, independently of the table under test.
ALLOWED = {
    (S.IDLE, S.CONNECTING),
    (S.IDLE, S.CLOSED),
    (S.CONNECTING, S.CONNECTED),
    (S.CONNECTING, S.BACKING_OFF),
    (S.CONNECTING, S.CLOSED),
    (S.CONNECTED, S.BACKING_OFF),
    (S.CONNECTED, S.CLOSED),
    (S.BACKING_OFF, S.CONNECTING),
    (S.BACKING_OFF, S.CLOSED),
}

ALL_PAIRS = list(itertools.product(ClientState, repeat=2))


def test_table_has_every_state() -> None:
    """TRANSITIONS has an entry for every state."""
    assert set(TRANSITIONS) == set(ClientState)


def test_table_matches_documented_transitions() -> None:
    """TRANSITIONS allows exactly the documented transitions."""
    table = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert table == ALLOWED


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED, key=str))
def test_allowed_transition_passes(old: ClientState, new: ClientState) -> None:
    """An allowed transition does not raise."""
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"), [pair for pair in ALL_PAIRS if pair not in ALLOWED]
)
def test_forbidden_transition_raises(old: ClientState, new: ClientState) -> None:
    """Any other transition raises AssertionError naming both states."""
    with pytest.raises(AssertionError, match=f"{old.name} -> {new.name}"):
        check_transition(old, new)


def test_connected_never_goes_straight_to_connecting() -> None:
    """CONNECTED -> CONNECTING is a bug: every reconnect goes through BACKING_OFF."""
    with pytest.raises(AssertionError, match="invalid state transition"):
        check_transition(S.CONNECTED, S.CONNECTING)
    check_transition(S.CONNECTED, S.BACKING_OFF)
    check_transition(S.BACKING_OFF, S.CONNECTING)


@pytest.mark.parametrize("new", list(ClientState))
def test_closed_is_final(new: ClientState) -> None:
    """CLOSED -> anything (CLOSED included) raises."""
    with pytest.raises(AssertionError):
        check_transition(S.CLOSED, new)


@pytest.mark.parametrize("state", list(ClientState))
def test_no_self_transition(state: ClientState) -> None:
    """A state never transitions to itself."""
    with pytest.raises(AssertionError):
        check_transition(state, state)


@pytest.mark.parametrize("state", [s for s in ClientState if s is not S.CLOSED])
def test_every_live_state_can_close(state: ClientState) -> None:
    """The application can close the client from every state but CLOSED."""
    check_transition(state, S.CLOSED)


def test_every_state_reachable_from_idle() -> None:
    """Every state is reachable from IDLE."""
    seen = {S.IDLE}
    todo = [S.IDLE]
    while todo:
        for new in TRANSITIONS[todo.pop()]:
            if new not in seen:
                seen.add(new)
                todo.append(new)
    assert seen == set(ClientState)
