"""The discovery loop shared by every strategy: sample → judge → log → stop at success → update → checkpoint.

    problem.json ─► prompt ─► policy.sample(B) ─► sandbox.judge_many ─► verdicts + feedback
                     ▲                                                  │ any passed? ─► solution.py, stop
                     └──────────── strategy.observe(attempts) ◄─────────┘ no
Every sampled attempt counts against the budget. Sampling in step s is seeded by (seed, s), and a
checkpoint holds everything the next step depends on, so a resumed run continues exactly as an
uninterrupted one would have.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from sdpo_ttt.config.durations import parse_duration
from sdpo_ttt.run.budgets import RunCosts, stop_reason
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.sandbox.feedback import render_feedback
from sdpo_ttt.run.monitors import format_error_jump, format_error_rate, lr_warning
from sdpo_ttt.policy.extract import extract_code
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.monitors import WINDOW as SIGNAL_WINDOW, no_signal_warning
from sdpo_ttt.run.strategies import STRATEGIES, make_strategy
from sdpo_ttt.sandbox.attempt import Attempt
from sdpo_ttt.run.tracking import attempt_stats, numeric, open_trackers
from sdpo_ttt.sandbox.verdict import Verdict

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.sandbox import Sandbox


@dataclass
class Summary:
    status: str  # solved (stopped at a pass) | budget_exhausted | interrupted
    solved: bool  # some attempt passed every test (also when the run went on after it: stop_on_success off)
    problem_id: str
    strategy: str
    seed: int
    budget: int
    attempts_used: int
    discovery_attempt: int | None  # 1-based index of the first passing attempt
    steps: int
    best_score: float
    wall_time_s: float
    time_split_s: dict[str, float] = field(default_factory=dict)
    attempts_passed: int = 0  # attempts that passed every test (more than 1 only with stop_on_success off, or in one batch)
    stop_reason: str = ""  # success | attempts | max_time | max_tokens | interrupted: what ended the run
    generated_tokens: int = 0  # completion tokens sampled (EOS included), all attempts
    device_time_s: float = 0.0  # seconds the model occupied its device (GPU or CPU): sampling + updates
    cpu_time_s: float = 0.0  # CPU seconds of the solving process, all threads (sandboxed judging not included)
    warnings: list[str] = field(default_factory=list)  # guard-rail warnings shown during the run


class Reporter(Protocol):
    """What the loop tells its user; the CLI renders it (rich live display, quiet, or JSON)."""

    def start(self, budget: int, used: int) -> None: ...
    def attempts(self, attempts: list[Attempt], used: int, best_score: float) -> None: ...
    def step(self, step: int, metrics: dict[str, float]) -> None: ...
    def message(self, text: str) -> None: ...
    # Optional (a reporter without them still works): where the run is written; the phase a step is in
    # (sampling | judging | update) with its attempt count and token cap; tokens generated since the last call.
    #   def opened(self, path: Path) -> None
    #   def phase(self, name: str, step: int, n: int, token_cap: int, part: tuple[int, int] | None = None) -> None
    #     (sampling | judging | teacher | update; part: micro-batch i of k)
    #   def tokens(self, n: int) -> None
    #   def budgets(self, max_time_s: float | None, max_tokens: int | None, wall_before: float, tokens_before: int) -> None


def _hook(rep: Any, name: str) -> Callable[..., None]:
    """An optional Reporter method, or a no-op when the reporter does not have it."""
    return getattr(rep, name, None) or (lambda *args, **kwargs: None)


class SilentReporter:
    def start(self, budget: int, used: int) -> None: ...
    def attempts(self, attempts: list[Attempt], used: int, best_score: float) -> None: ...
    def step(self, step: int, metrics: dict[str, float]) -> None: ...
    def message(self, text: str) -> None: ...


@dataclass
class PassTally:
    """How many attempts passed so far, and the 1-based index of the first (None before any)."""

    count: int = 0
    first: int | None = None

    def add(self, attempts: list[Attempt]) -> None:
        for a in attempts:
            if a.verdict.passed:
                self.count += 1
                self.first = a.index + 1 if self.first is None else self.first

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> "PassTally":
        """The tally of attempts.jsonl lines (on resume)."""
        indices = sorted(int(r["index"]) for r in records if r.get("passed"))
        return cls(count=len(indices), first=indices[0] + 1 if indices else None)


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of step `step`: a fixed function of (seed, step), so resume re-derives it."""
    return (seed * 1_000_003 + step * 7919 + 17) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def attempt_record(a: Attempt, times: dict[str, float], costs: RunCosts | None = None) -> dict[str, Any]:
    """One line of attempts.jsonl. `costs`: what the run had spent when this attempt's batch was judged (the cost
    of reaching this attempt: `compare`/`report --x tokens|seconds` draw discovery against it)."""
    v = a.verdict
    return {
        "step": a.step,
        "index": a.index,
        "chain": a.chain,
        "passed": v.passed,
        "score": v.score,
        "verdict": v.outcome.value,
        "verdict_counts": v.counts(),
        "feedback": a.feedback,
        "text": a.completion.text,
        "code": a.code,
        "finish_reason": a.completion.finish_reason,
        "prompt_tokens": len(a.completion.prompt_ids),
        "completion_tokens": len(a.completion.completion_ids),
        "completion_ids": list(a.completion.completion_ids),
        "judge_time_s": v.wall_time_s,
        "batch_sample_time_s": times["sample"],
        "batch_judge_time_s": times["judge"],
        **({"run_tokens": costs.generated_tokens, "run_wall_s": costs.wall_s, "run_device_s": costs.device_s} if costs else {}),
    }


