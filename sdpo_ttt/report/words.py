"""How the report writes numbers: percentages, counts, amounts on an axis, one time unit per column."""

from __future__ import annotations

from collections.abc import Sequence


def pct(p: float) -> str:
    return f"{100 * p:g}%"


def amount(value: float, x: str) -> str:
    return plural(int(value), "attempt") if x == "attempts" else f"{value:.0f} {x}"


def time_unit(values: Sequence[float | None]) -> tuple[str, float]:
    """One unit for a whole column of seconds, from its largest value: (name, seconds per unit)."""
    top = max((v for v in values if v is not None), default=0.0)
    if top >= 3600:
        return "h", 3600.0
    if top >= 120:
        return "min", 60.0
    return "s", 1.0


def in_unit(v: float | None, div: float) -> str:
    """A number in the column's unit, with three significant figures at least (no unit: it is in the header)."""
    if v is None:
        return "—"
    x = v / div
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def listing(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
