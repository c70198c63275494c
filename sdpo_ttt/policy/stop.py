"""Where an attempt ends: at the closing fence of its code block, on every sampler (issue 26, "the answer is the code").

The model writes its program, closes the fence, then explains it; the explanation is judged by no one and says
nothing about whether the program is right, yet it cost tokens, ran answers into the token limit (whose feedback
then wrongly said the program may be cut) and was distilled by the loss. So every backend stops a row on the
token that closes the first code block the extractor would judge (`extract.code_closed`, one pure function on
the decoded text):
  - the CPU decode loop (policy/decode.py) and `generate` (`CodeStopCriteria` in policy/sampling/generate.py) ask `CodeStop`
    after each token;
  - vLLM stops at every fence string and continues the rows whose block is not closed (policy/vllm_backend.py).
The attempt's tokens are the sampled tokens through that fence token, no EOS appended (finish reason "code"),
and their log-probs are those of the same tokens: what is trained on is exactly what was sampled. An answer
whose block never closes runs to EOS or the token limit as before. `Policy._completions` cuts each row after
`CodeStop.through_code` (what a sampler left after the stop, e.g. generate's padding), and the update
(`sdpo/update.build_contexts`) cuts every completion there again, whoever made it (`Policy.sample(stop_at_code=
False)`, stand-in samplers, older code): no path puts tokens after the code into training. The "cut off" feedback
is given only when the limit cut the code itself (`code_cut`).
"""

from __future__ import annotations

from collections.abc import Callable

from sdpo_ttt.policy.extract import code_closed

FENCE_CHARS = ("`", "~")


class CodeStop:
    """Asks `code_closed` of a row's decoded text, only after tokens that hold a fence character (cheap per step)."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self._fencey: dict[int, bool] = {}

    def fencey(self, token: int) -> bool:
        """Whether the token's text holds a fence character: only such a token can close a block."""
        hit = self._fencey.get(token)
        if hit is None:
            text = self.decode([token])
            hit = self._fencey[token] = any(c in text for c in FENCE_CHARS)
        return hit

    def __call__(self, ids: list[int]) -> bool:
        """Whether the row `ids` (completion tokens so far) has just closed its code block: stop it."""
        return bool(ids) and self.fencey(ids[-1]) and code_closed(self.decode(ids))

    def through_code(self, ids: list[int]) -> int | None:
        """The number of tokens through the one that closes the code block (the attempt's tokens), or None if it never closes."""
        for k in range(1, len(ids) + 1):
            if self.fencey(ids[k - 1]) and code_closed(self.decode(ids[:k])):
                return k
        return None


def code_cut(text: str, finish_reason: str) -> bool:
    """Whether the token limit cut the code itself (the "cut off" feedback is about this), not just prose after it.

    A sampler that stops at the fence never has prose after the code; this also holds for attempts made
    without that stop (older runs, stand-ins): the limit is not blamed when the code block had closed."""
    return finish_reason == "length" and not code_closed(text)
