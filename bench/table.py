"""The figures of `make bench` and the table they are printed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Figure:
    """A measured figure: the best of several runs, or why there is none.

    ``lower_better`` for latencies and counts of bad things: the best run is then the
    smallest value.
    """

    values: list[float]
    error: str = ""
    lower_better: bool = False
    note: str = ""          # printed below the table; unlike ``error`` it keeps the value

    @property
    def best(self) -> float | None:
        if not self.values or self.error:
            return None
        return min(self.values) if self.lower_better else max(self.values)

    def spread(self, digits: int = 1) -> str:
        if self.error or len(self.values) < 2:
            return ""
        return f"{min(self.values):.{digits}f}..{max(self.values):.{digits}f}"


def fmt(fig: Figure | None, unit: str, digits: int = 1) -> str:
    """A figure's cell: its best value and unit, ``-`` or ``n/a``."""
    if fig is None:
        return "-"
    if fig.best is None:
        return "n/a (see note)"
    return f"{fig.best:.{digits}f} {unit}".rstrip()


@dataclass(frozen=True)
class Target:
    """What issue 8 asks of a row: its ratio (``of="ratio"``) or its value, ``>=`` or ``<=``."""

    bound: float
    op: str = ">="
    of: str = "ratio"

    def text(self, unit: str) -> str:
        if self.of == "ratio":
            return f"{self.op} {self.bound:g}x"
        return f"{self.op} {self.bound:g} {unit}".rstrip()

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass
class Row:
    """One line of the table: a figure, its baseline, their ratio and the target, if any."""

    name: str
    fig: Figure
    unit: str
    base_name: str = ""
    base: Figure | None = None
    target: Target | None = None
    digits: int = 1

    def ratio(self) -> float | None:
        if self.base is None or self.fig.best is None or not self.base.best:
            return None
        return self.fig.best / self.base.best

    def cells(self) -> list[str]:
        r = self.ratio()
        ratio = "-" if r is None else (f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x")
        goal = ""
        if self.target is not None:
            met = self.target.met(r if self.target.of == "ratio" else self.fig.best)
            mark = {True: "met", False: "not met", None: "?"}[met]
            goal = f"{self.target.text(self.unit)} {mark}"
        return [self.name, fmt(self.fig, self.unit, self.digits), self.fig.spread(self.digits),
                self.base_name or "-",
                fmt(self.base, self.unit, self.digits) if self.base else "-", ratio, goal]


def print_table(rows: list[Row], out: Callable[[str], None] = print) -> None:
    """Aligned columns; n/a cells carry their reason in a note below the table."""
    head = ["figure", "value", "spread", "baseline", "baseline value", "ratio", "target"]
    body = [r.cells() for r in rows]
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    widths = [min(w, 44) for w in widths]
    for line in [head, ["-" * w for w in widths], *body]:
        out("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def notes(rows: list[Row]) -> list[str]:
    """The reasons behind every n/a, once each."""
    figs = [f for r in rows for f in (r.fig, r.base) if f is not None]
    return sorted({f.error for f in figs if f.error} | {f.note for f in figs if f.note})
