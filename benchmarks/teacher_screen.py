"""A screen of the SDPO teacher that needs no sampling: does the feedback context prefer the correct program? (issue #26, 4)

(One file on purpose, like feedback_learning.py: run as a script and loaded by path by its test; benchmarks/ is no package.)

SDPO never asks the teacher to write a better program; it asks for the teacher's log-probs on the student's own
tokens. So the mechanism can be screened with forward passes alone, on programs whose correctness is known: every
shipped problem with a reference/ program and wrong/ programs. Each wrong program plays the failed attempt y: it is
judged in the sandbox (its real verdict and feedback f), then, per teacher context c (data: `CONTEXTS`),

  Δ_ref   = mean_t log π(ref_t | c, ref<t)  −  mean_t log π(ref_t | x, ref<t)      the correct program, x → c
  Δ_wrong = the same for the wrong program y itself (the program the feedback is about)
  discrimination = Δ_ref − Δ_wrong   (> 0: the teacher context prefers the correct program more than the student
                                      context does: what SDPO needs to move the student towards it)
  AUROC   of −(log π(y_t | c, y<t) − log π(y_t | x, y<t)) for the tokens of y on lines where y differs from the
          reference (difflib line diff) against the tokens on lines they share (> 0.5: the teacher − student
          log-ratio is lower where the bug is: SDPO's per-token signal points at it)

x = the student's prompt (the question), π = the model as loaded (student = teacher at the start of every run).
Programs are scored as the assistant's answer "```python\\n<code>\\n```" (how the policy's attempts look), with
comments removed (the shipped wrong programs name their bug in a comment). Per context: the mean over problems of
each problem's mean over its pairs, with a 90% percentile bootstrap interval that resamples problems (not pairs).

Teacher contexts (`CONTEXTS`; --contexts picks some): the feedback at visibility public or all; with the attempt's
own program quoted before its feedback (+code); with the best-scored other wrong program of the problem as a
labelled partial demonstration (+sibling: "A partial solution (passed 6/8 tests):"); +diagnosis, the two-stage
variant (--diagnosis: a short diagnosis of the bug sampled first from the model, greedy, then put in the teacher's
context). `--feedback-style` picks the feedback renderer (reference | detailed, sdpo_ttt/sandbox/feedback.py).

Cost: forward passes only; the question's KV is computed once per problem and each teacher prompt's once for both
programs. The 0.5B on the shared 2-core CPU: see docs/results.md for the measured time.

    python benchmarks/teacher_screen.py                                    # every problem, every context, the 0.5B
    python benchmarks/teacher_screen.py --max-wrong 1 --contexts public,all
    python benchmarks/teacher_screen.py --smoke                            # tiny random model, 2 problems, seconds
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import difflib
import io
import json
import math
import sys
import time
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feedback_learning import REPO, read_problem_list, resolve_problem  # noqa: E402

from sdpo_ttt.errors import UserError  # noqa: E402
from sdpo_ttt.sdpo.reprompt import DEFAULT_CLOSING, DEFAULT_FEEDBACK_TEMPLATE  # noqa: E402

ANSWER_HEAD = "```python\n"
ANSWER_TAIL = "\n```"
SIBLING_TEMPLATE = "\nA partial solution ({label}):\n\n```python\n{code}\n```\n\n"
ATTEMPT_TEMPLATE = "\nYour unsuccessful earlier attempt:\n\n```python\n{code}\n```\n\n"
DIAGNOSIS_TEMPLATE = "\nDiagnosis of the bug: {diagnosis}\n"
DIAGNOSIS_QUESTION = ("\n\nIn one or two sentences, without code: what is the bug in the earlier attempt? "
                      "Name the line and what it should do instead.")


# ------------------------------------------------------------------------------------------- teacher contexts (data)
@dataclass(frozen=True)
class TeacherContext:
    """One teacher context (x, ..., f): which feedback, and what else the teacher sees besides the question."""

    name: str
    visibility: str = "public"  # feedback visibility: public | all
    with_code: bool = False  # the attempt's own program, quoted before its feedback
    sibling: bool = False  # the best-scored other wrong program, labelled with its pass count
    diagnosis: bool = False  # two-stage: a sampled diagnosis of the bug after the feedback (needs --diagnosis)


CONTEXTS: tuple[TeacherContext, ...] = (
    TeacherContext("public"),
    TeacherContext("all", "all"),
    TeacherContext("public+code", "public", with_code=True),
    TeacherContext("all+code", "all", with_code=True),
    TeacherContext("all+sibling", "all", sibling=True),
    TeacherContext("all+diagnosis", "all", diagnosis=True),
)


def teacher_turn(ctx: TeacherContext, question: str, feedback: str, code: str, sibling: tuple[str, str] | None = None,
                 diagnosis: str | None = None) -> str:
    """The teacher's user turn for context `ctx`: question + [sibling] + [attempt] + feedback + [diagnosis] + closing.

    sibling: (label, code) of the partial demonstration. Without code, sibling and diagnosis this is exactly
    sdpo/reprompt.py's `teacher_user_turn(question, feedback)`, the teacher of `solve`."""
    text = question
    if ctx.sibling and sibling is not None:
        text += SIBLING_TEMPLATE.format(label=sibling[0], code=sibling[1])
    if ctx.with_code:
        text += ATTEMPT_TEMPLATE.format(code=code)
    text += DEFAULT_FEEDBACK_TEMPLATE.format(feedback=feedback)
    if ctx.diagnosis and diagnosis:
        text += DIAGNOSIS_TEMPLATE.format(diagnosis=diagnosis)
    return text + DEFAULT_CLOSING


