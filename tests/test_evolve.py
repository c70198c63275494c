"""evolve and sdpo-evolve (sdpo_ttt/run/evolve.py): the parent rule against a brute-force reference, the refining
prompt and its fitting, sdpo-evolve's teacher context, the parent log and the discovery's lineage, and a resumed
run equal to an uninterrupted one (tiny random model, fake sandbox)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import ConfigError
from sdpo_ttt.policy.model import Completion
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.report.runs import discovery_lineage, load_run
from sdpo_ttt.report.write import build_report
from sdpo_ttt.run import loop
from sdpo_ttt.run.journal import attempt_record
from sdpo_ttt.run.evolve import Evolve, lineage_stats, priority, rank_prior, select_parents
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.strategies import sdpo_evolve
from sdpo_ttt.sandbox.attempt import Attempt
from sdpo_ttt.sandbox.verdict import Outcome, Verdict
from sdpo_ttt.sdpo.reprompt import CUT_MARK, REFINE_INSTRUCTION, Contexts, Program
from sdpo_ttt.sdpo.update import build_contexts
from tests.fakes import FakeSandbox, char_ids, load_policy, tiny_config

PROBLEM_PATH = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"
PROBLEM = load_problem(PROBLEM_PATH)
MESSAGES = [{"role": "system", "content": "S."}, {"role": "user", "content": "Q?"}]


# ------------------------------------------------------------------ the parent rule, against brute force
def _ancestors(parents: list[int | None], i: int) -> list[int]:
    out, p = [], parents[i]
    while p is not None:
        out.append(p)
        p = parents[p]
    return out


def _brute_stats(parents: list[int | None], scores: list[float]) -> tuple[list[int], list[float]]:
    """n(i) and Q(i) from their definitions: the nodes with i among their ancestors."""
    desc = [[j for j in range(len(parents)) if i in _ancestors(parents, j)] for i in range(len(parents))]
    return [len(d) for d in desc], [max(scores[j] for j in d) if d else scores[i] for i, d in enumerate(desc)]


def _random_archive(rng: random.Random, size: int) -> tuple[list[int | None], list[float], list[bool]]:
    parents: list[int | None] = [None if i < 3 or rng.random() < 0.2 else rng.randrange(i) for i in range(size)]
    scores = [rng.choice([0.0, 0.25, 0.5, 0.75]) for _ in range(size)]  # ties on purpose
    eligible = [rng.random() < 0.8 for _ in range(size)]
    return parents, scores, eligible


def test_visits_and_q_are_the_descendants_count_and_best_descendant_score() -> None:
    rng = random.Random(0)
    for _ in range(200):
        parents, scores, _ = _random_archive(rng, rng.randrange(1, 25))
        assert lineage_stats(parents, scores) == _brute_stats(parents, scores)


def test_rank_prior_is_linear_in_the_score_rank_over_eligible_programs() -> None:
    prior = rank_prior([0.5, 0.0, 0.5, 0.9, 0.2], [True, True, True, True, False])
    # eligible scores 0.9 > 0.5 = 0.5 > 0.0: ranks 0, 1, 1, 3 of M = 4 -> weights 4, 3, 3, 1
    assert prior == pytest.approx([3 / 11, 1 / 11, 3 / 11, 4 / 11, 0.0])


def test_priority_formulas() -> None:
    assert priority("puct", 0.5, 0.25, 3, 8, 2.0, 0.5) == pytest.approx(0.5 + 2.0 * 0.5 * 0.25 * 3.0 / 4)
    assert priority("ucb", 0.5, 0.25, 3, 8, 2.0, 0.5) == pytest.approx(0.5 + 2.0 * 0.5 * math.sqrt(math.log(9) / 4))
    with pytest.raises(ValueError, match="unknown"):
        priority("greedy", 0.0, 0.0, 0, 0, 1.0, 1.0)


@pytest.mark.parametrize("rule", ["puct", "ucb"])
def test_each_pick_has_the_highest_priority_counting_the_batchs_earlier_picks(rule: str) -> None:
    rng = random.Random(1)
    for trial in range(150):
        parents, scores, eligible = _random_archive(rng, rng.randrange(1, 20))
        if not any(eligible):
            continue
        c, k = rng.choice([0.0, 0.5, 1.0, 3.0]), rng.randrange(1, 9)
        picks = select_parents(parents, scores, eligible, k, rule, c, random.Random(trial))
        pool = [s for s, e in zip(scores, eligible, strict=True) if e]
        scale = (max(pool) - min(pool)) or 1.0
        weights = [sum(t <= s for t in pool) if e else 0 for s, e in zip(scores, eligible, strict=True)]  # M - rank
        prior = [w / sum(weights) for w in weights]
        visits, q = _brute_stats(parents, scores)
        for j, pick in enumerate(picks):
            earlier = picks[:j]  # each earlier pick is a visit of itself and its ancestors
            n = [visits[i] + sum(i == p or i in _ancestors(parents, p) for p in earlier) for i in range(len(parents))]
            total = sum(p is not None for p in parents) + j
            pr = [priority(rule, q[i], prior[i], n[i], total, c, scale) if eligible[i] else -math.inf for i in range(len(parents))]
            assert pr[pick] == pytest.approx(max(pr), abs=1e-12), (trial, j)


def test_no_eligible_program_means_plain_samples() -> None:
    assert select_parents([], [], [], 3, "puct", 1.0, random.Random(0)) == [None, None, None]
    assert select_parents([None, 0], [0.0, 0.0], [False, False], 2, "puct", 1.0, random.Random(0)) == [None, None]


def test_equal_programs_are_spread_over_and_the_rule_is_seeded() -> None:
    parents, scores, eligible = [None] * 8, [0.0] * 8, [True] * 8
    picks = select_parents(parents, scores, eligible, 8, "puct", 1.0, random.Random(5))
    assert sorted(picks) == list(range(8))  # every pick a visit at once: a batch does not refine one program 8 times
    assert picks == select_parents(parents, scores, eligible, 8, "puct", 1.0, random.Random(5))
    assert picks != select_parents(parents, scores, eligible, 8, "puct", 1.0, random.Random(6))  # ties go by the seed


def test_without_exploration_the_best_lineage_is_refined() -> None:
    # 0 scored 0.5 but its child 2 scored 0: Q(0) = 0; 1 scored 0.25 unrefined: Q(1) = 0.25
    assert select_parents([None, None, 0], [0.5, 0.25, 0.0], [True] * 3, 3, "puct", 0.0, random.Random(0)) == [1, 1, 1]


# ------------------------------------------------------------------ the refining prompt
def _text(ids: list[int]) -> str:
    return "".join(map(chr, ids))


def test_refining_prompt_shows_the_parent_its_feedback_and_asks_for_an_improved_program() -> None:
    parent = Program("def f():\n    return 1\n", 0.25, "Test 2: wrong answer, expected 3 got 1")
    text = _text(Contexts(char_ids, MESSAGES, 2000).refine(parent, [Program("ALT = 2\n", 0.5)]))
    assert text.startswith("S.Q?")
    assert "```python\ndef f():\n    return 1\n```" in text and "0.25" in text
    assert "expected 3 got 1" in text and "ALT = 2" in text and text.endswith(REFINE_INSTRUCTION)
    assert text.index("return 1") < text.index("expected 3") < text.index("ALT = 2")
    passed = _text(Contexts(char_ids, MESSAGES, 2000).refine(Program("ok()\n", 1.0)))
    assert "passed every test" in passed


def test_refining_prompt_drops_inspirations_then_cuts_the_feedback_never_the_code() -> None:
    code = "CODE_HEAD\n" + "c" * 300 + "\nCODE_TAIL\n"
    parent = Program(code, 0.0, "FB_HEAD\n" + "f" * 2000 + "\nFB_TAIL")
    others = [Program("INSP_ONE\n" + "i" * 100, 0.5), Program("INSP_TWO\n" + "j" * 100, 0.25)]
    c = Contexts(char_ids, MESSAGES, 1000)
    text = _text(c.refine(parent, others))
    assert len(text) <= 1000 and "INSP_" not in text
    assert code.rstrip("\n") in text and "FB_HEAD" in text and "FB_TAIL" in text and CUT_MARK in text
    whole = len(_text(Contexts(char_ids, MESSAGES, 10_000).refine(parent, others)))
    roomy = _text(Contexts(char_ids, MESSAGES, whole - 50).refine(parent, others))  # room for all but the last inspiration
    assert "INSP_ONE" in roomy and "INSP_TWO" not in roomy and CUT_MARK not in roomy


# ------------------------------------------------------------------ the strategies' prompts
class _Chat:
    chat_ids = staticmethod(char_ids)


def _judged(index: int, code: str | None, score: float, feedback: str, *, step: int = 0, parent: int | None = None,
            prompt: list[int] | None = None) -> Attempt:
    v = Verdict(passed=score == 1.0, score=score, outcome=Outcome.passed if score == 1.0 else Outcome.wrong_answer)
    comp = Completion(prompt_ids=prompt or [1], completion_ids=[7, 8], text=code or "", finish_reason="eos")
    return Attempt(step=step, index=index, chain=index % 4, completion=comp, code=code, verdict=v, feedback=feedback, parent=parent)


def test_first_batch_is_plain_then_each_prompt_refines_its_logged_parent() -> None:
    cfg = SolveConfig(strategy="evolve", parent_exploration=0.0, inspirations=1)
    s = Evolve(_Chat(), MESSAGES, cfg)
    first = s.prompts(4)
    assert first == [char_ids(MESSAGES)] * 4 and s.last_parents == [None] * 4
    s.observe([_judged(0, "A_CODE\n", 0.25, "A_FEEDBACK"), _judged(1, "B_CODE\n", 0.5, "B_FEEDBACK"),
               _judged(2, None, 0.0, "no program found"), _judged(3, "D_CODE\n", 0.0, "D_FEEDBACK")])
    texts = [_text(p) for p in s.prompts(4)]
    assert s.last_parents == [1, 1, 1, 1]  # c = 0: the best program
    for t in texts:
        assert "B_CODE" in t and "B_FEEDBACK" in t and t.endswith(REFINE_INSTRUCTION)
        assert "A_CODE" in t and "A_FEEDBACK" not in t and "D_CODE" not in t  # the best other program, its code only
    assert s.texts == [t[len("S."):] for t in texts]  # the user turns sdpo-evolve's teacher builds on


def test_resumed_strategy_prompts_like_the_uninterrupted_one() -> None:
    cfg = SolveConfig(strategy="evolve", seed=4)
    s = Evolve(_Chat(), MESSAGES, cfg)
    records = []
    for step in range(3):
        s.prompts(4)
        batch = [_judged(4 * step + i, f"P{4 * step + i}\n", 0.25 * ((step + i) % 3), f"F{4 * step + i}", step=step,
                         parent=s.last_parents[i]) for i in range(4)]
        s.observe(batch)
        records += [attempt_record(a, {"sample": 0.0, "judge": 0.0}) for a in batch]
    resumed = Evolve(_Chat(), MESSAGES, cfg)
    resumed.load(Path("unused"), records)
    assert resumed.prompts(4) == s.prompts(4) and resumed.last_parents == s.last_parents
    assert any(p is not None for p in s.last_parents)


# ------------------------------------------------------------------ sdpo-evolve's contexts
@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    cfg = tiny_config(tiny_model_dir, strategy="sdpo-evolve", max_prompt_tokens=1024, parent_exploration=0.0)
    return cfg, load_policy(cfg)


def test_sdpo_evolve_teacher_is_the_refining_prompt_plus_the_attempts_own_feedback(tiny) -> None:
    cfg, policy = tiny
    s = sdpo_evolve(policy, MESSAGES, cfg)
    s.observe([_judged(0, "PARENT_CODE = 1\n", 0.5, "PARENT_FEEDBACK", prompt=s.prompts(2)[0]),
               _judged(1, "OTHER = 2\n", 0.0, "OTHER_FEEDBACK", prompt=s.contexts.student())])
    prompts = s.prompts(2)
    kids = [_judged(2 + i, f"KID_{i} = 0\n", 0.0, f"OWN_FEEDBACK_{i}", step=1, parent=0, prompt=prompts[i]) for i in range(2)]
    kids[0].chain, kids[1].chain = 0, 1
    batch = build_contexts(kids, s.teacher_contexts(kids))
    assert batch.student_prompts == prompts  # the student context is the prompt the attempt was sampled from
    for i, ids in enumerate(batch.teacher_prompts):
        text = policy.decode(ids)
        assert text.startswith(policy.decode(prompts[i]).rsplit(REFINE_INSTRUCTION, 1)[0])
        assert "PARENT_CODE = 1" in text and "PARENT_FEEDBACK" in text  # the parent and its feedback, as the student saw them
        assert f"OWN_FEEDBACK_{i}" in text and f"OWN_FEEDBACK_{1 - i}" not in text  # + this attempt's own feedback
        assert text.index("PARENT_FEEDBACK") < text.index(f"OWN_FEEDBACK_{i}")


def test_sdpo_evolve_refuses_greedy_sampling(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="sdpo-evolve"):
        tiny_config(tiny_model_dir, strategy="sdpo-evolve", temperature=0.0)


# ------------------------------------------------------------------ the loop: parents logged, lineage, resume
@pytest.fixture()
def every_answer_is_a_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The random model writes no code block; let every answer reach the sandbox as a distinct program."""
    monkeypatch.setattr(loop, "extract_code", lambda text: f"print({text!r})\n")


