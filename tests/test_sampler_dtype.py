"""benchmarks/sampler_dtype.py (issue 23): the pairing of float32 and bfloat16 attempts, the paired figures against
brute-force counts, the CPU flags, and the sampling on the tiny random model: two float32 samplers give identical
pairs (the pairing and the seeds line up), drawn as the loop draws."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from tests.fakes import PASS_MARK, FakeSandbox, load_benchmark

sd = load_benchmark("sampler_dtype")


def _attempt(problem: str, i: int, *, passed: bool = False, score: float = 0.0, ids: list[int] | None = None, text: str | None = None,
             batch: int = 4) -> dict:
    ids = [1, 2, 3] if ids is None else ids
    return {"problem": problem, "i": i, "step": i // batch, "row": i % batch, "ids": ids, "text": text if text is not None else str(ids),
            "n_tokens": len(ids), "passed": passed, "score": score, "outcome": "passed" if passed else "wrong_answer"}


# ------------------------------------------------------------------------------------------- pairing
def test_pairs_attempt_i_with_attempt_i_and_finds_the_first_differing_token() -> None:
    f32 = [_attempt("p", 0, ids=[5, 6, 7]), _attempt("p", 1, ids=[5, 6, 7], passed=True, score=1.0), _attempt("p", 2, ids=[5, 6])]
    bf16 = [_attempt("p", 0, ids=[5, 6, 7]), _attempt("p", 1, ids=[5, 9, 7]), _attempt("p", 2, ids=[5, 6, 8])]
    pairs = sd.pair_attempts(f32, bf16)
    assert [p["i"] for p in pairs] == [0, 1, 2]
    assert [p["identical"] for p in pairs] == [True, False, False]
    assert [p["first_diff"] for p in pairs] == [None, 1, 2]  # a longer row differs where the shorter one ended
    assert (pairs[1]["passed_f32"], pairs[1]["passed_bf16"], pairs[1]["score_f32"], pairs[1]["score_bf16"]) == (True, False, 1.0, 0.0)


def test_pairing_refuses_attempts_that_are_not_the_same_draw() -> None:
    f32 = [_attempt("p", i) for i in range(4)]
    with pytest.raises(ValueError, match="not the same draw"):
        sd.pair_attempts(f32, [f32[1], f32[0], *f32[2:]])  # reordered
    with pytest.raises(ValueError, match="not the same draw"):
        sd.pair_attempts(f32, [_attempt("q", i) for i in range(4)])  # another problem's
    with pytest.raises(ValueError, match="not paired"):
        sd.pair_attempts(f32, f32[:3])


# ------------------------------------------------------------------------------------------- paired figures
def brute_two_sided_binomial(a: int, b: int) -> float:
    """P(a Binomial(a + b, 1/2) count is at most as likely as a), summed over outcomes: the exact two-sided test."""
    n = a + b
    prob = [math.comb(n, k) / 2**n for k in range(n + 1)]
    return min(1.0, sum(q for q in prob if q <= prob[a] * (1 + 1e-12)))


@pytest.mark.parametrize("seed", range(5))
def test_compare_matches_brute_force_counts(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(3, 40)
    pairs = [{"passed_f32": rng.random() < 0.5, "passed_bf16": rng.random() < 0.5, "score_f32": rng.random(), "score_bf16": rng.random(),
              "identical": rng.random() < 0.3, "first_diff": rng.randint(0, 50)} for _ in range(n)]
    for p in pairs:
        if p["identical"]:
            p["first_diff"] = None
    s = sd.compare(pairs, n_boot=300)
    a = b = 0
    for p in pairs:
        a += p["passed_f32"] and not p["passed_bf16"]
        b += p["passed_bf16"] and not p["passed_f32"]
    assert (s["f32_only"], s["bf16_only"]) == (a, b)
    assert s["p_mcnemar"] == pytest.approx(brute_two_sided_binomial(a, b), abs=1e-12)
    assert s["pass_rate_f32"] == pytest.approx(sum(p["passed_f32"] for p in pairs) / n)
    assert s["d_pass_rate"] == pytest.approx((b - a) / n)
    assert s["d_mean_score"] == pytest.approx(sum(p["score_bf16"] - p["score_f32"] for p in pairs) / n)
    lo, hi = s["d_mean_score_ci90"]
    assert lo <= s["d_mean_score"] <= hi
    assert s["identical"] == sum(p["identical"] for p in pairs)
    diffs = sorted(p["first_diff"] for p in pairs if p["first_diff"] is not None)
    if diffs:
        m = len(diffs) // 2
        assert s["median_first_diff"] == (diffs[m] if len(diffs) % 2 else (diffs[m - 1] + diffs[m]) / 2)


def test_compare_of_identical_pairs_finds_no_difference() -> None:
    pairs = sd.pair_attempts([_attempt("p", i, passed=i % 2 == 0, score=0.5) for i in range(8)],
                             [_attempt("p", i, passed=i % 2 == 0, score=0.5) for i in range(8)])
    s = sd.compare(pairs, n_boot=200)
    assert (s["f32_only"], s["bf16_only"], s["p_mcnemar"], s["identical_share"]) == (0, 0, 1.0, 1.0)
    assert s["d_mean_score_ci90"] == [0.0, 0.0] and s["d_pass_rate_ci90"] == [0.0, 0.0] and s["median_first_diff"] is None


def test_speed_is_tokens_over_sampling_seconds_and_their_ratio() -> None:
    s = sd.speed({"float32": {"tokens": 1000, "seconds": 100.0, "attempts": 8}, "bfloat16": {"tokens": 900, "seconds": 50.0, "attempts": 8}})
    assert s["tokens_per_s_float32"] == 10.0 and s["tokens_per_s_bfloat16"] == 18.0 and s["speedup"] == pytest.approx(1.8)
    assert s["s_per_attempt_float32"] == 12.5


def test_cpu_flags_read_from_cpuinfo() -> None:
    text = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert sd.cpu_flags(text) == {"model": "Some CPU", "avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": False}
    assert sd.cpu_flags("") == {"model": "?", "avx2": False, "avx512f": False, "avx512_bf16": False, "amx_bf16": False}


# ------------------------------------------------------------------------------------------- sampling on the tiny model
def _policy(model_dir: Path, dtype: str):
    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    return Policy.load(PolicyConfig(model=str(model_dir), device="cpu", dtype="float32", lora_rank=2, lora_alpha=4,
                                    lora_targets=["q_proj", "v_proj"], sampler_dtype=dtype), seed=0)


def test_two_float32_samplers_give_identical_pairs_drawn_as_the_loop_draws(tiny_model_dir: Path, problems_dir: Path) -> None:
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.run.loop import step_seed

    a, b = _policy(tiny_model_dir, "float32"), _policy(tiny_model_dir, "float32")
    problem = load_problem(problems_dir / "two-sum")
    prompt = a.chat_ids(a.problem_messages(problem))
    rows, timing = sd.sample_problem({"float32": a, "bfloat16": b}, prompt, problem.id, n=6, batch_size=4, seed=7, max_new_tokens=8)
    assert [r["i"] for r in rows["float32"]] == list(range(6)) and [r["step"] for r in rows["float32"]] == [0, 0, 0, 0, 1, 1]
    # batch s is one Policy.sample call on B copies of the prompt, seeded as the loop seeds step s
    loop = a.sample([prompt] * 4, max_new_tokens=8, seed=step_seed(7, 0), adapter=None) + \
        a.sample([prompt] * 2, max_new_tokens=8, seed=step_seed(7, 1), adapter=None)
    assert [r["ids"] for r in rows["float32"]] == [c.completion_ids for c in loop]
    assert len({tuple(r["ids"]) for r in rows["float32"]}) > 1  # rows are different draws, not one repeated
    sandbox = FakeSandbox(n_tests=len(problem.tests))
    for d in rows:
        sd.judge(sandbox, problem, rows[d])
    pairs = sd.pair_attempts(rows["float32"], rows["bfloat16"])
    assert all(p["identical"] and p["first_diff"] is None for p in pairs)
    assert sd.compare(pairs, n_boot=100)["identical_share"] == 1.0
    assert timing["float32"]["attempts"] == 6 and timing["float32"]["tokens"] == sum(r["n_tokens"] for r in rows["float32"])


def test_judge_records_verdicts_and_no_code_as_a_format_error(problems_dir: Path) -> None:
    from sdpo_ttt.problem.schema import load_problem

    problem = load_problem(problems_dir / "two-sum")
    rows = [_attempt("two-sum", 0, text=f"```python\nprint(1)  {PASS_MARK}\n```"), _attempt("two-sum", 1, text="no code here")]
    sd.judge(FakeSandbox(n_tests=len(problem.tests)), problem, rows)
    assert [(r["passed"], r["score"], r["outcome"]) for r in rows] == [(True, 1.0, "passed"), (False, 0.0, "format_error")]


def test_bf16_status_says_whether_the_bfloat16_copy_is_in_effect(tiny_model_dir: Path) -> None:
    from sdpo_ttt.policy.decode import bf16_available

    pol = _policy(tiny_model_dir, "bfloat16")
    why = sd.bf16_status(pol)
    assert (why is None) == bf16_available(), why
    assert sd.bf16_status(_policy(tiny_model_dir, "float32")) is not None  # the float32 sampler never is
    assert "MEANINGLESS" in sd.warning_text("no avx512_bf16")


@pytest.mark.sandbox
def test_smoke_run_writes_the_pairs_and_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "sd.json"
    assert sd.main(["--smoke", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["problems"] == list(sd.DEFAULT_PROBLEMS[:2]) and data["settings"]["n"] == 4
    assert len(data["pairs"]) == 8 and set(data["summary"]["problems"]) == set(sd.DEFAULT_PROBLEMS[:2])
    assert data["summary"]["pooled"]["pairs"] == 8 and data["bf16_in_effect"] == (data["bf16_fallback_reason"] is None)
    assert "| **pooled** | 8 |" in capsys.readouterr().out