def diagnosis_turn(question: str, feedback: str, code: str) -> str:
    """The first stage of the two-stage variant: ask for a short diagnosis of the attempt's bug."""
    return question + ATTEMPT_TEMPLATE.format(code=code) + DEFAULT_FEEDBACK_TEMPLATE.format(feedback=feedback) + DIAGNOSIS_QUESTION


def pass_label(n_pass: int, n: int) -> str:
    return f"passed {n_pass}/{n} tests"


# ------------------------------------------------------------------------------------------- programs (pure)
def strip_comments(code: str) -> str:
    """The program without comments (lines that held only a comment are dropped; trailing spaces removed)."""
    comment_rows: dict[int, int] = {}  # row -> column where its comment starts
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            comment_rows[tok.start[0]] = tok.start[1]
    out = []
    for row, line in enumerate(code.splitlines(), start=1):
        if row in comment_rows:
            line = line[: comment_rows[row]]
            if not line.strip():
                continue
        out.append(line.rstrip())
    return "\n".join(out).strip("\n") + "\n"


def answer_text(code: str) -> str:
    """The assistant's answer for a program, as the policy's attempts look."""
    return ANSWER_HEAD + code.rstrip("\n") + ANSWER_TAIL


def token_lines(offsets: Sequence[tuple[int, int]], text: str) -> list[int]:
    """The program line (0-based) of each answer token, -1 for the fences.

    A token belongs to the line of its first non-whitespace character; a whitespace-only token to the line of its
    first character (a newline ends the line it is on)."""
    code_start = len(ANSWER_HEAD)
    code_end = len(text) - len(ANSWER_TAIL) if text.endswith(ANSWER_TAIL) else len(text)
    out = []
    for s, e in offsets:
        pos = next((i for i in range(s, e) if not text[i].isspace()), s)
        out.append(text.count("\n", code_start, pos) if code_start <= pos < code_end else -1)
    return out


def differing_lines(reference: str, wrong: str) -> set[int]:
    """0-based lines of `wrong` that a line diff against `reference` does not match (difflib, no junk heuristic)."""
    ref_lines = [ln.rstrip() for ln in reference.splitlines()]
    wrong_lines = [ln.rstrip() for ln in wrong.splitlines()]
    matcher = difflib.SequenceMatcher(None, ref_lines, wrong_lines, autojunk=False)
    out: set[int] = set()
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out.update(range(j1, j2))
    return out


