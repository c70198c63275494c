"""benchmarks/teacher_screen.py (issue #26, 4): its pure parts against brute-force references, the teacher contexts
as data, and the prefix-cached scorer against Policy.token_logprobs on the tiny random model."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from sdpo_ttt.sdpo.reprompt import teacher_user_turn
from tests.fakes import load_benchmark

REPO = Path(__file__).resolve().parent.parent


ts = load_benchmark("teacher_screen")


# ------------------------------------------------------------------------------------------- AUROC
def brute_auroc(pos: list[float], neg: list[float]) -> float:
    wins = sum((n > p) + 0.5 * (n == p) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_auroc_matches_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos = list(rng.integers(-3, 3, rng.integers(1, 12)).astype(float))  # small integers: many ties
    neg = list(rng.integers(-2, 4, rng.integers(1, 12)).astype(float))
    assert ts.auroc(pos, neg) == pytest.approx(brute_auroc(pos, neg), abs=1e-12)


def test_auroc_is_one_when_every_buggy_token_is_lowered_most() -> None:
    assert ts.auroc([-3.0, -2.0], [0.0, 1.0, 0.5]) == 1.0
    assert ts.auroc([0.0, 1.0], [-3.0, -2.0]) == 0.0
    assert ts.auroc([1.0], [1.0]) == 0.5


def test_auroc_is_nan_without_one_side() -> None:
    assert math.isnan(ts.auroc([], [1.0]))
    assert math.isnan(ts.auroc([1.0], []))


# ------------------------------------------------------------------------------------------- one pair
def test_pair_figures_match_their_definitions() -> None:
    rng = np.random.default_rng(1)
    rs, rt, ws, wt = (list(rng.normal(-1, 0.5, n)) for n in (7, 7, 9, 9))
    differs = [True, False, False, True, True, False, False, False, True]
    f = ts.pair_figures(rs, rt, ws, wt, differs)
    ref_delta = sum(rt) / 7 - sum(rs) / 7
    wrong_delta = sum(wt) / 9 - sum(ws) / 9
    ratio = [t - s for t, s in zip(wt, ws, strict=True)]
    assert f["ref_delta"] == pytest.approx(ref_delta)
    assert f["wrong_delta"] == pytest.approx(wrong_delta)
    assert f["discrimination"] == pytest.approx(ref_delta - wrong_delta)
    assert f["auroc"] == pytest.approx(brute_auroc([r for r, d in zip(ratio, differs, strict=True) if d],
                                                   [r for r, d in zip(ratio, differs, strict=True) if not d]))


def test_a_teacher_that_lowers_only_the_buggy_tokens_discriminates_and_points_at_them() -> None:
    student = [-1.0] * 6
    teacher_wrong = [-1.0, -1.0, -3.0, -3.0, -1.0, -1.0]
    f = ts.pair_figures([-1.0] * 4, [-0.8] * 4, student, teacher_wrong, [False, False, True, True, False, False])
    assert f["discrimination"] > 0 and f["auroc"] == 1.0


# ------------------------------------------------------------------------------------------- bootstrap over problems
def test_bootstrap_of_equal_problem_means_has_zero_width() -> None:
    assert ts.bootstrap_problems([0.25, 0.25, 0.25]) == (0.25, 0.25, 0.25)
    assert all(math.isnan(x) for x in ts.bootstrap_problems([]))


def test_bootstrap_replicates_follow_the_exact_resampling_distribution() -> None:
    means = [0.0, 1.0, 3.0]
    exact = np.array([np.mean(c) for c in itertools.product(means, repeat=3)])  # every resample, equally likely
    est, lo, hi = ts.bootstrap_problems(means, n_boot=40000, level=0.9)
    assert est == pytest.approx(4 / 3)
    # the exact distribution's 5% and 95% points, up to the Monte-Carlo error at a discrete distribution's steps
    assert np.mean(exact <= lo) >= 0.05 - 0.01 and np.mean(exact < lo) <= 0.05 + 0.01
    assert np.mean(exact >= hi) >= 0.05 - 0.01 and np.mean(exact > hi) <= 0.05 + 0.01


def test_problems_not_pairs_are_resampled_and_weighed() -> None:
    pairs = [{"problem": "a", "contexts": {"c": {"x": 1.0}}}] + [{"problem": "b", "contexts": {"c": {"x": 0.0}}}] * 9
    est, lo, hi = ts.summarise(pairs, "c", "x", n_boot=2000)
    assert est == 0.5  # not 0.1: problem b's nine pairs count once
    assert lo == 0.0 and hi == 1.0  # a replicate draws problems: only 0, 0.5 or 1 can occur
    assert ts.problem_means([("a", 1.0), ("a", math.nan), ("b", math.nan)]) == {"a": 1.0}


# ------------------------------------------------------------------------------------------- programs
def test_strip_comments_removes_comments_but_not_hashes_in_strings() -> None:
    code = "# says the bug\nx = '#1'  # inline\n\n    # indented comment\ny = 2\n"
    assert ts.strip_comments(code) == "x = '#1'\n\ny = 2\n"


def test_differing_lines_are_the_changed_and_inserted_lines_of_the_wrong_program() -> None:
    ref = "a = 1\nb = 2\nc = 3\nprint(a + b + c)\n"
    wrong = "a = 1\nb = 2\nb += 1\nc = 4\nprint(a + b + c)\n"
    assert ts.differing_lines(ref, wrong) == {2, 3}
    assert ts.differing_lines(ref, ref) == set()


def test_token_lines_give_each_character_token_its_program_line() -> None:
    code = "x = 1\n  y = 2\nprint(x)"
    text = ts.answer_text(code)
    offsets = [(i, i + 1) for i in range(len(text))]  # a character-level "tokenizer"
    lines = ts.token_lines(offsets, text)
    start = len(ts.ANSWER_HEAD)
    for i, ch in enumerate(text):
        inside = start <= i < start + len(code)
        assert lines[i] == (text[start:i].count("\n") if inside else -1), (i, ch)


def test_a_whitespace_led_token_belongs_to_the_line_of_its_first_visible_character() -> None:
    text = ts.answer_text("a = 1\n    b = 2")
    s = text.index("\n    b")
    assert ts.token_lines([(s, s + 6)], text) == [1]  # "\n    b": the b's line
    assert ts.token_lines([(s, s + 5)], text) == [0]  # "\n    ": whitespace only, the line it ends


# ------------------------------------------------------------------------------------------- teacher contexts
def test_the_plain_context_is_the_teacher_prompt_of_solve() -> None:
    plain = ts.TeacherContext("public")
    assert ts.teacher_turn(plain, "Q?", "Failed: test 1", "x = 1\n") == teacher_user_turn("Q?", "Failed: test 1")


def test_contexts_add_the_attempt_sibling_and_diagnosis_in_order() -> None:
    ctx = ts.TeacherContext("every", "all", with_code=True, sibling=True, diagnosis=True)
    text = ts.teacher_turn(ctx, "Q?", "FEEDBACK", "ATTEMPT = 1", ("passed 6/8 tests", "SIBLING = 2"), "DIAG")
    assert "A partial solution (passed 6/8 tests):" in text
    order = [text.index(s) for s in ("Q?", "SIBLING = 2", "ATTEMPT = 1", "FEEDBACK", "DIAG")]
    assert order == sorted(order)
    bare = ts.TeacherContext("bare", "all")
    assert "ATTEMPT" not in ts.teacher_turn(bare, "Q?", "FEEDBACK", "ATTEMPT = 1", ("l", "SIBLING = 2"), "DIAG")


def test_context_names_are_unique_and_visibilities_known() -> None:
    names = [c.name for c in ts.CONTEXTS]
    assert len(names) == len(set(names))
    assert {c.visibility for c in ts.CONTEXTS} <= {"public", "all"}


def test_the_best_sibling_is_the_other_program_with_the_highest_score() -> None:
    class V:
        def __init__(self, score: float) -> None:
            self.score = score

    a, b, c = (ts.Program(n, "", V(s)) for n, s in (("a", 0.5), ("b", 0.75), ("c", 0.75)))
    assert ts.best_sibling([a, b, c], a) is b  # ties: the first by name
    assert ts.best_sibling([a, b, c], b) is c
    assert ts.best_sibling([a], a) is None


# ------------------------------------------------------------------------------------------- the scorer
def test_prefix_scorer_equals_token_logprobs_of_the_base_model(tiny_model_dir: Path) -> None:
    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), lora_rank=2, lora_alpha=4, device="cpu"), seed=0)
    for p in pol.trainable_parameters():  # a student adapter that is not zero: the scorer must switch it off
        p.data.normal_(0, 0.5)
    student = list(range(5, 30))
    teacher = student[:20] + list(range(40, 52))  # shares 20 tokens with the student prompt
    other = list(range(60, 70))  # shares none
    answers = [list(range(100, 112)), [7], list(range(200, 203))]
    scorer = ts.PrefixScorer(pol)
    scorer.set_prefix(student)
    for prompt in (student, teacher, other):
        got = scorer.score(prompt, answers)
        want = pol.token_logprobs([prompt] * len(answers), answers, adapter=None)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w.double().numpy(), atol=1e-4)


def test_saved_results_merge_their_contexts_per_pair(tmp_path: Path) -> None:
    import json

    def pair(problem: str, ctx: str, x: float) -> dict:
        return {"problem": problem, "wrong": "w", "contexts": {ctx: {"discrimination": x}}}

    (tmp_path / "a.json").write_text(json.dumps({"contexts": [{"name": "public"}], "pairs": [pair("p", "public", 1.0)]}))
    (tmp_path / "b.json").write_text(json.dumps({"contexts": [{"name": "all+diagnosis"}],
                                                 "pairs": [pair("p", "all+diagnosis", 2.0), pair("q", "all+diagnosis", 3.0)]}))
    pairs, names = ts.merge_results([tmp_path / "a.json", tmp_path / "b.json"])
    assert names == ["public", "all+diagnosis"]
    by = {p["problem"]: p["contexts"] for p in pairs}
    assert by == {"p": {"public": {"discrimination": 1.0}, "all+diagnosis": {"discrimination": 2.0}},
                  "q": {"all+diagnosis": {"discrimination": 3.0}}}


@pytest.mark.sandbox
def test_smoke_run_screens_two_problems_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "screen.json"
    assert ts.main(["--smoke", "--contexts", "public,all+sibling", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["feedback_style"] == "reference"
    assert [c["name"] for c in data["contexts"]] == ["public", "all+sibling"]
    assert len(data["pairs"]) == 2 and all(set(p["contexts"]) == {"public", "all+sibling"} for p in data["pairs"])
    assert "| public | 2 | 2 |" in capsys.readouterr().out


def test_results_of_different_feedback_styles_keep_their_contexts_apart(tmp_path: Path) -> None:
    import json

    for style in ("detailed", "reference"):
        (tmp_path / f"{style}.json").write_text(json.dumps({
            "feedback_style": style, "contexts": [{"name": "public"}],
            "pairs": [{"problem": "p", "wrong": "w", "contexts": {"public": {"discrimination": float(style == "reference")}}}]}))
    pairs, names = ts.merge_results([tmp_path / "detailed.json", tmp_path / "reference.json"])
    assert names == ["public (detailed feedback)", "public (reference feedback)"]
    assert pairs[0]["contexts"] == {"public (detailed feedback)": {"discrimination": 0.0},
                                    "public (reference feedback)": {"discrimination": 1.0}}
