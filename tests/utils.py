"""Shared test helpers.

Every duration in the tests is a multiple of ``T`` so that slow machines can
scale all of them at once with ``WSCLIENT_TEST_TIMEOUT_FACTOR`` (as websockets'
own suite does).
"""

from __future__ import annotations

import os

T = 0.001 * float(os.environ.get("WSCLIENT_TEST_TIMEOUT_FACTOR", "1"))
"""One time unit, in seconds (1 ms by default)."""

LONG = 5000 * T
"""A generous bound for waits that should finish much sooner (5 s by default)."""
