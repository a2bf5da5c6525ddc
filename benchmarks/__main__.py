"""``python -m benchmarks``: wsclient against raw websockets, side by side.

See benchmarks/README.md for the method and what each figure means.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from . import findings
from .figures import FIGURES, select
from .machine import ServerProcess, describe, pin_cpus, tune_malloc
from .method import measure
from .profiling import profile
from .report import table, write_json
from .resilience import NAMES, Sizes, run_resilience, split_names

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .clients import Backend
    from .figures import Figure
    from .findings import Finding
    from .method import Result

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
GROUPS = 10
"""Groups of four blocks per figure in a full run (the method needs >= 6)."""
QUICK_GROUPS = 6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="wsclient against raw websockets, side by side, on the "
        "same server in the same run.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio", "both"], default="both"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller blocks, for a smoke run (noisier figures)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="FIGURE",
        help="figures to run, by name or prefix (recv, recv_sub, send_1k, echo, "
        f"aa...); all: {', '.join(f.name for f in FIGURES)}; resilience: "
        f"{', '.join(NAMES)}",
    )
    parser.add_argument(
        "--groups",
        type=int,
        help=f"groups of four blocks per figure (default {GROUPS}, "
        f"{QUICK_GROUPS} with --quick)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the JSON results (default benchmarks/results.json)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin processes to CPUs"
    )
    parser.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="leave glibc's heap trimming on (see machine.tune_malloc)",
    )
    parser.add_argument(
        "--profile",
        metavar="FIGURE",
        help="profile both sides of one figure with cProfile instead",
    )
    args = parser.parse_args(argv)
    if args.groups is not None and args.groups < 1:
        parser.error("--groups must be at least 1")
    try:
        only = [n for name in args.only or () for n in name.split(",") if n]
        args.resilience, only = split_names(only) if only else (list(NAMES), [])
        # Only resilience names given: no throughput figure.
        args.figures = select(only) if only or not args.only else []
        if args.profile is not None:
            args.resilience = []
            args.figures = [f for f in FIGURES if f.name == args.profile]
            if not args.figures:
                select([args.profile])  # Raises, listing the names.
                parser.error(f"--profile takes a full figure name: {args.profile}")
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run_backend(
    backend: Backend,
    figures: list[Figure],
    urls: dict[bool, str],
    groups: int,
    quick: bool,
) -> list[Result]:
    results = []
    for figure in figures:
        count = figure.quick_count if quick else figure.count
        url = urls[figure.same_core]
        results.append(await measure(figure, backend, url, groups, count))
    return results


async def profile_backend(
    backend: Backend, figure: Figure, urls: dict[bool, str], quick: bool
) -> str:
    count = figure.quick_count if quick else figure.count
    return await profile(figure, backend, urls[figure.same_core], count)


def run_all_resilience(
    args: argparse.Namespace,
    backends: list[Backend],
    server_cpu: int | None,
    tune: bool,
) -> list[Finding]:
    """The resilience figures (see benchmarks/resilience.py), backend by backend."""
    if not args.resilience:
        return []
    sizes = Sizes.quick() if args.quick else Sizes()
    found: list[Finding] = []
    for backend in backends:
        print(f"{backend} (resilience):", file=sys.stderr, flush=True)
        found += anyio.run(
            run_resilience, backend, args.resilience, server_cpu, sizes, tune,
            backend=backend,
        )  # fmt: skip
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends: list[Backend] = (
        ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    )
    server_cpu, benchmark_cpu = (None, None) if args.no_pin else pin_cpus()
    tuned = not args.no_malloc_tuning and tune_malloc()
    machine = describe(server_cpu, benchmark_cpu, tuned)
    groups = args.groups or (QUICK_GROUPS if args.quick else GROUPS)
    if groups < QUICK_GROUPS:
        print(f"note: the method needs >= {QUICK_GROUPS} groups", file=sys.stderr)
    started = time.perf_counter()
    # One server on the other CPU; one on ours for the same-core echo.
    tune = not args.no_malloc_tuning
    results: list[Result] = []
    if args.figures:
        with (
            ServerProcess(server_cpu, tune) as server,
            ServerProcess(benchmark_cpu, tune) as local,
        ):
            urls = {False: server.url, True: local.url}
            if args.profile is not None:
                for backend in backends:
                    figure = args.figures[0]
                    print(
                        anyio.run(
                            profile_backend, backend, figure, urls, args.quick,
                            backend=backend,
                        )
                    )  # fmt: skip
                return 0
            for backend in backends:
                print(f"{backend}:", file=sys.stderr, flush=True)
                results += anyio.run(
                    run_backend, backend, args.figures, urls, groups, args.quick,
                    backend=backend,
                )  # fmt: skip
    found = run_all_resilience(args, backends, server_cpu, tune)
    if results or not found:
        print(table(results, machine))
    if found:
        print(("\n" if results else "") + findings.table(found))
    config: dict[str, Any] = {
        "command": ["python", "-m", "benchmarks", *(argv or sys.argv[1:])],
        "backends": backends,
        "groups": groups,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    write_json(args.output, results, machine, config)
    findings.add_to_json(args.output, found)
    print(f"\nwritten to {args.output} in {config['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
