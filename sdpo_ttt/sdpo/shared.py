"""The question prompt of one SDPO step, run once: the prefix the batch's student (or teacher) prompts share.

Every attempt of a batch answers the same question: the student prompts x are identical, the teacher prompts
(x, [d], f) share x and differ in the feedback. Per optimiser step, `SharedPrompts` runs that common prefix once
per (context, adapter) on first use (policy/prefix.py) and every micro-batch reads its K, V:

  context   adapter                              grad   used by
  student   student                              yes    3. the student pass; its gradient accumulates over the
                                                          micro-batches and `backward()` sends it through the prefix
  student   base model                           no     π_base(·|x, y<t) for β·L_kl
  teacher   the teacher mode's (sdpo/teacher.py)  no     2. the teacher pass

The prefix is recomputed each optimiser step (the student moves between steps). Where there is nothing to share
(one attempt, prompts without a common prefix of MIN_SHARED_TOKENS, gradient checkpointing with autograd: see
`Policy.prefix`) the rows run as before, unshared. Hidden states, losses and gradients are the unshared
computation's up to float rounding (tests/test_shared_prompt.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from sdpo_ttt.policy.prefix import Prefix, shared_ids
from sdpo_ttt.sdpo.microbatch import UpdateBatch

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Policy

Context = Literal["student", "teacher"]


class SharedPrompts:
    """Hidden states of a batch's rows, the prompt prefix they share computed once (per context and adapter)."""

    def __init__(self, policy: "Policy", batch: UpdateBatch, *, enabled: bool = True) -> None:
        rows = batch.nonempty_rows()
        self.policy = policy
        self.ids: dict[str, list[int] | None] = {
            "student": shared_ids([batch.student_prompts[i] for i in rows]) if enabled else None,
            "teacher": shared_ids([batch.teacher_prompts[i] for i in rows]) if enabled else None,
        }
        self.prefixes: dict[tuple[str, str | None, bool], Prefix | None] = {}

    def hidden_states(self, context: Context, prompts: list[list[int]], completions: list[list[int]], *,
                      adapter: str | None) -> tuple[Tensor, Tensor]:
        """`Policy.hidden_states` of these rows (prompts of the given context, a subset of the batch's)."""
        return self.policy.hidden_states(prompts, completions, adapter=adapter, prefix=self._prefix(context, adapter))

    def scorer(self, context: Context):  # noqa: ANN201 (a `hidden_states`-shaped callable, for Teacher.score)
        return lambda prompts, completions, *, adapter: self.hidden_states(context, prompts, completions, adapter=adapter)

    def _prefix(self, context: Context, adapter: str | None) -> Prefix | None:
        key = (context, adapter, torch.is_grad_enabled())
        if key not in self.prefixes:
            ids = self.ids[context]
            self.prefixes[key] = None if ids is None else self.policy.prefix(ids, adapter=adapter)
        return self.prefixes[key]

    def backward(self) -> None:
        """After every micro-batch's backward: the gradient the rows left on the shared prefix, through the prefix."""
        for prefix in self.prefixes.values():
            if prefix is not None and prefix.graph:
                prefix.backward()
