"""One attempt at a problem: the completion the policy sampled, the program extracted from it, and (once judged) the
sandbox's verdict and the feedback rendered from it. The loop, the strategies, the SDPO update and the `sample`
command all speak of attempts through this one class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdpo_ttt.sandbox.verdict import Verdict

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Completion


@dataclass
class Attempt:
    """One judged attempt, as the loop and the strategies see it."""

    step: int
    index: int  # 0-based position in the whole run (discovery time = index + 1)
    chain: int  # position in its batch (multi-turn: the chain it belongs to)
    completion: "Completion"
    code: str | None
    verdict: Verdict
    feedback: str  # "" when passed
    parent: int | None = None  # evolve, sdpo-evolve: the index of the archived attempt this one refined