def _run(cfg, path: Path, sandbox: FakeSandbox, *, resume: bool = False) -> tuple[loop.Summary, RunDir]:
    run = RunDir.open_existing(path) if resume else RunDir.create(path, cfg.flat(), PROBLEM.to_json())
    return loop.run_discovery(PROBLEM, cfg, run, load_policy(cfg), sandbox, resume=resume), run


def test_attempts_log_their_parent_and_the_report_shows_the_discoverys_lineage(
        tiny_model_dir: Path, tmp_path: Path, every_answer_is_a_program: None) -> None:
    cfg = tiny_config(tiny_model_dir, strategy="evolve", budget=16, batch_size=4)
    summary, run = _run(cfg, tmp_path / "cmp" / "sum-two-ints" / "evolve" / "seed3", FakeSandbox(pass_at={13}))
    attempts = run.read_attempts()
    assert summary.discovery_attempt == 14 and len(attempts) == 16
    assert [a["parent"] for a in attempts[:4]] == [None] * 4  # the first batch: plain samples
    assert all(a["parent"] is not None and a["parent"] < 4 * a["step"] for a in attempts[4:])  # a judged earlier attempt
    chain = [13]
    while attempts[chain[-1]]["parent"] is not None:
        chain.append(attempts[chain[-1]]["parent"])
    assert len(chain) >= 2 and load_run(run.path).lineage == tuple(i + 1 for i in chain)
    analysis, _ = build_report(tmp_path / "cmp", n_boot=50)
    line = f"sum-two-ints/evolve/seed3: attempt {' ← '.join(str(i + 1) for i in chain)}"
    assert line in (tmp_path / "cmp" / "report" / "summary.md").read_text()
    page = (tmp_path / "cmp" / "report" / "report.html").read_text()
    assert "<h2>Lineage of discoveries</h2><ul><li>" + line in page
    assert analysis.strategies == ["evolve"]


