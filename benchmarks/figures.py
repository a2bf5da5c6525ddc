"""The figures: what is measured, how much per block, and the goal (issue 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .clients import Backend, SideName

__all__ = ["FIGURES", "Figure", "select", "skip_reason"]

KiB = 1024


@dataclass(frozen=True)
class Figure:
    """One figure: side B against side A on one kind of block.

    Attributes:
        name: Unique name, used by ``--only``.
        kind: The block run on each side (a key of ``clients.BLOCKS``).
        size: Payload bytes per message.
        count: Messages (or round trips) per block in a full run.
        quick_count: The same for ``--quick``.
        metric: ``throughput`` (messages per second) or ``latency`` (echo
            round trips). Either way the ratio is B's speed relative to A's:
            1.0 is as fast as raw, above is faster (for latency, the median
            round trip of A over that of B).
        goal: The ratio must be at least this, or for the A/A check within
            this of 1.0; None: a context figure, without a goal.
        same_core: Run against a server on the benchmark's own core.
        sides: The sides compared, A then B.
        backends: Where it can run: the context lines' clients are asyncio
            libraries.
        requires: A package that side B needs (imported only to run it);
            without it the figure is skipped with a note.
    """

    name: str
    kind: str
    size: int
    count: int
    quick_count: int
    metric: Literal["throughput", "latency"] = "throughput"
    goal: float | None = None
    same_core: bool = False
    sides: tuple[SideName, SideName] = ("raw", "wsclient")
    backends: tuple[Backend, ...] = ("asyncio", "trio")
    requires: str | None = None

    @property
    def is_aa(self) -> bool:
        return self.sides[0] == self.sides[1]

    def meets(self, ratio: float) -> bool | None:
        """Whether ``ratio`` meets the goal; None without a goal."""
        if self.goal is None:
            return None
        if self.is_aa:
            return abs(ratio - 1.0) <= self.goal
        return ratio >= self.goal

    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        if self.is_aa:
            return f"1±{self.goal:g}"
        return f">={self.goal:g}"


def skip_reason(figure: Figure, backend: Backend) -> str | None:
    """Why ``figure`` cannot run on ``backend``, or None if it can."""
    if backend not in figure.backends:
        return f"{backend}: not measured ({' and '.join(figure.backends)} only)"
    if figure.requires is not None:
        from .context import missing

        return missing(figure.requires)
    return None


def _size_name(size: int) -> str:
    return f"{size // KiB}k" if size >= KiB else str(size)


def _figures(
    kind: str,
    counts: dict[int, tuple[int, int]],
    goals: dict[int, float | None],
    prefix: str | None = None,
    sides: tuple[SideName, SideName] = ("raw", "wsclient"),
    **options: Any,
) -> list[Figure]:
    return [
        Figure(
            f"{prefix or kind}_{_size_name(size)}",
            kind,
            size,
            *counts[size],
            goal=goals.get(size),
            sides=sides,
            **options,
        )
        for size in counts
    ]


def _context(side: SideName, requires: str | None) -> list[Figure]:
    """Raw websockets (A) against another asyncio client (B), no goal."""
    return _figures(
        "recv_client", _RECV, {}, prefix=f"ctx_{side}_recv", sides=("raw", side),
        backends=("asyncio",), requires=requires,
    )  # fmt: skip


# Messages per block (full run, --quick): about 0.1 s (0.04 s) of raw
# websockets on asyncio each; trio takes about twice as long. Shorter blocks
# (0.05 to 0.09 s at 64 KiB before 2026-11-26) made those figures the noisiest.
_RECV = {32: (25_000, 10_000), KiB: (20_000, 8_000), 64 * KiB: (3_000, 1_200)}
_SUB = {32: (15_000, 6_000), KiB: (15_000, 6_000), 64 * KiB: (1_250, 500)}
_SEND = {32: (10_000, 4_000), KiB: (10_000, 4_000), 64 * KiB: (3_500, 1_400)}
# Raw websockets gets 20,000 to 40,000 publications/s acked on asyncio.
_PUBLISH = {32: (4_000, 1_600), KiB: (4_000, 1_600)}
_ECHO = (1_000, 400)

FIGURES: list[Figure] = [
    *_figures("recv_client", _RECV, {32: 0.95, KiB: 0.97, 64 * KiB: 0.97}),
    # Against the raw loop that does the same job: decode the JSON, take the
    # data (what a user of raw websockets writes to read a channel).
    *_figures("recv_sub", _SUB, {32: 0.90, KiB: 0.95, 64 * KiB: 0.95},
              sides=("raw_json", "wsclient")),
    # Context: against the bare raw loop, which does not even decode.
    *_figures("recv_sub", _SUB, {}, prefix="recv_sub_bare"),
    *_figures("send", _SEND, {32: 0.95, KiB: 0.95, 64 * KiB: 0.95}),
    # Context: issue 6 sets no goal for acknowledged publish.
    *_figures("publish", _PUBLISH, {}),
    Figure("echo_32", "echo", 32, *_ECHO, metric="latency"),
    # "Same-core echo p50 within 5 % of raw": 1 / 1.05 of raw's speed.
    Figure("echo_same_core_32", "echo", 32, *_ECHO, metric="latency",
           goal=0.952, same_core=True),
    # The A/A check proves the method: raw against raw, on the figure with the
    # most per-message overhead, must come out within 1 % of 1.0.
    Figure("aa_recv_client_32", "recv_client", 32, *_RECV[32], goal=0.01,
           sides=("raw", "raw")),
    # Context lines: other clients against raw websockets, asyncio only.
    *_context("picows", "picows"),
    *_context("aiohttp", "aiohttp"),
    *_context("tcp", None),
]  # fmt: skip


def select(only: Iterable[str] | None) -> list[Figure]:
    """The figures whose name equals or starts with one of ``only`` (all if None).

    Raises:
        ValueError: A name matches no figure.
    """
    if not only:
        return list(FIGURES)
    wanted = list(only)
    for name in wanted:
        if not any(f.name.startswith(name) for f in FIGURES):
            names = ", ".join(f.name for f in FIGURES)
            raise ValueError(f"no figure named {name!r}; figures: {names}")
    return [f for f in FIGURES if any(f.name.startswith(name) for name in wanted)]
