"""Sample programs for a problem: prompt -> completions -> extracted programs (the `sample` command's library side).

Each comes back as (completion, program); judged, the pair becomes an `Attempt` (sandbox/attempt.py)."""

from __future__ import annotations

from typing import Any

from sdpo_ttt.policy.extract import extract_code
from sdpo_ttt.policy.model import Completion, Policy


def sample_programs(
    policy: Policy,
    problem: Any,
    n: int,
    *,
    seed: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    batch_size: int | None = None,
    adapter: str | None = "student",
) -> list[tuple[Completion, str | None]]:
    """n completions for the problem from the policy (same prompt repeated), each with the program extracted from it
    (None: no program could be extracted; judged as format_error)."""
    ids = policy.chat_ids(policy.problem_messages(problem))
    comps = policy.sample([ids] * n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                          adapter=adapter, batch_size=batch_size)
    return [(c, extract_code(c.text)) for c in comps]