def test_lineage_is_empty_for_runs_that_log_no_parent() -> None:
    rows = [{"index": i, "parent": None} for i in range(4)]
    assert discovery_lineage(rows, 3) == () and discovery_lineage([{"index": 0}], 1) == ()
    assert discovery_lineage([{"index": 0, "parent": None}, {"index": 1, "parent": 0}, {"index": 2, "parent": 1}], 3) == (3, 2, 1)
    assert discovery_lineage([{"index": 0, "parent": None}, {"index": 1, "parent": 0}], None) == ()


@pytest.mark.parametrize("strategy", ["evolve", "sdpo-evolve"])
def test_resume_equals_uninterrupted(tiny_model_dir: Path, tmp_path: Path, strategy: str, every_answer_is_a_program: None) -> None:
    cfg = tiny_config(tiny_model_dir, strategy=strategy, budget=16, batch_size=4, inspirations=1)
    full_summary, full = _run(cfg, tmp_path / "full", FakeSandbox())
    with pytest.raises(KeyboardInterrupt, match="scripted interrupt"):  # killed while judging step 2, after step 1's checkpoint
        _run(cfg, tmp_path / "cut", FakeSandbox(interrupt_on_call=2))
    summary, resumed = _run(cfg, tmp_path / "cut", FakeSandbox(), resume=True)

    assert summary.attempts_used == full_summary.attempts_used == 16
    key = ("step", "index", "parent", "prompt_tokens", "completion_ids", "score", "feedback", "code")
    rows = [[a[k] for k in key] for a in full.read_attempts()]
    assert [[a[k] for k in key] for a in resumed.read_attempts()] == rows
    assert len({r[2] for r in rows[4:]}) > 1  # parents differ: the resumed archive and picks had something to get right
    untimed = lambda ms: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in ms]  # noqa: E731
    assert untimed(resumed.read_metrics()) == untimed(full.read_metrics())


def test_compare_and_batch_accept_both_and_run_the_learning_one_last(tmp_path: Path) -> None:
    from sdpo_ttt.grid.cells import parse_strategies, plan_grid

    names = parse_strategies("sdpo-evolve,evolve,best-of-k")
    cells = plan_grid([PROBLEM_PATH], names, [0], tmp_path, SolveConfig(budget=8))
    assert [c.strategy for c in cells] == ["evolve", "best-of-k", "sdpo-evolve"]  # base-model runs share one model first
    assert [c.config.stop_on_success for c in cells] == [True, False, True]
