"""Run directories → RunRecord: what the report needs from each run, read only from what runs leave behind
(config.json, problem.json, attempts.jsonl, summary.json), so a report can be rebuilt at any time from a folder of
runs without running anything."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sdpo_ttt.config.strategies import BASELINE
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.rundir import FINISHED_STATUSES, RunDir

# The options besides (seed, step) that decide which tokens a run draws: two runs that agree on all of them and
# on the seed share their random stream (common random numbers), whatever their strategy (report/paired.py).
COUPLING_KEYS = ("model", "batch_size", "max_new_tokens", "temperature", "top_p", "backend", "device", "dtype",
                 "system_prompt", "user_template", "max_prompt_tokens")


@dataclass(frozen=True)
class RunRecord:
    """What the report needs from one run directory."""

    path: Path
    problem_id: str
    title: str
    strategy: str
    seed: int
    budget: int
    model: str
    batch_size: int | None
    max_new_tokens: int | None
    stop_on_success: bool
    status: str  # solved | budget_exhausted | interrupted | unfinished (no summary yet)
    attempts_used: int
    discovery: int | None  # 1-based attempt of the first pass
    passes: int  # attempts that passed (all of them for fixed-n best-of-k)
    wall_time_s: float | None
    costs: dict[str, tuple[float, ...]] = field(default_factory=dict)  # x axis -> what was spent when each attempt was judged
    spent: dict[str, float] = field(default_factory=dict)  # x axis -> what the run spent in all
    passed: tuple[bool, ...] = ()  # per attempt, by index
    token_ids: tuple[tuple[int, ...], ...] | None = None  # per attempt, by index, the completion's token ids (None: not recorded)
    coupling: dict[str, Any] = field(default_factory=dict)  # the options that decide the sampled stream (COUPLING_KEYS)

    @property
    def finished(self) -> bool:
        """The run ended on its own (solved, or spent its budget of attempts, time or tokens), not interrupted."""
        return self.status in FINISHED_STATUSES

    @property
    def observed(self) -> int:
        """Attempts up to which the run's first pass is known: its budget when it passed or ended on its own (a run
        stopped by --max-time or --max-tokens did not pass within what it was given), else the attempts it drew
        before it was interrupted (censored there)."""
        return self.budget if self.finished or self.discovery is not None else self.attempts_used
    lineage: tuple[int, ...] = ()  # the discovery and the attempts it refined, newest first (runs that log parents)


def load_run(path: Path) -> RunRecord:
    """Read one run directory (finished or not), through RunDir."""
    run = RunDir.open_existing(path)
    path = run.path
    cfg, problem, summary, attempts = run.read_config(), run.read_problem(), run.read_summary(), run.read_attempts()
    rows = sorted(attempts, key=lambda a: a.get("index", 0))
    passed = [bool(a.get("passed")) for a in rows]
    ids = tuple(tuple(int(t) for t in a["completion_ids"]) for a in rows) if all("completion_ids" in a for a in rows) else None
    first = next((i + 1 for i, p in enumerate(passed) if p), None)
    if summary and summary.get("discovery_attempt") is not None:
        first = int(summary["discovery_attempt"])
    used = int(summary["attempts_used"]) if summary else len(passed)
    return RunRecord(
        path=path, problem_id=str(problem["id"]), title=str(problem.get("title") or problem["id"]),
        strategy=str(cfg.get("strategy", "sdpo")), seed=int(cfg.get("seed", 0)), budget=int(cfg["budget"]),
        model=str(cfg.get("model", "?")), batch_size=cfg.get("batch_size"), max_new_tokens=cfg.get("max_new_tokens"),
        stop_on_success=bool(cfg.get("stop_on_success", True)),
        status=str(summary["status"]) if summary else "unfinished", attempts_used=used, discovery=first,
        passes=sum(passed), wall_time_s=float(summary["wall_time_s"]) if summary else None,
        passed=tuple(passed), token_ids=ids, coupling={k: cfg.get(k) for k in COUPLING_KEYS},
        lineage=discovery_lineage(attempts, first), **attempt_costs(attempts, summary),
    )


def discovery_lineage(attempts: list[dict[str, Any]], discovery: int | None) -> tuple[int, ...]:
    """The discovery and its ancestors (the parent it refined, that one's parent, ...), as 1-based attempt numbers,
    newest first; () when the run is unsolved or logged no parent (strategies other than evolve, sdpo-evolve)."""
    if discovery is None or not any(a.get("parent") is not None for a in attempts):
        return ()
    parent = {int(a["index"]): a.get("parent") for a in attempts}
    chain = [discovery - 1]
    while (p := parent.get(chain[-1])) is not None:
        chain.append(int(p))
    return tuple(i + 1 for i in chain)


X_AXES = ("attempts", "tokens", "seconds")  # what discovery can be drawn against (--x)
X_LABELS = {"attempts": "attempts k", "tokens": "generated tokens", "seconds": "wall-clock seconds"}


def attempt_costs(attempts: list[dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any]:
    """For RunRecord: the cumulative cost at each attempt (by index) on the tokens and seconds axes, and the run's
    total. Tokens: `run_tokens`, or for older runs the completion tokens summed to the end of each attempt's batch;
    seconds: `run_wall_s` (recorded since 2026-12-01; older runs have no seconds axis)."""
    rows = sorted(attempts, key=lambda a: a.get("index", 0))
    costs: dict[str, tuple[float, ...]] = {}
    spent: dict[str, float] = {}
    if rows and all("run_tokens" in a for a in rows):
        costs["tokens"] = tuple(float(a["run_tokens"]) for a in rows)
    elif rows and all("completion_tokens" in a and "step" in a for a in rows):
        per_step: dict[int, int] = {}
        for a in rows:
            per_step[int(a["step"])] = per_step.get(int(a["step"]), 0) + int(a["completion_tokens"])
        upto = {s: sum(v for t, v in per_step.items() if t <= s) for s in per_step}
        costs["tokens"] = tuple(float(upto[int(a["step"])]) for a in rows)
    if rows and all("run_wall_s" in a for a in rows):
        costs["seconds"] = tuple(float(a["run_wall_s"]) for a in rows)
    totals = {"tokens": "generated_tokens", "seconds": "wall_time_s"}
    for axis, c in costs.items():
        spent[axis] = max(c[-1], float((summary or {}).get(totals[axis]) or 0.0))
    return {"costs": costs, "spent": spent}


def fixed_n(r: RunRecord) -> bool:
    """A best-of-k run that drew its whole budget without stopping at its first pass (`compare`'s default)."""
    return r.strategy == BASELINE and not r.stop_on_success


def stopped_at_first_pass(r: RunRecord, horizon: int | None = None) -> RunRecord:
    """A fixed-n best-of-k run as the run with its seed that stops at its first pass: that run draws the same attempts
    in the same order (sampling in step s is seeded by (seed, s), best-of-k's prompt never changes, and attempts.jsonl
    holds the attempts batch after batch, index = attempts drawn before + row), so its discovery time is the index of
    the first passing attempt in this stream. Cut there (a stopping run would finish that batch: nothing the curves
    read changes), or at `horizon` attempts (the budget the sequential strategies were given) where that is shorter
    than the run's own budget: a first pass past it counts as none, censored at the horizon like theirs."""
    h = r.budget if horizon is None else min(r.budget, horizon)
    first = r.discovery if r.discovery is not None and r.discovery <= h else None
    end = min(r.attempts_used, first or h)
    whole = first is None and end == r.attempts_used  # unsolved, and nothing cut: it spent what it spent in all
    spent = {x: r.spent[x] if whole else (c[end - 1] if end else 0.0) for x, c in r.costs.items()}
    status = "solved" if first else "budget_exhausted" if r.finished or r.attempts_used >= h else r.status
    return replace(
        r, budget=h, stop_on_success=True, status=status, attempts_used=end, discovery=first, passes=int(first is not None),
        wall_time_s=spent.get("seconds", r.wall_time_s), costs={x: c[:end] for x, c in r.costs.items()}, spent=spent,
        passed=r.passed[:end], token_ids=None if r.token_ids is None else r.token_ids[:end], lineage=(),
    )


def collect_runs(root: Path) -> list[RunRecord]:
    runs = RunDir.find_all(root)
    if not runs:
        raise UserError(f"{root} holds no run directories", "pass the --out folder of a `compare` (or a folder of `solve` runs)")
    return [load_run(r.path) for r in runs]
