"""Exponential backoff with jitter, and the reconnect policy built on it."""

from __future__ import annotations

import dataclasses
import random

import pytest
import tenacity
from hypothesis import given, settings, strategies as st

from wsclient._core.backoff import (
    Decision,
    ExponentialJitter,
    ReconnectPolicy,
    StopStrategy,
    WaitStrategy,
)

DRAWS = 2000


def retry_state(attempt: int) -> tenacity.RetryCallState:
    """A tenacity call state for the ``attempt``-th consecutive failure."""
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state


def base_delay(
    attempt: int, initial: float = 1.0, maximum: float = 30.0, multiplier: float = 2.0
) -> float:
    """The documented base delay of the ``attempt``-th consecutive failure."""
    return min(maximum, initial * multiplier ** (attempt - 1))


def exact(initial: float = 1.0, maximum: float = 30.0) -> ExponentialJitter:
    """Backoff without jitter, doubling from ``initial`` up to ``maximum``."""
    return ExponentialJitter(initial, maximum, 2.0, 0.0)


def policy(
    wait: WaitStrategy | None = None,
    stop: StopStrategy = tenacity.stop_never,
    stable_after: float = 5.0,
) -> ReconnectPolicy:
    """A policy with exact backoff (1, 2, 4, ... 30 s) unless told otherwise."""
    return ReconnectPolicy(wait or exact(), stop, stable_after)


# ExponentialJitter.


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 10, 50])
@pytest.mark.parametrize("jitter", [0.5, 0.1, 1.0])
def test_jitter_bounds_and_spread(attempt: int, jitter: float) -> None:
    """Every attempt's delay is in [base*(1-jitter), base] and uses that range."""
    wait = ExponentialJitter(1.0, 30.0, 2.0, jitter)
    base = base_delay(attempt)
    low = base * (1 - jitter)
    delays = [wait(retry_state(attempt)) for _ in range(DRAWS)]
    assert all(low <= d <= base for d in delays)
    # Jitter applies on every attempt, capped ones included: the draws cover
    # the range up to its ends (missing 5% at an end has odds of 0.95**2000).
    spread = base - low
    assert min(delays) < low + 0.05 * spread
    assert max(delays) > base - 0.05 * spread


