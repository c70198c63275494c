"""Planning a batch: problem x strategy x seed x grid point -> jobs (compare cells), nothing run, nothing written."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdpo_ttt.grid.cells import Cell, plan_grid
from sdpo_ttt.config.tree import FLAT, SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.schema import find_problem_files, load_problem

RESERVED_KEYS = {"strategy": "--strategy", "seed": "--seeds / --seed-start", "stop_on_success": "--best-of-k-fixed-n/--best-of-k-stop"}


@dataclass(frozen=True)
class Job:
    """One run: a compare cell plus the grid point it belongs to."""

    id: str  # the run directory relative to OUT, e.g. "lr=0.001/two-sum/sdpo/seed2"
    cell: Cell
    point: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        c = self.cell
        return {"problem_id": c.problem_id, "problem_path": str(c.problem_path), "strategy": c.strategy, "seed": c.seed,
                "point": self.point, "run_dir": str(c.path)}


@dataclass
class Plan:
    out: Path
    jobs: list[Job]
    broken: list[dict[str, str]]  # problem files that do not load: {"path", "error"}
    points: list[dict[str, Any]]


def parse_value(text: str) -> Any:
    """A --grid value: JSON when it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key(raw: str, flag: str) -> str:
    key = raw.strip().replace("-", "_")
    if key in RESERVED_KEYS:
        raise UserError(f"{flag} {raw}: the {key} is set by {RESERVED_KEYS[key]}", f"drop it from {flag} and use {RESERVED_KEYS[key]}")
    if key not in FLAT:
        raise UserError(f"{flag}: unknown option {raw!r}", "use an option of `sdpo-ttt solve --help` (dashes or underscores), e.g. --grid lr=1e-4,3e-4")
    return key


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """--grid key=v1,v2 ... -> {key: [v1, v2]} (one axis per --grid)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item!r}: expected key=v1,v2,...", "e.g. --grid lr=1e-4,3e-4")
        k, v = item.split("=", 1)
        key = _key(k, "--grid")
        values = [parse_value(x.strip()) for x in v.split(",") if x.strip()]
        if not values or key in out:
            raise UserError(f"--grid {item!r}: " + ("no values" if not values else f"{key} given twice"), "one --grid key=v1,v2 per option")
        out[key] = list(dict.fromkeys(values))
    return out


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the axes, first axis slowest; [{}] for no grid."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_tag(point: dict[str, Any]) -> str:
    """The folder name of a grid point ('' for none): key=value joined by commas, safe as one path component."""
    def fmt(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

    tag = ",".join(f"{k}={fmt(v)}" for k, v in point.items())
    return tag.replace("/", "--").replace(os.sep, "--").replace("\0", "")


def check_problems(paths: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Problem files that load, and the broken ones with their error (reported and skipped, never fatal)."""
    files = find_problem_files(list(paths))
    good, broken = [], []
    for f in files:
        try:
            load_problem(f)
            good.append(Path(f).resolve())
        except UserError as e:
            broken.append({"path": str(f), "error": e.message})
    if not files:
        raise UserError("no problem files found", "pass problem.json files or folders holding them, e.g. problems/")
    if not good:
        raise UserError(f"no problem file loads ({len(broken)} broken; the first: {broken[0]['error']})",
                        "check the paths, or fix the files (`sdpo-ttt problem validate FILE` names every error)")
    return good, broken


def plan_batch(problems: Sequence[Path], strategies: Sequence[str], seeds: Sequence[int], out: Path, base: SolveConfig,
               grid: dict[str, list[Any]] | None = None, *, best_of_k_fixed_n: bool = True) -> Plan:
    """Expand problem x strategy x seed x grid point into jobs (compare's cell order within each grid point)."""
    out = Path(out).resolve()
    good, broken = check_problems(problems)
    points = grid_points(grid or {})
    jobs: list[Job] = []
    for point in points:
        tag = point_tag(point)
        cfg = base.with_values(point, f"--grid {tag}") if point else base
        if good:
            for cell in plan_grid(good, strategies, seeds, out / tag if tag else out, cfg, best_of_k_fixed_n=best_of_k_fixed_n):
                jobs.append(Job(cell.path.relative_to(out).as_posix(), cell, point))
    return Plan(out, jobs, broken, points)
