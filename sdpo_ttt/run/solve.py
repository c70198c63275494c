"""Library entry of `sdpo-ttt solve`: resolve config, open the run directory, model and sandbox, run the loop."""

from __future__ import annotations

import time
from pathlib import Path
from sdpo_ttt.config.tree import SolveConfig, build_config
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.loop import Summary, run_discovery
from sdpo_ttt.run.reporter import Reporter
from sdpo_ttt.problem.schema import Problem, load_problem, parse_problem
from sdpo_ttt.run.rundir import RunDir


def default_run_dir(problem: Problem, cfg: SolveConfig) -> Path:
    return Path("runs") / f"{problem.id}-{cfg.strategy}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def solve(
    problem_path: Path | None,
    cfg: SolveConfig | None,
    *,
    run_dir: Path | None = None,
    resume: Path | None = None,
    reporter: Reporter | None = None,
    announce=None,
    policy=None,
    workers: int = 1,
    threads_hint: int | None = None,
) -> tuple[Summary, RunDir]:
    """Run one problem with one strategy to success or budget exhaustion, or resume a killed run.

    Inputs are validated first, then the sandbox and the model are opened, and only then is a new run
    directory created, so a failure to start leaves nothing behind. torch threads: the run's --threads, else
    `threads_hint`, else this process's share of the free CPUs among `workers` parallel runs (threads.py).
    """
    from sdpo_ttt.policy import threads
    from sdpo_ttt.sandbox import open_sandbox

    if resume is not None:
        run = RunDir.open_existing(resume)
        if run.is_finished():
            raise UserError(f"{resume} already finished ({run.read_summary()['status']})", "start a new run instead of resuming")
        problem = parse_problem(run.read_problem(), str(run.problem_path))
        cfg = build_config([(str(run.config_path), run.read_config())])
    else:
        assert problem_path is not None and cfg is not None
        problem = load_problem(problem_path)
        target = Path(run_dir) if run_dir else default_run_dir(problem, cfg)
        if target.exists() and any(target.iterdir()):
            raise UserError(f"{target} already holds files", f"resume it with `--resume {target}`, or pick another `--run-dir`")
    threads.configure(workers=workers, requested=cfg.threads or threads_hint)
    with open_sandbox(cfg.judge.sandbox, workers=cfg.judge.sandbox_workers, announce=announce) as sandbox:
        owned = policy is None  # a policy loaded here is closed here (its vLLM engine, if any, shut down)
        if policy is None:
            from sdpo_ttt.policy.model import Policy

            policy = Policy.load(cfg.policy, seed=cfg.seed)
        try:
            if resume is None:
                run = RunDir.create(target, cfg.flat(), problem.to_json())
            summary = run_discovery(problem, cfg, run, policy, sandbox, reporter=reporter, resume=resume is not None)
        finally:
            if owned:
                policy.close()
    return summary, run