def judge_batch(problem: Problem, sandbox: "Sandbox", codes: list[str | None], visibility: str,
                truncated_at: list[int | None] | None = None) -> tuple[list[Verdict], list[str]]:
    """Verdicts and feedback for a batch; attempts with no code get a format_error without running.
    truncated_at[i]: the token limit attempt i was cut at (None: it ended by itself); its feedback says so."""
    runnable = [i for i, c in enumerate(codes) if c is not None]
    judged = sandbox.judge_many(problem, [codes[i] for i in runnable]) if runnable else []
    verdicts: list[Verdict] = [Verdict.format_error(len(problem.tests)) for _ in codes]
    for i, v in zip(runnable, judged, strict=True):
        verdicts[i] = v
    cuts = truncated_at or [None] * len(codes)
    feedback = ["" if v.passed else render_feedback(problem, v, visibility=visibility, truncated_at=t) for v, t in zip(verdicts, cuts, strict=True)]
    return verdicts, feedback


def run_discovery(
    problem: Problem,
    cfg: SolveConfig,
    run: RunDir,
    policy: "Policy",
    sandbox: "Sandbox",
    reporter: Reporter | None = None,
    resume: bool = False,
) -> Summary:
    """Run (or resume) one discovery run to success or budget exhaustion; write everything into `run`."""
    rep = reporter or SilentReporter()
    seed_everything(cfg.seed)
    messages = policy.problem_messages(problem)
    strategy = make_strategy(cfg, policy, messages)
    batch_size = cfg.resolved_batch_size(policy.device.type == "cuda")

    step, used, best = 0, 0, 0.0
    passes = PassTally()
    split = {"sample": 0.0, "judge": 0.0, "update": 0.0}
    wall_before = 0.0
    costs = RunCosts()
    if resume:
        state = run.read_checkpoint_state()
        if state is not None:
            run.truncate_after_step(state["step"])
            strategy.load(run.checkpoint_path, run.read_attempts())
            step, used, best = state["step"] + 1, state["attempts_used"], state["best_score"]
            split, wall_before = state["time_split_s"], state["wall_time_s"]
            passes = PassTally.from_records(run.read_attempts())
            costs = RunCosts.from_json(state.get("costs")) if "costs" in state else RunCosts(
                attempts=used, generated_tokens=sum(int(r.get("completion_tokens", 0)) for r in run.read_attempts()),
                wall_s=wall_before, device_s=split["sample"] + split["update"])  # a checkpoint older than cost tracking
            rep.message(f"resuming after step {state['step']} ({used} attempts used)")
        else:
            run.truncate_after_step(-1)
            rep.message("no complete step to resume from: starting over")
    t_start, cpu_start, cpu_before = time.perf_counter(), time.process_time(), costs.cpu_s
    max_time_s = parse_duration(cfg.max_time) if cfg.max_time is not None else None
    learns = STRATEGIES[cfg.strategy].learns
    updater = getattr(strategy, "updater", None)  # the strategy's SDPOUpdater, if it learns that way
    warnings: list[str] = []
    fe_rates: list[float] = []  # format-error rate of each batch (this process)
    jumped = False
    phase, tokens = _hook(rep, "phase"), _hook(rep, "tokens")
    _hook(rep, "opened")(run.path)
    rep.start(cfg.budget, used)
    _hook(rep, "budgets")(max_time_s, cfg.max_tokens, costs.wall_s, costs.generated_tokens)

    def warn(text: str | None) -> None:
        if text and text not in warnings:
            warnings.append(text)
            rep.message(text)

    def spent() -> RunCosts:
        costs.attempts = used
        costs.wall_s = wall_before + time.perf_counter() - t_start
        costs.cpu_s = cpu_before + time.process_time() - cpu_start
        return costs

    warn(lr_warning(cfg.optim.lr, learns))
    trackers = open_trackers(cfg.track, run.path, run.path.name, cfg.flat())  # --track: nothing opened when empty

    def summary(status: str, reason: str) -> Summary:
        return Summary(
            status=status, solved=passes.first is not None, problem_id=problem.id, strategy=cfg.strategy, seed=cfg.seed,
            budget=cfg.budget, attempts_used=used, discovery_attempt=passes.first, steps=step, best_score=best,
            wall_time_s=wall_before + time.perf_counter() - t_start, time_split_s=dict(split),
            attempts_passed=passes.count, stop_reason=reason, generated_tokens=costs.generated_tokens,
            device_time_s=costs.device_s, cpu_time_s=spent().cpu_s, warnings=list(warnings),
        )

    warned_zero = False
    signal_steps = run.read_metrics() if resume else []  # update steps so far: the no-signal check reads the first ones
    try:
        while (ended := stop_reason(spent(), cfg.budget, max_time_s, cfg.max_tokens)) is None:
            n = min(batch_size, cfg.budget - used)
            t0 = time.perf_counter()
            phase("sampling", step, n, n * cfg.sampling.max_new_tokens)
            completions = policy.sample(
                strategy.prompts(n), temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p, max_new_tokens=cfg.sampling.max_new_tokens,
                seed=step_seed(cfg.seed, step), adapter=strategy.sample_adapter, progress=tokens,
            )
            t1 = time.perf_counter()
            phase("judging", step, n, 0)
            codes = [extract_code(c.text) for c in completions]
            cut_at = [cfg.sampling.max_new_tokens if c.finish_reason == "length" else None for c in completions]
            verdicts, feedback = judge_batch(problem, sandbox, codes, cfg.judge.feedback_visibility, cut_at)
            t2 = time.perf_counter()
            times = {"sample": t1 - t0, "judge": t2 - t1}
            costs.generated_tokens += sum(len(c.completion_ids) for c in completions)
            costs.device_s += times["sample"]
            split["sample"] += times["sample"]
            split["judge"] += times["judge"]
            attempts = [
                Attempt(step=step, index=used + i, chain=i, completion=c, code=code, verdict=v, feedback=fb)
                for i, (c, code, v, fb) in enumerate(zip(completions, codes, verdicts, feedback, strict=True))
            ]
            used += n
            spent()
            records = [attempt_record(a, times, costs) for a in attempts]
            for rec in records:
                run.append_attempt(rec)
            fe_rate = format_error_rate([v.outcome.value for v in verdicts], [t is not None for t in cut_at])
            if learns and step > 0 and not jumped:  # this batch was sampled after an update; said once per run
                jump = format_error_jump(fe_rates, fe_rate, cfg.optim.lr, len(verdicts))
                jumped = jump is not None
                warn(jump)
            fe_rates.append(fe_rate)
            best = max([best] + [v.score for v in verdicts])
            rep.attempts(attempts, used, best)
            winner = next((a for a in attempts if a.verdict.passed), None)
            if winner is not None and passes.first is None:
                run.write_solution(winner.code or "")  # the first passing program, kept whether or not the run stops
            passes.add(attempts)
            trackers.scalars(step, attempt_stats(records, best_score=best, attempts_used=used, passed_so_far=passes.count))
            if winner is not None and cfg.stop_on_success:
                s = summary("solved", "success")
                run.write_summary(asdict(s))
                return s
            t3 = time.perf_counter()
            last = stop_reason(spent(), cfg.budget, max_time_s, cfg.max_tokens) is not None  # no update the run will not use
            if not last:
                phase("update", step, n, 0)
                if updater is not None:  # SDPO: the teacher pass and the student update of each micro-batch
                    updater.on_phase = lambda name, i, k, s=step, m=n: phase("teacher" if name == "teacher" else "update", s, m, 0, (i + 1, k))
            metrics = strategy.observe(attempts) if not last else {}
            split["update"] += time.perf_counter() - t3
            costs.device_s += time.perf_counter() - t3
            if metrics:
                metrics.update({"step": step, "attempts_used": used, "time/sample_s": times["sample"], "time/judge_s": times["judge"],
                                "health/truncated_frac": sum(t is not None for t in cut_at) / max(len(cut_at), 1)})
                signal_steps.append(metrics)
                signal = (no_signal_warning(signal_steps, max_new_tokens=cfg.sampling.max_new_tokens, visibility=cfg.judge.feedback_visibility)
                          if len(signal_steps) == SIGNAL_WINDOW else None)  # decided once, on the first steps
                run.append_metrics(metrics if signal is None else {**metrics, "warning": ",".join(signal.reasons), "warning_message": signal.message})
                rep.step(step, metrics)
                trackers.scalars(step, numeric(metrics))
                if signal is not None:
                    rep.message(signal.message)
                if not warned_zero and metrics.get("loss", 1.0) == 0.0 and metrics.get("grad_norm", 1.0) == 0.0:
                    warned_zero = True
                    rep.message("warning: the SDPO loss is identically zero (teacher equals student): check that feedback reaches the teacher")
            state = {
                "step": step, "attempts_used": used, "best_score": best, "time_split_s": split,
                "wall_time_s": wall_before + time.perf_counter() - t_start, "costs": spent().to_json(),
            }
            run.save_checkpoint(state, strategy.save)
            step += 1
    except KeyboardInterrupt:
        s = summary("interrupted", "interrupted")
        run.write_summary(asdict(s))
        raise
    finally:
        trackers.close()
    s = summary("budget_exhausted", ended)
    run.write_summary(asdict(s))
    return s
