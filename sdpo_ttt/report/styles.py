"""How each strategy is drawn in the report's plots: a colour and a matplotlib dash style per name, distinct so that
overlapping curves stay visible (read through plots.style_of). Names outside this mapping get plots.OTHER_COLORS
and a solid line."""

from __future__ import annotations

from typing import Any

STYLES: dict[str, tuple[str, Any]] = {
    "sdpo": ("#1f77b4", "-"),
    "sdpo-evolve": ("#9467bd", (0, (6, 1.5, 1.5, 1.5))),
    "multi-turn": ("#2ca02c", (0, (5, 2))),
    "evolve": ("#ff7f0e", (0, (3, 1, 1, 1, 1, 1))),
    "best-of-k": ("#d62728", (0, (1.5, 2))),
}
