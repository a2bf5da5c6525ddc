"""When to reconnect, and when to give up.

Every way a connection ends (a failed attempt, a connection the server
accepted then dropped, an abnormal closure) asks :meth:`ReconnectPolicy.next_delay`
for the delay before the next attempt. There is no fast path around it: that
is what stops a server that accepts and immediately closes from causing a
tight reconnect loop (websockets' own loop resets its backoff as soon as a
handshake succeeds, and reconnects thousands of times per second then).

The consecutive-failure count resets only once a connection has stayed up for
``stable_after`` seconds.

Delays come from a tenacity wait strategy and the decision to give up from a
tenacity stop strategy, called with a :class:`tenacity.RetryCallState` built
here. The caller owns the sleeping; tenacity objects stay data.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

__all__ = ["ExponentialJitter", "ReconnectPolicy", "StopStrategy", "WaitStrategy"]

WaitStrategy = Callable[[tenacity.RetryCallState], float]
"""A tenacity wait strategy, such as ``tenacity.wait_random_exponential(...)``."""

StopStrategy = Callable[[tenacity.RetryCallState], bool]
"""A tenacity stop strategy, such as ``tenacity.stop_after_attempt(10)``."""


_JITTER_RNG = random.Random()
"""The generator of every :class:`ExponentialJitter` not given its own: one
per process, seeded from the OS. A ``random.Random`` takes 2.5 KiB, too much
to pay per client when a bot holds thousands of idle connections."""


def _check(name: str, value: object, minimum: float, inclusive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    ok = value >= minimum if inclusive else value > minimum
    if not ok or not math.isfinite(value):
        floor = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"{name} must be finite and {floor}, got {value!r}")


class ExponentialJitter(tenacity.wait.wait_base):
    """Exponential backoff with jitter on every attempt: the default wait.

    The n-th consecutive delay is drawn uniformly from
    ``[base * (1 - jitter), base]`` where ``base = min(maximum, initial *
    multiplier ** (n - 1))``. The default ``jitter=0.5`` ("equal jitter")
    keeps a floor of half the base, so no attempt comes early, while spreading
    clients that lost their connection at the same moment across half of the
    window: a restarting server sees a ramp, not a wall.

    Args:
        initial: Base delay of the first attempt, in seconds.
        maximum: Cap of the base delay, in seconds.
        multiplier: Growth factor of the base delay per consecutive failure.
        jitter: Fraction of the base delay that is randomised, from 0 to 1.
        rng: The generator to draw from (seed one for reproducible delays);
            by default one shared by all clients, seeded from the OS.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        _check("initial", initial, minimum=0.0, inclusive=False)
        _check("maximum", maximum, minimum=0.0, inclusive=False)
        _check("multiplier", multiplier, minimum=1.0)
        _check("jitter", jitter, minimum=0.0)
        if jitter > 1:
            raise ValueError(
                f"jitter is a fraction of the delay: 0 to 1, got {jitter!r}"
            )
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        # The generator, not its bound method: one object less per client.
        self._rng = _JITTER_RNG if rng is None else rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exponent = max(retry_state.attempt_number - 1, 0)
        base = min(self.initial, self.maximum)
        if exponent and self.multiplier > 1 and 0 < base < self.maximum:
            # Compare in log space: multiplier ** exponent may not fit in a
            # float during a long outage, but the capped base always does.
            room = math.log(self.maximum) - math.log(base)
            if exponent * math.log(self.multiplier) >= room:
                base = self.maximum
            else:
                base = min(base * self.multiplier**exponent, self.maximum)
        return base * (1.0 - self.jitter * self._rng.random())

    def __repr__(self) -> str:
        return (
            f"ExponentialJitter(initial={self.initial}, maximum={self.maximum}, "
            f"multiplier={self.multiplier}, jitter={self.jitter})"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of :meth:`ReconnectPolicy.next_delay`.

    Attributes:
        delay: Seconds to wait before the next attempt; None means give up.
        attempt: Consecutive failed attempts so far in this outage (the drop
            of a stable connection is not one).
        downtime: Seconds since the connection was last up.
    """

    delay: float | None
    attempt: int
    downtime: float


class ReconnectPolicy:
    """Bookkeeping of consecutive failures; no clock, no sleeping.

    The caller reports :meth:`connected` when a handshake succeeds and asks
    :meth:`next_delay` after every failure or disconnection, then sleeps for
    the returned delay (or gives up when it is None).

    Args:
        wait: tenacity wait strategy for the delay before each attempt.
        stop: tenacity stop strategy; returning True gives up.
        stable_after: Seconds a connection must stay up before the failure
            count (and so the delay) resets.
    """

    # One per client, for its life: slots, not a dict.
    __slots__ = (
        "_connected_at",
        "_down_since",
        "_drops",
        "_slept",
        "failures",
        "stable_after",
        "stop",
        "wait",
    )

    def __init__(
        self,
        wait: WaitStrategy,
        stop: StopStrategy,
        stable_after: float,
    ) -> None:
        self.wait = wait
        self.stop = stop
        self.stable_after = stable_after
        self.failures = 0
        """Consecutive failures since the last stable connection."""
        self._down_since: float | None = None
        self._connected_at: float | None = None
        self._slept = 0.0
        self._drops = 0  # 1 when the outage began with a stable connection's drop.

    def connected(self, now: float) -> None:
        """Record that a connection opened at ``now``."""
        self._connected_at = now

    def next_delay(self, now: float, minimum: float | None = None) -> Decision:
        """Record a failure at ``now`` and decide what comes next.

        A failure is a failed attempt, or a connection that dropped before
        ``stable_after``. A stable connection that drops starts a new outage:
        the counts restart, and the drop itself is not a failed attempt, so
        ``stop_after_attempt(n)`` allows n reconnection attempts.

        Args:
            now: The current monotonic time.
            minimum: A delay the server asked for (``Retry-After``); the
                delay returned is at least this long.

        Returns:
            The delay before the next attempt, or None in ``delay`` to give up.
        """
        if self._connected_at is not None:
            if now - self._connected_at >= self.stable_after:
                self.failures, self._slept, self._down_since = 0, 0.0, None
                self._drops = 1  # The drop that starts this outage.
            self._connected_at = None
        if self._down_since is None:
            self._down_since = now
            self._drops = self._drops if self.failures == 0 else 0
        self.failures += 1
        attempts = self.failures - self._drops
        downtime = now - self._down_since
        # The wait sees the drop as failure 1, as tenacity sees a first failed
        # call; the stop sees only real attempts.
        if attempts and self.stop(self._retry_state(now, attempts)):
            return Decision(None, attempts, downtime)
        delay = max(0.0, float(self.wait(self._retry_state(now, self.failures))))
        if minimum is not None:
            delay = max(delay, minimum)
        self._slept += delay
        return Decision(delay, attempts, downtime)

    def _retry_state(self, now: float, attempt_number: int) -> tenacity.RetryCallState:
        # The fields tenacity's strategies read: attempt_number, start_time,
        # outcome_timestamp (seconds_since_start) and idle_for.
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt_number
        assert self._down_since is not None
        state.start_time = self._down_since
        state.outcome_timestamp = now
        state.idle_for = self._slept
        return state
