"""Options of the refining strategies, evolve and sdpo-evolve (sdpo_ttt/run/evolve.py): how a parent is chosen from
the archive of judged attempts, and what else its prompt shows. This is the `evolve` section of the run config.

The rule (docs/strategies.md): each attempt of a batch after the first refines the archived program of highest
priority, Q(i) + exploration term, picked one after another, each pick counting as a visit at once (ties broken
by the run's seeded random generator). The symbols follow TTT-Discover's PUCT reuse rule (arXiv 2601.16175).
"""

from __future__ import annotations

from typing import Literal

from sdpo_ttt.config.fields import Section, option


class EvolveConfig(Section):
    selection: Literal["puct", "ucb"] = option(
        "puct",
        "How evolve and sdpo-evolve pick a parent from the archive. Both score a program i by Q(i), the best score among "
        "the attempts descended from it (its own score while it has none), plus an exploration term that shrinks with "
        "n(i), the attempts descended from it so far, and grows with T, the refinements so far. puct: "
        "c·s·P(i)·sqrt(1+T)/(1+n(i)), P(i) a linear prior over the score rank (TTT-Discover). ucb: c·s·sqrt(ln(1+T)/(1+n(i))). "
        "s = max − min score in the archive (1 when all are equal).",
        flag="parent_selection",
    )
    exploration: float = option(
        1.0, "c of the parent rule (see --parent-selection): 0 = always refine the best lineage; larger = spread over more "
        "parents.", flag="parent_exploration", ge=0,
    )
    inspirations: int = option(
        0, "Other archive programs shown with the parent, for ideas (evolve, sdpo-evolve): the best-scored ones that differ "
        "from the parent's code. 0 keeps the prompt short for small models; dropped first when the prompt would exceed "
        "--max-prompt-tokens.", ge=0, le=2,
    )
