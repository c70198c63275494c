"""The strategies' prompt bookkeeping without a model: the teacher's context and its feedback fitting, the
demonstration rule, and the multi-turn chains' FIFO of feedback (also rebuilt from the attempts log on resume)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdpo_ttt.run.journal import attempt_record
from sdpo_ttt.sdpo.reprompt import CUT_MARK, MIN_FEEDBACK_CHARS, Contexts, teacher_user_turn
from sdpo_ttt.policy.stop import CodeStop
from sdpo_ttt.sdpo.update import build_contexts
from sdpo_ttt.run.strategies import MultiTurn
from tests.fakes import attempt, char_ids, load_policy, tiny_config

MESSAGES = [{"role": "system", "content": "S."}, {"role": "user", "content": "Q?"}]


def _text(ids: list[int]) -> str:
    return "".join(map(chr, ids))


def test_student_context_is_the_plain_question() -> None:
    assert Contexts(char_ids, MESSAGES, 200).student() == char_ids(MESSAGES)


def test_short_feedback_reaches_the_teacher_whole() -> None:
    fb = "Test 1 (public): wrong answer.\nExpected output:\n8\nYour output:\n9"
    ids = Contexts(char_ids, MESSAGES, 1000).teacher(fb)
    assert _text(ids) == "S." + teacher_user_turn("Q?", fb)


def test_long_feedback_is_cut_middle_out_until_the_prompt_fits() -> None:
    fb = "HEAD first line\n" + "x" * 3000 + "\nTAIL last line"
    limit = 600
    text = _text(Contexts(char_ids, MESSAGES, limit).teacher(fb, demo="print(8)"))
    assert len(text) <= limit
    assert "HEAD first" in text and "last line" in text and CUT_MARK in text  # both ends kept, the middle cut
    assert "print(8)" in text  # the demonstration is never cut
    assert len(text) > limit // 2  # halving stops as soon as it fits, not long after


def test_feedback_is_not_cut_below_its_floor_when_nothing_can_fit() -> None:
    fb = "y" * 500
    text = _text(Contexts(char_ids, MESSAGES, 10).teacher(fb))  # even the question alone is over the limit
    kept = text.split("feedback from your unsuccessful earlier attempt:\n\n")[1].split("\n\n\nCorrectly")[0]
    assert MIN_FEEDBACK_CHARS // 2 <= len(kept) < MIN_FEEDBACK_CHARS  # cut down to the floor, then used as is


def test_multi_turn_context_drops_the_oldest_feedback_first() -> None:
    fbs = [f"feedback {i} " + "z" * 100 for i in range(5)]
    text = _text(Contexts(char_ids, MESSAGES, 450).multi_turn(fbs))
    assert len(text) <= 450
    kept = [i for i in range(5) if f"feedback {i} " in text]
    assert kept == [3, 4]  # the newest ones, oldest first
    assert text.index("feedback 3") < text.index("feedback 4")


def test_demonstration_is_a_passing_sibling_never_the_attempt_itself() -> None:
    contexts = Contexts(char_ids, MESSAGES, 2000)
    attempts = [attempt(0, feedback="fb0"), attempt(1, passed=True, code="WIN1\n"), attempt(2, feedback="fb2"),
                attempt(3, passed=True, code="WIN3\n")]
    batch = build_contexts(attempts, contexts)
    texts = [_text(t) for t in batch.teacher_prompts]
    assert batch.has_demo == [True, True, True, True] and batch.has_feedback == [True, False, True, False]
    assert "WIN1" in texts[0] and "fb0" in texts[0] and "WIN1" in texts[2]
    assert "WIN3" in texts[1] and "WIN1" not in texts[1]  # its own code is never its demonstration
    assert "WIN1" in texts[3] and "WIN3" not in texts[3]
    assert batch.student_prompts == [a.completion.prompt_ids for a in attempts]
    assert batch.rewards == [0.0, 1.0, 0.0, 1.0]


def test_without_feedback_or_demonstration_the_teacher_sees_the_student_context() -> None:
    contexts = Contexts(char_ids, MESSAGES, 2000)
    batch = build_contexts([attempt(0, passed=True, code="ONLY\n")], contexts)
    assert batch.teacher_prompts == [contexts.student()] and batch.has_demo == [False]


@pytest.fixture(scope="module")
def multi_turn_parts(tiny_model_dir: Path):
    cfg = tiny_config(tiny_model_dir, strategy="multi-turn", max_prompt_tokens=160)
    policy = load_policy(cfg)
    return policy, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add two numbers."}], cfg


def test_multi_turn_keeps_a_fifo_of_feedback_per_chain(multi_turn_parts) -> None:
    policy, messages, cfg = multi_turn_parts
    strategy = MultiTurn(policy, messages, cfg)
    base = policy.decode(strategy.prompts(1)[0])
    steps = [
        [attempt(0, step=0, chain=0, feedback="alpha0"), attempt(1, step=0, chain=1, passed=True), attempt(2, step=0, chain=2, feedback="alpha2")],
        [attempt(3, step=1, chain=0, feedback="beta0"), attempt(4, step=1, chain=1, feedback="beta1"), attempt(5, step=1, chain=2, feedback="beta2")],
    ]
    for batch in steps:
        strategy.observe(batch)
    chain0, chain1, chain2 = (policy.decode(p) for p in strategy.prompts(3))
    assert "alpha0" in chain0 and "beta0" in chain0 and chain0.index("alpha0") < chain0.index("beta0")
    assert "alpha2" not in chain0 and "beta1" not in chain0  # a chain sees only its own feedback
    assert "beta1" in chain1 and "alpha" not in chain1  # a passed attempt leaves no feedback
    assert "alpha2" in chain2 and "beta2" in chain2
    assert policy.decode(strategy.prompts(4)[3]) == base  # a new chain starts from the plain question

    many = "gamma " + "w " * 40
    for step in range(2, 6):
        strategy.observe([attempt(10 + step, step=step, chain=0, feedback=f"{many}{step}")])
    ids = strategy.prompts(1)[0]
    text = policy.decode(ids)
    assert len(ids) <= cfg.sampling.max_prompt_tokens
    assert f"{many}5" in text and "alpha0" not in text  # the newest kept, the oldest dropped first

    resumed = MultiTurn(policy, messages, cfg)  # resume rebuilds the chains from attempts.jsonl
    records = [attempt_record(a, {"sample": 0.0, "judge": 0.0}) for batch in steps for a in batch]
    records += [attempt_record(attempt(10 + s, step=s, chain=0, feedback=f"{many}{s}"), {"sample": 0.0, "judge": 0.0}) for s in range(2, 6)]
    resumed.load(Path("unused"), records)
    assert resumed.prompts(3) == strategy.prompts(3)


def test_tokens_after_the_closing_fence_are_not_trained_on() -> None:
    """Issue 26: whatever sampled it, the completion the update trains on ends at its closing code fence."""
    words = {4: "```python\nprint(1)\n", 5: "```", 6: "\nThis program prints one."}
    stop = CodeStop(lambda ids: "".join(words[i] for i in ids))
    contexts = Contexts(char_ids, [{"role": "user", "content": "Q"}], 4096)
    attempts = [attempt(0, completion_ids=[4, 5, 6, 6]), attempt(1, completion_ids=[4, 6, 6])]
    assert build_contexts(attempts, contexts, stop.through_code).completions == [[4, 5], [4, 6, 6]]  # the second never closed
    assert build_contexts(attempts, contexts).completions == [[4, 5, 6, 6], [4, 6, 6]]