# ------------------------------------------------------------------------------------------- statistics (pure)
def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a random negative scores above a random positive) + ½ P(tie): 1 = every positive below every negative.

    Here the score is the teacher − student log-ratio and the positives are the tokens on the buggy lines, so
    > 0.5 means the teacher lowers those tokens more. NaN when either side is empty. Mann-Whitney via mid-ranks."""
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        return math.nan
    values = np.concatenate([neg, pos])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    sorted_vals = values[order]
    i = 0
    while i < values.size:  # mid-ranks of ties
        j = i
        while j + 1 < values.size and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u_neg = ranks[: neg.size].sum() - neg.size * (neg.size + 1) / 2.0  # pairs where the negative ranks above
    return float(u_neg / (neg.size * pos.size))


def pair_figures(ref_student: Sequence[float], ref_teacher: Sequence[float], wrong_student: Sequence[float],
                 wrong_teacher: Sequence[float], wrong_differs: Sequence[bool]) -> dict[str, float]:
    """The figures of one (wrong program, context) pair from per-token log-probs (nats).

    wrong_differs[t]: token t of the wrong program lies on a line that differs from the reference (fence tokens
    are passed in neither side: give only the program's tokens)."""
    ref_delta = float(np.mean(ref_teacher) - np.mean(ref_student))
    wrong_delta = float(np.mean(wrong_teacher) - np.mean(wrong_student))
    ratio = np.asarray(wrong_teacher, dtype=np.float64) - np.asarray(wrong_student, dtype=np.float64)
    differs = np.asarray(wrong_differs, dtype=bool)
    return {"ref_delta": ref_delta, "wrong_delta": wrong_delta, "discrimination": ref_delta - wrong_delta,
            "auroc": auroc(ratio[differs], ratio[~differs]),
            "ratio_differing": float(ratio[differs].mean()) if differs.any() else math.nan,
            "ratio_shared": float(ratio[~differs].mean()) if (~differs).any() else math.nan}


def problem_means(values: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Each problem's mean of its pairs' values (NaNs skipped; a problem with none left out)."""
    by: dict[str, list[float]] = {}
    for problem, v in values:
        if not math.isnan(v):
            by.setdefault(problem, []).append(v)
    return {p: float(np.mean(vs)) for p, vs in by.items()}


def bootstrap_problems(means: Sequence[float], *, n_boot: int = 5000, level: float = 0.9,
                       seed: int = 0) -> tuple[float, float, float]:
    """Mean over problems of the problems' means, with a percentile bootstrap interval that resamples problems.

    Returns (estimate, low, high); NaNs for no problem."""
    m = np.asarray(means, dtype=np.float64)
    if m.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    reps = m[rng.integers(0, m.size, (n_boot, m.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(m.mean()), float(np.quantile(reps, tail)), float(np.quantile(reps, 1.0 - tail))


def summarise(pairs: Sequence[dict[str, Any]], context: str, key: str, n_boot: int = 5000) -> tuple[float, float, float]:
    """`key` for one context over the pairs: problems' means, bootstrapped over problems."""
    values = [(p["problem"], p["contexts"][context][key]) for p in pairs if context in p["contexts"]]
    return bootstrap_problems(list(problem_means(values).values()), n_boot=n_boot)


# ------------------------------------------------------------------------------------------- scoring (model)
class PrefixScorer:
    """Per-token log-probs of answers under prompts, on the model as loaded (adapters off = π at the start of a run).

    The KV of a problem's student prompt is computed once (`set_prefix`); every prompt is then run from the longest
    prefix it shares with it, and each prompt's KV once for all its answers. Equal to `Policy.token_logprobs` up to
    float rounding (tests/test_teacher_screen.py)."""

    def __init__(self, policy: Any) -> None:
        import torch

        self.torch = torch
        self.policy = policy
        policy.model.eval()
        self.decoder = policy.model.get_base_model().get_decoder()
        self.W = policy.lm_head_weight.float()
        self.prefix: list[int] = []
        self.cache: Any = None
        self.tokens = 0  # tokens run through the model (cost)

    def _run(self, ids: list[int], cache: Any) -> tuple[Any, Any]:
        """Final hidden states of `ids` after the cached tokens; the cache (a DynamicCache) is extended in place."""
        torch = self.torch
        self.tokens += len(ids)
        with self.policy.model.disable_adapter():
            out = self.decoder(input_ids=torch.tensor([ids], device=self.policy.device), cache=cache, use_cache=True)
        return out.last_hidden_state[0], cache

    def set_prefix(self, ids: list[int]) -> None:
        from transformers import DynamicCache

        with self.torch.no_grad():
            self.prefix = list(ids)
            _, self.cache = self._run(self.prefix, DynamicCache())

    def score(self, prompt: list[int], answers: list[list[int]]) -> list[np.ndarray]:
        """log π(a_t | prompt, a<t) for each answer a (float64 arrays)."""
        from transformers import DynamicCache

        torch = self.torch
        with torch.no_grad():
            k = 0
            limit = min(len(self.prefix), len(prompt) - 1)  # at least one prompt token is run: it predicts a_0
            while k < limit and self.prefix[k] == prompt[k]:
                k += 1
            cache = DynamicCache()
            if k:
                cache = copy.deepcopy(self.cache)
                if k < len(self.prefix):
                    cache.crop(k - len(self.prefix))  # drop the last tokens (a negative count, in every transformers)
            h_tail, cache = self._run(prompt[k:], cache)
            out = []
            for a in answers:
                hs = [h_tail[-1:]]
                if len(a) > 1:
                    hs.append(self._run(a[:-1], copy.deepcopy(cache))[0])
                logits = torch.cat(hs).float() @ self.W.T
                lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(a, device=logits.device)[:, None]).squeeze(1)
                out.append(lp.double().cpu().numpy())
            return out


# ------------------------------------------------------------------------------------------- the screen
@dataclass
class Program:
    name: str
    code: str  # comments stripped: what is judged and scored
    verdict: Any = None


def load_programs(folder: Path) -> tuple[Program, list[Program]]:
    ref = folder / "reference" / "solution.py"
    if not ref.is_file():
        refs = sorted((folder / "reference").glob("*.py"))
        ref = refs[0]
    wrong = sorted((folder / "wrong").glob("*.py"))
    return (Program(ref.name, strip_comments(ref.read_text(encoding="utf-8"))),
            [Program(w.stem, strip_comments(w.read_text(encoding="utf-8"))) for w in wrong])


def has_programs(folder: Path) -> bool:
    return any((folder / "reference").glob("*.py")) and any((folder / "wrong").glob("*.py"))


def best_sibling(programs: Sequence[Program], me: Program) -> Program | None:
    """The other wrong program with the most tests passed (ties: the first by name)."""
    others = sorted((p for p in programs if p is not me), key=lambda p: p.name)
    return max(others, key=lambda p: p.verdict.score) if others else None


class Screen:
    """One loaded model, sandbox and feedback style; `problem()` screens every pair of one problem."""

    def __init__(self, policy: Any, sandbox: Any, style: str, contexts: Sequence[TeacherContext],
                 log: Callable[[str], None], diagnosis_tokens: int = 64) -> None:
        self.policy = policy
        self.sandbox = sandbox
        self.style = style
        self.contexts = contexts
        self.log = log
        self.scorer = PrefixScorer(policy)
        self.diagnosis_tokens = diagnosis_tokens

    def feedback(self, problem: Any, verdict: Any, visibility: str) -> str:
        from sdpo_ttt.sandbox.feedback import render_feedback

        return render_feedback(problem, verdict, visibility=visibility, style=self.style)

    def answer(self, code: str) -> tuple[list[int], list[int]]:
        """Token ids of the answer for `code` and each token's program line (-1: fence)."""
        text = answer_text(code)
        enc = self.policy.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), token_lines(enc["offset_mapping"], text)

    def diagnose(self, problem: Any, feedback: str, code: str) -> str:
        from sdpo_ttt.sdpo.reprompt import user_turn, with_user_turn

        messages = self.policy.problem_messages(problem)
        ids = self.policy.chat_ids(with_user_turn(messages, diagnosis_turn(user_turn(messages), feedback, code)))
        comp = self.policy.sample([ids], temperature=0.0, top_p=1.0, max_new_tokens=self.diagnosis_tokens, seed=0, adapter=None)[0]
        return comp.text.strip()

    def problem(self, problem: Any, folder: Path, max_wrong: int | None) -> list[dict[str, Any]]:
        from sdpo_ttt.sandbox.verdict import Outcome
        from sdpo_ttt.sdpo.reprompt import user_turn, with_user_turn

        ref, wrongs = load_programs(folder)
        verdicts = self.sandbox.judge_many(problem, [ref.code] + [w.code for w in wrongs])
        ref.verdict = verdicts[0]
        for w, v in zip(wrongs, verdicts[1:], strict=True):
            w.verdict = v
        if not ref.verdict.passed:
            self.log(f"  warning: {problem.id}: the reference fails ({ref.verdict.outcome.value}); skipped")
            return []
        messages = self.policy.problem_messages(problem)
        question = user_turn(messages)
        student = self.policy.chat_ids(messages)
        self.scorer.set_prefix(student)
        ref_ids, ref_lines = self.answer(ref.code)
        attempts = wrongs[: max_wrong or None]  # the failed attempts screened; siblings come from every wrong program
        answers = {w.name: self.answer(w.code) for w in attempts}
        code_tokens = {name: [i for i, ln in enumerate(lines) if ln >= 0] for name, (_, lines) in
                       [(ref.name, (ref_ids, ref_lines)), *answers.items()]}
        student_lp = dict(zip([ref.name] + [w.name for w in attempts],
                              self.scorer.score(student, [ref_ids] + [answers[w.name][0] for w in attempts]), strict=True))
        out = []
        for w in attempts:
            if w.verdict.passed:
                self.log(f"  warning: {problem.id}/{w.name} passes every test; skipped")
                continue
            ids, lines = answers[w.name]
            keep = code_tokens[w.name]
            differs = differing_lines(ref.code, w.code)
            is_diff = [lines[i] in differs for i in keep]
            sib = best_sibling(wrongs, w)
            n = len(w.verdict.tests) or len(problem.tests)
            sibling = None if sib is None else (pass_label(sum(t.outcome is Outcome.passed for t in sib.verdict.tests), n), sib.code)
            rec: dict[str, Any] = {
                "problem": problem.id, "wrong": w.name, "outcome": w.verdict.outcome.value, "score": w.verdict.score,
                "tests": n, "wrong_tokens": len(keep), "ref_tokens": len(code_tokens[ref.name]),
                "differing_tokens": int(sum(is_diff)), "differing_lines": sorted(differs),
                "student_ref_mean": float(student_lp[ref.name][code_tokens[ref.name]].mean()),
                "student_wrong_mean": float(student_lp[w.name][keep].mean()),
                "sibling": None if sib is None else {"name": sib.name, "label": sibling[0]},
                "contexts": {}}
            feedbacks: dict[str, str] = {}
            diagnosis = None
            for ctx in self.contexts:
                if ctx.sibling and sib is None:
                    continue
                fb = feedbacks.setdefault(ctx.visibility, self.feedback(problem, w.verdict, ctx.visibility))
                if ctx.diagnosis and diagnosis is None:
                    diagnosis = self.diagnose(problem, fb, w.code)
                    rec["diagnosis"] = diagnosis
                prompt = self.policy.chat_ids(with_user_turn(messages, teacher_turn(ctx, question, fb, w.code, sibling, diagnosis)))
                t_ref, t_wrong = self.scorer.score(prompt, [ref_ids, ids])
                rk = code_tokens[ref.name]
                figs = pair_figures(student_lp[ref.name][rk], t_ref[rk], student_lp[w.name][keep], t_wrong[keep], is_diff)
                figs["teacher_prompt_tokens"] = len(prompt)
                rec["contexts"][ctx.name] = figs
            rec["feedback"] = feedbacks
            out.append(rec)
            self.log(f"  {problem.id}/{w.name} ({w.verdict.outcome.value}, score {w.verdict.score:.2f}): " + ", ".join(
                f"{c} {f['discrimination']:+.3f}/{f['auroc']:.2f}" for c, f in rec["contexts"].items()))
        return out


