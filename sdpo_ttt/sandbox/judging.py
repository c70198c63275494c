"""Judge a batch of extracted programs: the sandbox's verdicts and the feedback the model will read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox.feedback import FeedbackRules
from sdpo_ttt.sandbox.verdict import Verdict

if TYPE_CHECKING:
    from sdpo_ttt.sandbox import Sandbox


def judge_batch(problem: Problem, sandbox: "Sandbox", codes: list[str | None], rules: FeedbackRules,
                truncated_at: list[int | None] | None = None) -> tuple[list[Verdict], list[str]]:
    """Verdicts (every test judged, held-back ones included) and feedback (as `rules` allow) for a batch; attempts
    with no code get a format_error without running. truncated_at[i]: the token limit attempt i was cut at (None: it
    ended by itself); its feedback says so."""
    runnable = [i for i, c in enumerate(codes) if c is not None]
    judged = sandbox.judge_many(problem, [codes[i] for i in runnable]) if runnable else []
    verdicts: list[Verdict] = [Verdict.format_error(len(problem.tests)) for _ in codes]
    for i, v in zip(runnable, judged, strict=True):
        verdicts[i] = v
    cuts = truncated_at or [None] * len(codes)
    feedback = ["" if v.passed else rules.render(problem, v, truncated_at=t) for v, t in zip(verdicts, cuts, strict=True)]
    return verdicts, feedback