def test_jitter_default_is_half() -> None:
    """The default wait starts at 1 s, caps at 30 s and jitters half the base."""
    wait = ExponentialJitter()
    delays = [wait(retry_state(1)) for _ in range(DRAWS)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert min(delays) < 0.525
    assert max(delays) > 0.975
    capped = [wait(retry_state(100)) for _ in range(DRAWS)]
    assert all(15.0 <= d <= 30.0 for d in capped)


@pytest.mark.parametrize("attempt", [6, 7, 20, 1000])
def test_cap_at_maximum(attempt: int) -> None:
    """The base delay stops growing at ``maximum``."""
    assert exact()(retry_state(attempt)) == 30.0


def test_no_jitter_is_exact_exponential() -> None:
    """With jitter=0, delays are exactly initial * multiplier ** (n - 1), capped."""
    wait = ExponentialJitter(0.5, 100.0, 3.0, 0.0)
    delays = [wait(retry_state(n)) for n in range(1, 8)]
    assert delays == [0.5, 1.5, 4.5, 13.5, 40.5, 100.0, 100.0]


def test_multiplier_one_is_flat() -> None:
    """multiplier=1 keeps the base delay at ``initial``."""
    wait = ExponentialJitter(2.0, 30.0, 1.0, 0.0)
    assert [wait(retry_state(n)) for n in range(1, 6)] == [2.0] * 5


def test_maximum_below_initial_caps_first_attempt() -> None:
    """A maximum smaller than initial caps even the first delay."""
    assert exact(initial=10.0, maximum=3.0)(retry_state(1)) == 3.0


def test_seeded_rng_is_reproducible() -> None:
    """Two waits with equally seeded RNGs draw the same delays."""
    a = ExponentialJitter(rng=random.Random(1234))
    b = ExponentialJitter(rng=random.Random(1234))
    c = ExponentialJitter(rng=random.Random(4321))
    seq_a = [a(retry_state(n % 8 + 1)) for n in range(50)]
    seq_b = [b(retry_state(n % 8 + 1)) for n in range(50)]
    seq_c = [c(retry_state(n % 8 + 1)) for n in range(50)]
    assert seq_a == seq_b
    assert seq_a != seq_c


@pytest.mark.parametrize("attempt", [10_000, 10**9, 2**63])
def test_huge_attempt_does_not_overflow(attempt: int) -> None:
    """A very long outage neither overflows nor leaves the capped range."""
    wait = ExponentialJitter(1.0, 30.0, 2.0, 0.5)
    delay = wait(retry_state(attempt))
    assert 15.0 <= delay <= 30.0
    assert exact()(retry_state(attempt)) == 30.0


def test_repr_shows_parameters() -> None:
    """repr() shows the parameters, for logs."""
    text = repr(ExponentialJitter(1.0, 30.0, 2.0, 0.5))
    assert text == (
        "ExponentialJitter(initial=1.0, maximum=30.0, multiplier=2.0, jitter=0.5)"
    )


def test_is_a_tenacity_wait() -> None:
    """ExponentialJitter combines with tenacity waits like any other."""
    combined = exact() + tenacity.wait_fixed(1)
    assert combined(retry_state(3)) == 5.0


# ReconnectPolicy: growth and reset.


def test_consecutive_failures_grow_delay() -> None:
    """Each consecutive failure doubles the delay, up to the cap."""
    p = policy()
    now = 0.0
    decisions = []
    for _ in range(8):
        decision = p.next_delay(now)
        decisions.append(decision)
        assert decision.delay is not None
        now += decision.delay
    assert [d.delay for d in decisions] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert [d.attempt for d in decisions] == list(range(1, 9))
    assert p.failures == 8


def test_first_failure_decision() -> None:
    """The first failure gives attempt 1, the initial delay and no downtime."""
    assert policy().next_delay(100.0) == Decision(1.0, 1, 0.0)


def test_stable_connection_resets() -> None:
    """A connection that stayed up for stable_after resets the failure count."""
    p = policy(stable_after=5.0)
    for now in (0.0, 1.0, 3.0):
        p.next_delay(now)
    p.connected(10.0)
    decision = p.next_delay(16.0)
    # The drop itself is not a failed attempt: no attempt was made yet.
    assert decision == Decision(1.0, 0, 0.0)
    assert p.failures == 1


def test_stable_exactly_at_threshold_resets() -> None:
    """Staying up exactly stable_after seconds counts as stable."""
    p = policy(stable_after=5.0)
    p.next_delay(0.0)
    p.next_delay(1.0)
    p.connected(10.0)
    assert p.next_delay(15.0).attempt == 0


def test_stable_reset_restores_initial_jitter_range() -> None:
    """After a stable connection the jittered delay is back in the first range."""
    p = ReconnectPolicy(ExponentialJitter(), tenacity.stop_never, 5.0)
    now = 0.0
    for _ in range(10):
        decision = p.next_delay(now)
        assert decision.delay is not None
        now += decision.delay
    assert decision.delay is not None
    assert decision.delay >= 15.0
    p.connected(now)
    decision = p.next_delay(now + 60.0)
    assert decision.delay is not None
    assert 0.5 <= decision.delay <= 1.0


def test_unstable_connection_does_not_reset() -> None:
    """A connection that dropped before stable_after keeps the delay growing."""
    p = policy(stable_after=5.0)
    for now in (0.0, 1.0, 3.0):
        p.next_delay(now)
    p.connected(10.0)
    decision = p.next_delay(14.9)
    assert decision.attempt == 4
    assert decision.delay == 8.0


def test_first_connection_dropping_at_once_backs_off() -> None:
    """Even the first connection, dropped at once, goes through the backoff."""
    p = policy(stable_after=5.0)
    p.connected(0.0)
    assert p.next_delay(0.001) == Decision(1.0, 1, 0.0)


def test_accept_then_drop_backs_off_to_cap() -> None:
    """A server that accepts and drops at once 20 times gets growing delays."""
    p = ReconnectPolicy(
        ExponentialJitter(rng=random.Random(7)), tenacity.stop_never, 5.0
    )
    now = 0.0
    delays = []
    for attempt in range(1, 21):
        p.connected(now)
        now += 0.001  # The server drops the connection right after accepting it.
        decision = p.next_delay(now)
        assert decision.attempt == attempt
        assert decision.delay is not None
        base = base_delay(attempt)
        assert base / 2 <= decision.delay <= base
        delays.append(decision.delay)
        now += decision.delay
    # The ranges [b/2, b] of successive attempts do not overlap until the cap.
    assert delays[:5] == sorted(delays[:5])
    assert all(d >= 15.0 for d in delays[5:])
    assert sum(delays) > 200.0  # No tight loop: minutes, not milliseconds.


def test_accept_then_drop_exact_delays() -> None:
    """Without jitter, accept-then-drop delays are 1, 2, 4, 8, 16, then 30."""
    p = policy(stable_after=5.0)
    now = 0.0
    delays = []
    for _ in range(20):
        p.connected(now)
        decision = p.next_delay(now + 0.001)
        assert decision.delay is not None
        delays.append(decision.delay)
        now += 0.001 + decision.delay
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * 15


# ReconnectPolicy: minimum (Retry-After).


def test_minimum_raises_delay() -> None:
    """A minimum longer than the backoff delay replaces it."""
    assert policy().next_delay(0.0, minimum=120.0).delay == 120.0


def test_minimum_shorter_than_backoff_is_ignored() -> None:
    """A minimum shorter than the backoff delay leaves the backoff in place."""
    p = policy()
    p.next_delay(0.0)
    p.next_delay(1.0)
    assert p.next_delay(3.0, minimum=0.5).delay == 4.0


def test_minimum_zero_keeps_backoff() -> None:
    """A past Retry-After date (minimum 0) keeps the ordinary backoff."""
    assert policy().next_delay(0.0, minimum=0.0).delay == 1.0


def test_minimum_counts_as_a_failure() -> None:
    """A failure with a minimum still counts towards the backoff."""
    p = policy()
    p.next_delay(0.0, minimum=60.0)
    assert p.next_delay(60.0) == Decision(2.0, 2, 60.0)


def test_negative_wait_clamped_to_zero() -> None:
    """A wait strategy returning a negative delay gives 0, not a negative sleep."""
    p = policy(wait=lambda state: -5.0)
    assert p.next_delay(0.0).delay == 0.0


# ReconnectPolicy: tenacity stop strategies.


def test_stop_after_attempt_gives_up_on_third_failure() -> None:
    """stop_after_attempt(3) gives up on the 3rd consecutive failure."""
    p = policy(stop=tenacity.stop_after_attempt(3))
    assert p.next_delay(0.0) == Decision(1.0, 1, 0.0)
    assert p.next_delay(1.0) == Decision(2.0, 2, 1.0)
    assert p.next_delay(3.0) == Decision(None, 3, 3.0)


def test_stop_after_attempt_counts_unstable_connections() -> None:
    """Connections that drop before stable_after count towards max attempts."""
    p = policy(stop=tenacity.stop_after_attempt(3), stable_after=5.0)
    for now in (0.0, 10.0):
        p.connected(now)
        assert p.next_delay(now + 1.0).delay is not None
    p.connected(20.0)
    assert p.next_delay(21.0) == Decision(None, 3, 20.0)


def test_stop_after_attempt_restarts_after_stable() -> None:
    """A stable connection restarts the count; the drop is not an attempt.

    With stop_after_attempt(3), the client makes 3 reconnection attempts.
    """
    p = policy(stop=tenacity.stop_after_attempt(3), stable_after=5.0)
    p.next_delay(0.0)
    p.next_delay(1.0)
    p.connected(3.0)
    assert p.next_delay(10.0) == Decision(1.0, 0, 0.0)  # The drop.
    assert p.next_delay(11.0) == Decision(2.0, 1, 1.0)  # Attempt 1 failed.
    assert p.next_delay(13.0) == Decision(4.0, 2, 3.0)  # Attempt 2 failed.
    assert p.next_delay(17.0) == Decision(None, 3, 7.0)  # Attempt 3: give up.


def test_stop_after_delay_from_first_failure() -> None:
    """stop_after_delay(10) gives up once downtime reaches 10 s."""
    p = policy(stop=tenacity.stop_after_delay(10))
    assert p.next_delay(100.0) == Decision(1.0, 1, 0.0)
    assert p.next_delay(105.0) == Decision(2.0, 2, 5.0)
    decision = p.next_delay(109.99)
    assert (decision.delay, decision.attempt) == (4.0, 3)
    assert decision.downtime == pytest.approx(9.99)
    assert p.next_delay(110.0) == Decision(None, 4, 10.0)


def test_stop_after_delay_accumulates_across_unstable_connections() -> None:
    """Downtime keeps counting through connections that drop before stable_after."""
    p = policy(stop=tenacity.stop_after_delay(10), stable_after=5.0)
    assert p.next_delay(0.0).downtime == 0.0
    p.connected(1.0)
    assert p.next_delay(3.0) == Decision(2.0, 2, 3.0)
    p.connected(4.0)
    assert p.next_delay(8.0) == Decision(4.0, 3, 8.0)
    p.connected(9.0)
    assert p.next_delay(10.0) == Decision(None, 4, 10.0)


def test_stop_after_delay_restarts_after_stable_connection() -> None:
    """A stable connection restarts the downtime clock."""
    p = policy(stop=tenacity.stop_after_delay(10), stable_after=5.0)
    p.next_delay(0.0)
    p.next_delay(9.0)
    p.connected(9.5)
    assert p.next_delay(20.0) == Decision(1.0, 0, 0.0)
    assert p.next_delay(29.0) == Decision(2.0, 1, 9.0)
    assert p.next_delay(30.0) == Decision(None, 2, 10.0)


def test_combined_stop_strategies() -> None:
    """Stop strategies combined with '|' give up on whichever comes first."""
    stop = tenacity.stop_after_attempt(100) | tenacity.stop_after_delay(10)
    p = policy(stop=stop)
    assert p.next_delay(0.0).delay is not None
    assert p.next_delay(10.0).delay is None


def test_stop_never_never_gives_up() -> None:
    """stop_never keeps reconnecting through a long outage."""
    p = policy()
    delays = [p.next_delay(n * 30.0).delay for n in range(500)]
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert delays[6:] == [30.0] * 494


# ReconnectPolicy: user wait strategies.


def test_user_wait_fixed() -> None:
    """A tenacity.wait_fixed(2) strategy gives 2 s on every attempt."""
    p = policy(wait=tenacity.wait_fixed(2))
    assert [p.next_delay(float(n)).delay for n in range(10)] == [2.0] * 10


def test_user_wait_random_exponential() -> None:
    """tenacity.wait_random_exponential is honoured with its own bounds."""
    for attempt in range(1, 9):
        high = min(60.0, 2.0 ** (attempt - 1))
        delays = []
        for _ in range(200):
            p = policy(wait=tenacity.wait_random_exponential(multiplier=1, max=60))
            for n in range(attempt):
                decision = p.next_delay(float(n))
            assert decision.attempt == attempt
            assert decision.delay is not None
            delays.append(decision.delay)
        assert all(0.0 <= d <= high for d in delays)
        assert max(delays) > high / 2


def test_user_wait_receives_retry_state() -> None:
    """A custom wait sees attempt_number, seconds_since_start and idle_for."""
    seen: list[tuple[int, float | None, float]] = []

    def wait(state: tenacity.RetryCallState) -> float:
        seen.append((state.attempt_number, state.seconds_since_start, state.idle_for))
        return 3.0

    p = policy(wait=wait, stable_after=5.0)
    p.next_delay(10.0)
    p.next_delay(14.0)
    p.connected(18.0)
    p.next_delay(19.0)  # Unstable: the count and the sleep total carry on.
    p.connected(20.0)
    p.next_delay(40.0)  # Stable: everything starts again.
    assert seen == [(1, 0.0, 0.0), (2, 4.0, 3.0), (3, 9.0, 6.0), (1, 0.0, 0.0)]


def test_stop_not_waited_when_giving_up() -> None:
    """When the stop strategy gives up, the wait strategy is not consulted."""
    calls: list[int] = []

    def wait(state: tenacity.RetryCallState) -> float:
        calls.append(state.attempt_number)
        return 1.0

    p = policy(wait=wait, stop=tenacity.stop_after_attempt(2))
    p.next_delay(0.0)
    assert p.next_delay(1.0).delay is None
    assert calls == [1]


def test_decision_is_frozen() -> None:
    """A Decision is an immutable value."""
    decision = Decision(1.0, 1, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.delay = 2.0  # type: ignore[misc]


# Property test.

events = st.lists(
    st.tuples(
        st.booleans(),  # True: a connection opens; False: a failure.
        st.floats(min_value=0.0, max_value=1000.0),  # Time since last event.
        st.none() | st.floats(min_value=0.0, max_value=3600.0),  # Retry-After.
    ),
    max_size=60,
)


@settings(database=None, deadline=None, max_examples=300)
@given(
    events=events,
    initial=st.floats(min_value=0.001, max_value=10.0),
    maximum=st.floats(min_value=0.001, max_value=120.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    stable_after=st.floats(min_value=0.0, max_value=100.0),
    seed=st.integers(),
)
def test_policy_properties(
    events: list[tuple[bool, float, float | None]],
    initial: float,
    maximum: float,
    multiplier: float,
    jitter: float,
    stable_after: float,
    seed: int,
) -> None:
    """Delays stay within [0, max(backoff_max, minimum)]; counts never go negative."""
    wait = ExponentialJitter(initial, maximum, multiplier, jitter, random.Random(seed))
    p = ReconnectPolicy(wait, tenacity.stop_never, stable_after)
    now = 0.0
    connected_at: float | None = None
    for is_connect, dt, minimum in events:
        now += dt
        if is_connect:
            p.connected(now)
            connected_at = now
            continue
        decision = p.next_delay(now, minimum)
        assert decision.delay is not None
        assert 0.0 <= decision.delay <= max(maximum, minimum or 0.0)
        assert decision.delay >= (minimum or 0.0)
        assert p.failures >= 1
        assert decision.attempt in (p.failures, p.failures - 1)
        assert decision.downtime >= 0.0
        if connected_at is not None and now - connected_at >= stable_after:
            assert decision.attempt == 0  # The drop is not an attempt.
            assert decision.downtime == 0.0
        connected_at = None
        now += decision.delay
    assert p.failures >= 0


@pytest.mark.parametrize("multiplier", [1.0, 2.0])
def test_huge_attempt_numbers_are_constant_time(multiplier: float) -> None:
    """The base is computed in closed form: no loop over the attempt number."""
    wait = ExponentialJitter(initial=0.5, maximum=30.0, multiplier=multiplier, jitter=0)
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = 10**12
    assert wait(state) == (30.0 if multiplier > 1 else 0.5)