# ------------------------------------------------------------------------------------------- report
def _ci(est: tuple[float, float, float], fmt: str = "{:+.3f}") -> str:
    m, lo, hi = est
    if math.isnan(m):
        return "-"
    return f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def report(pairs: Sequence[dict[str, Any]], contexts: Sequence[str], n_boot: int = 5000) -> str:
    """The markdown table: a row per teacher context."""
    lines = ["| teacher context | problems | pairs | Δ reference (nats/token) | Δ wrong | discrimination [90% CI] "
             "| AUROC buggy lines [90% CI] | wins |",
             "|---|---|---|---|---|---|---|---|"]
    for c in contexts:
        ps = [p for p in pairs if c in p["contexts"]]
        if not ps:
            continue
        n_prob = len({p["problem"] for p in ps})
        disc = summarise(ps, c, "discrimination", n_boot)
        wins = sum(p["contexts"][c]["discrimination"] > 0 for p in ps)
        n_auroc = len({p["problem"] for p in ps if not math.isnan(p["contexts"][c]["auroc"])})
        lines.append(f"| {c} | {n_prob} | {len(ps)} | {_ci(summarise(ps, c, 'ref_delta', n_boot))} "
                     f"| {_ci(summarise(ps, c, 'wrong_delta', n_boot))} | {_ci(disc)} "
                     f"| {_ci(summarise(ps, c, 'auroc', n_boot), '{:.2f}')} ({n_auroc}) | {wins}/{len(ps)} |")
    lines += ["", "Δ = teacher context − student context, mean per-token log-prob of the program (nats/token); "
              "discrimination = Δ reference − Δ wrong (> 0: the teacher prefers the correct program); AUROC: the "
              "teacher − student log-ratio on the wrong program's tokens, lower on the lines that differ from the "
              "reference (0.5 = no signal); each figure the mean over problems of the problem's mean over its wrong "
              "programs, 90% bootstrap over problems; (n): problems with an AUROC (a wrong program that shares no line with the "
              "reference has none); wins: pairs with discrimination > 0."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main
def merge_results(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The pairs of several result files, one record per (problem, wrong program) with every file's contexts.

    Files of different feedback styles: each context is named "<context> (<style> feedback)"."""
    files = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    styles = {f.get("feedback_style") for f in files}

    def label(name: str, data: dict[str, Any]) -> str:
        return name if len(styles) == 1 else f"{name} ({data.get('feedback_style')} feedback)"

    merged: dict[tuple[str, str], dict[str, Any]] = {}
    names: list[str] = []
    for data in files:
        names += [label(c["name"], data) for c in data["contexts"] if label(c["name"], data) not in names]
        for p in data["pairs"]:
            rec = merged.setdefault((p["problem"], p["wrong"]), {**p, "contexts": {}})
            rec["contexts"].update({label(k, data): v for k, v in p["contexts"].items()})
    return list(merged.values()), names


def default_problems() -> list[str]:
    return [str(p.relative_to(REPO)) for p in sorted((REPO / "problems").iterdir()) if p.is_dir() and has_programs(p)]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError as e:
        print(f"error: {e}" + (f" ({e.fix})" if e.fix else ""), file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy import threads
    from sdpo_ttt.policy.catalog import DEFAULT_MODEL
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sandbox.feedback import STYLES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=None, help="a list file or comma-separated folders (default: every problem "
                    "under problems/ with reference/ and wrong/ programs)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model (default: %(default)s)")
    ap.add_argument("--contexts", default=",".join(c.name for c in CONTEXTS if not c.diagnosis),
                    help=f"teacher contexts, comma-separated, of {[c.name for c in CONTEXTS]} (default: %(default)s)")
    ap.add_argument("--diagnosis", action="store_true", help="add the two-stage context all+diagnosis (samples a diagnosis)")
    ap.add_argument("--feedback-style", default="reference", choices=STYLES, help="feedback renderer (default: %(default)s)")
    ap.add_argument("--max-wrong", type=int, default=None, help="at most this many wrong programs per problem (by name)")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "docker", "local"], help="(default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the raw per-pair figures "
                    "(default: benchmarks/results/teacher_screen-<date>.json; --smoke: none)")
    ap.add_argument("--bootstrap", type=int, default=5000, help="bootstrap replicates (default: %(default)s)")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, local sandbox, 2 problems, 1 wrong program each")
    ap.add_argument("--report", default=None, metavar="JSON[,JSON]", help="only print the table of saved results "
                    "(several files: their contexts side by side)")
    args = ap.parse_args(argv)
    if args.report:
        pairs, names = merge_results([Path(x) for x in args.report.split(",")])
        print(report(pairs, names, args.bootstrap))
        return 0

    names = [c.strip() for c in args.contexts.split(",") if c.strip()] + (["all+diagnosis"] if args.diagnosis else [])
    by_name = {c.name: c for c in CONTEXTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UserError(f"unknown teacher context(s) {unknown}", f"use some of {list(by_name)}")
    contexts = [by_name[n] for n in dict.fromkeys(names)]
    options: dict[str, Any] = {"model": args.model}
    specs = read_problem_list(args.problems) if args.problems else default_problems()
    if args.smoke:
        import tempfile

        from sdpo_ttt.policy.random_model import smoke_model

        options = {"model": str(smoke_model(Path(tempfile.gettempdir()) / "teacher-screen-smoke" / "tiny-model")), "lora_rank": 2,
                   "lora_alpha": 4, "lora_targets": ["q_proj", "v_proj"], "device": "cpu"}
        specs, args.max_wrong, args.sandbox, args.bootstrap = specs[:2], 1, "local", 200
    folders = [resolve_problem(s, REPO / "runs" / "imported") for s in specs]
    problems = [load_problem(f) for f in folders]
    threads.configure()
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {msg}", file=sys.stderr, flush=True)

    cfg = SolveConfig(**options)
    policy = Policy.load(cfg.policy, seed=0)
    log(f"model {cfg.policy.model} loaded; contexts {[c.name for c in contexts]}, feedback style {args.feedback_style}")
    pairs: list[dict[str, Any]] = []
    with open_sandbox(args.sandbox, workers=2, announce=log) as sandbox:
        screen = Screen(policy, sandbox, args.feedback_style, contexts, log)
        try:
            for problem, folder in zip(problems, folders, strict=True):
                t0, n0 = time.perf_counter(), screen.scorer.tokens
                pairs += screen.problem(problem, folder, args.max_wrong)
                took = time.perf_counter() - t0
                log(f"{problem.id}: {took:.0f} s, {screen.scorer.tokens - n0} tokens ({(screen.scorer.tokens - n0) / took:.0f}/s)")
        finally:
            policy.close()
    wall = time.perf_counter() - start
    table = report(pairs, [c.name for c in contexts], args.bootstrap)
    print(table)
    if not args.smoke or args.out:
        date = dt.datetime.now(dt.timezone.utc)
        out = args.out or REPO / "benchmarks" / "results" / f"teacher_screen-{date:%Y-%m-%d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "date": date.isoformat(timespec="seconds"), "command": "python benchmarks/teacher_screen.py " + " ".join(argv or sys.argv[1:]),
            "model": cfg.policy.model, "feedback_style": args.feedback_style, "contexts": [asdict(c) for c in contexts],
            "wall_s": round(wall, 1), "tokens_run": screen.scorer.tokens, "pairs": pairs, "table": table}, indent=1), encoding="utf-8")
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
