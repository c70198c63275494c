"""Warnings for runs that are about to waste their budget: a learning rate far outside what LoRA uses, and a
sudden jump in format errors after an update (the model stopped writing programs: the update broke it).

Pure functions; the loop shows their messages through its reporter and keeps them in summary.json ("warnings").
"""

from __future__ import annotations

from collections.abc import Sequence

from sdpo_ttt.config.tree import OptimConfig

DEFAULT_LR: float = OptimConfig.model_fields["lr"].default

# LoRA fine-tuning learning rates in practice (the paper's 1e-6 is for full fine-tuning): outside LR_SANE by more
# than this factor, a warning.
LR_SANE = (1e-6, 1e-3)
LR_FACTOR = 10.0

# A format-error jump: the batch after an update has at least JUMP_MIN of its attempts (and at least JUMP_COUNT of
# them) without a program, and JUMP_RISE more than the batches before it did on average. Attempts cut off at
# --max-new-tokens are not counted: the token limit, not the update, took their program away.
JUMP_MIN = 0.5
JUMP_RISE = 0.4
JUMP_COUNT = 2


def lr_warning(lr: float, learns: bool = True) -> str | None:
    """A warning for an extreme --lr of a strategy that learns (None when it is in a usable range)."""
    if not learns:
        return None
    low, high = LR_SANE
    if lr > high * LR_FACTOR:
        return (f"warning: --lr {lr:g} is far above the rates LoRA fine-tuning uses ({low:g} to {high:g}): updates this large "
                f"usually turn every later attempt into gibberish; try the default --lr {DEFAULT_LR:g}")
    if lr < low / LR_FACTOR:
        return f"warning: --lr {lr:g} is far below the rates LoRA fine-tuning uses ({low:g} to {high:g}): the updates will change almost nothing"
    return None


def format_error_rate(verdicts: Sequence[str], truncated: Sequence[bool] | None = None) -> float:
    """Fraction of a batch's attempts with no extractable program that were not cut off at the token limit."""
    if not verdicts:
        return 0.0
    cut = truncated or [False] * len(verdicts)
    return sum(v == "format_error" and not c for v, c in zip(verdicts, cut, strict=True)) / len(verdicts)


def format_error_jump(before: Sequence[float], after: float, lr: float, batch: int = JUMP_COUNT) -> str | None:
    """A warning when the format-error rate of the batch after an update jumped above the earlier batches' mean.

    before: the format-error rates of the batches so far (at least one); after: the rate of the batch just judged
    (`batch` attempts), sampled after the last update."""
    if not before:
        return None
    base = sum(before) / len(before)
    if after >= JUMP_MIN and after - base >= JUMP_RISE and round(after * batch) >= JUMP_COUNT:
        return (f"warning: format errors jumped from {base:.0%} to {after:.0%} of attempts after the last update: "
                f"the updates may be breaking the model; check --lr (now {lr:g})")
    return None
