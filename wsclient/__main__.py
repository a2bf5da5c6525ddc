"""The command line: ``python -m wsclient demo``, also installed as ``wsclient``.

Usage::

    python -m wsclient demo [--duration SECONDS] [--fault-rate FAULTS_PER_SECOND]
                            [--backend asyncio|trio] [--seed N]

The demo runs the reference server, a publisher and two subscribers in this
process and injects faults; see :mod:`wsclient._demo`. Its exit status is 0
when every publication was acknowledged and each subscriber received each
one exactly once and in order, 1 when not, 130 after Ctrl-C, and 2 for a bad
command line.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from typing import TYPE_CHECKING

from . import _demo

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand; return the exit status.

    Raises:
        SystemExit: With status 2 for a bad command line (argparse's way).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        parser.error("--backend trio needs trio: pip install 'wsclient[trio]'")
    config = _demo.DemoConfig(
        duration=args.duration,
        fault_rate=args.fault_rate,
        backend=args.backend,
        seed=args.seed,
    )
    return _demo.run(config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsclient",
        description="wsclient: a resilient WebSocket client for asyncio and trio.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="watch clients publish and subscribe through injected faults",
        description="Run the reference server, a publisher and two subscribers "
        "in this process, inject faults at random moments (abort, clean close, "
        "stall, outage, 503 with Retry-After) and print what the clients do. "
        "Exits with 0 if every publication was acknowledged and each "
        "subscriber got each one exactly once, in order.",
    )
    demo.add_argument(
        "--duration",
        type=_positive,
        default=15.0,
        metavar="SECONDS",
        help="how long to inject faults (default: 15)",
    )
    demo.add_argument(
        "--fault-rate",
        type=_non_negative,
        default=0.5,
        metavar="FAULTS_PER_SECOND",
        help="average faults per second of healthy connection; 0 for none "
        "(default: 0.5)",
    )
    demo.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the fault schedule, to replay a run (default: random)",
    )
    return parser


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
