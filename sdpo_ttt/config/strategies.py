"""The strategies' names and one-line help, as data: what the config accepts for --strategy and what --help says.

The classes that implement them live in run/strategies.py, whose registry is keyed by these names (a test checks
that the two agree); this module imports nothing of the program, so the config needs nothing above it.
"""

from __future__ import annotations

from typing import Literal

# In report order.
StrategyName = Literal["sdpo", "sdpo-evolve", "multi-turn", "evolve", "best-of-k"]
SUMMARIES: dict[str, str] = {
    "sdpo": "learn from feedback with LoRA (self-distillation from the feedback-conditioned teacher)",
    "sdpo-evolve": "evolve's refining prompts from the LoRA student, learning by SDPO (teacher: the refining prompt + the "
                   "attempt's own feedback)",
    "multi-turn": "each chain re-prompted with its own earlier feedback",
    "evolve": "frozen model refining a parent from the archive of judged attempts (picked by --parent-selection), shown "
              "with its code and feedback",
    "best-of-k": "i.i.d. samples from the base model",
}
BASELINE = "best-of-k"  # the strategy others are measured against (x best-of-k)
# What `compare` runs without --strategies: the method and the three baselines a user would pick instead (sdpo-evolve,
# which costs a learning run per seed more, is asked for by name).
COMPARE_DEFAULT = ("sdpo", "multi-turn", "evolve", "best-of-k")


def strategy_help() -> str:
    return "; ".join(f"{name}: {summary}" for name, summary in SUMMARIES.items())
