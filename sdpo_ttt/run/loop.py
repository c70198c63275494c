"""The discovery loop shared by every strategy: sample → judge → record → learn → stop.

    problem.json ─► prompt ─► policy.sample(B) ─► sandbox.judge_many ─► verdicts + feedback
                     ▲                                                  │ any passed? ─► solution.py, stop
                     └──────────── strategy.observe(attempts) ◄─────────┘ no
Every sampled attempt counts against the budget. Sampling in step s is seeded by (seed, s), and a
checkpoint holds everything the next step depends on, so a resumed run continues exactly as an
uninterrupted one would have.

Collaborators: checkpoint.Progress (where the run stands, its costs, save and resume), journal.Journal (the run
directory, the trackers, the reporter), monitors.Monitors (the warnings), reporter.Phases (the phases shown).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from sdpo_ttt.config.durations import parse_duration
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.policy.extract import extract_code
from sdpo_ttt.policy.stop import code_cut
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.run.checkpoint import Progress
from sdpo_ttt.run.journal import Journal
from sdpo_ttt.run.monitors import Monitors
from sdpo_ttt.run.reporter import Phases, Reporter, SilentReporter
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.strategies import STRATEGIES, Strategy, batch_parents, make_strategy
from sdpo_ttt.sandbox.attempt import Attempt
from sdpo_ttt.sandbox.feedback import FeedbackRules
from sdpo_ttt.sandbox.judging import judge_batch

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


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of step `step`: a fixed function of (seed, step), so resume re-derives it."""
    return (seed * 1_000_003 + step * 7919 + 17) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


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
    phases = Phases(rep)
    strategy = make_strategy(cfg, policy, policy.problem_messages(problem), on_phase=phases.micro_batch)
    progress = Progress.resume(run, strategy, rep) if resume else Progress()
    monitors = Monitors(cfg, STRATEGIES[cfg.strategy].learns, rep.message, history=run.read_metrics() if resume else [])
    max_time_s = parse_duration(cfg.max_time) if cfg.max_time is not None else None
    batch_size = cfg.resolved_batch_size(policy.device.type == "cuda")
    progress.start_clock()
    rep.opened(run.path)
    rep.start(cfg.budget, progress.used)
    rep.budgets(max_time_s, cfg.max_tokens, progress.costs.wall_s, progress.costs.generated_tokens)
    monitors.start()
    journal = Journal(run, cfg, rep)
    rules = FeedbackRules.for_run(problem, cfg.judge, cfg.seed)  # what feedback may quote; held-back tests recorded
    run.write_held_back(rules.visibility, cfg.judge.held_back_fraction, cfg.seed, rules.held_back)
    try:
        while (ended := progress.stop_reason(cfg, max_time_s)) is None:
            n = min(batch_size, cfg.budget - progress.used)
            attempts, times = sample_and_judge(problem, cfg, policy, sandbox, strategy, phases, progress, n, rules)
            winner = progress.add_batch(attempts, times)
            monitors.batch(progress.step, [a.verdict.outcome.value for a in attempts], [_cut(a) for a in attempts])
            journal.batch(attempts, times, progress, winner)
            if winner is not None and cfg.stop_on_success:
                return journal.summary(summarize(progress, problem, cfg, monitors, "solved", "success"))
            if progress.stop_reason(cfg, max_time_s) is None:  # no update the run will not use
                learn(strategy, attempts, times, progress, phases, journal, monitors)
            progress.save(run, strategy)
    except KeyboardInterrupt:
        journal.summary(summarize(progress, problem, cfg, monitors, "interrupted", "interrupted"))
        raise
    finally:
        journal.close()
    return journal.summary(summarize(progress, problem, cfg, monitors, "budget_exhausted", ended))


def sample_and_judge(problem: Problem, cfg: SolveConfig, policy: "Policy", sandbox: "Sandbox", strategy: Strategy, phases: Phases,
                     progress: Progress, n: int, rules: FeedbackRules) -> tuple[list[Attempt], dict[str, float]]:
    """One batch of n attempts from the strategy's prompts, judged (feedback by `rules`); and the seconds sampling and
    judging took."""
    step, s = progress.step, cfg.sampling
    t0 = time.perf_counter()
    phases("sampling", step, n, n * s.max_new_tokens)
    completions = policy.sample(strategy.prompts(n), temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                                seed=step_seed(cfg.seed, step), adapter=strategy.sample_adapter, progress=phases.reporter.tokens)
    t1 = time.perf_counter()
    phases("judging", step, n)
    codes = [extract_code(c.text) for c in completions]
    cut_at = [s.max_new_tokens if code_cut(c.text, c.finish_reason) else None for c in completions]
    verdicts, feedback = judge_batch(problem, sandbox, codes, rules, cut_at)
    parents = batch_parents(strategy, n)
    attempts = [Attempt(step=step, index=progress.used + i, chain=i, completion=c, code=code, verdict=v, feedback=fb, parent=parents[i])
                for i, (c, code, v, fb) in enumerate(zip(completions, codes, verdicts, feedback, strict=True))]
    return attempts, {"sample": t1 - t0, "judge": time.perf_counter() - t1}


def learn(strategy: Strategy, attempts: list[Attempt], times: dict[str, float], progress: Progress, phases: Phases,
          journal: Journal, monitors: Monitors) -> None:
    """The strategy learns from the judged batch; its metrics (if it learns) are recorded and watched."""
    t0 = time.perf_counter()
    phases("update", progress.step, len(attempts))
    metrics = strategy.observe(attempts)
    progress.add_update(time.perf_counter() - t0)
    if not metrics:
        return
    metrics.update({"step": progress.step, "attempts_used": progress.used, "time/sample_s": times["sample"],
                    "time/judge_s": times["judge"], "health/truncated_frac": sum(map(_cut, attempts)) / max(len(attempts), 1)})
    signal = monitors.update(metrics)
    journal.update(progress.step, metrics, signal)
    monitors.after_update(metrics, signal)


def summarize(progress: Progress, problem: Problem, cfg: SolveConfig, monitors: Monitors, status: str, reason: str) -> Summary:
    """The run's summary.json; status: solved | budget_exhausted | interrupted, reason: what ended it."""
    return Summary(
        status=status, solved=progress.passes.first is not None, problem_id=problem.id, strategy=cfg.strategy, seed=cfg.seed,
        budget=cfg.budget, attempts_used=progress.used, discovery_attempt=progress.passes.first, steps=progress.step,
        best_score=progress.best, wall_time_s=progress.wall(), time_split_s=dict(progress.split),
        attempts_passed=progress.passes.count, stop_reason=reason, generated_tokens=progress.costs.generated_tokens,
        device_time_s=progress.costs.device_s, cpu_time_s=progress.spent().cpu_s, warnings=list(monitors.warnings),
    )


def _cut(a: Attempt) -> bool:
    """The token limit cut the attempt's code (not just prose after a closed code block: issue 26)."""
    return code_cut(a.completion.text, a.completion.finish_reason)
