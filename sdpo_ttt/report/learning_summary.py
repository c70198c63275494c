"""The figures of a paired before/after learning experiment (benchmarks/feedback_learning.py, issue 25), from its
records (the lines of OUT/results.jsonl): per (arm, learning rate) the per-problem rows and the pooled Δ pass and
Δ score with 90% bootstrap intervals, the token change against the same-seed base samples, and the learning curve
(each update's batch against the same-seed stream); the teacher's table; the coupling check. `summarise` returns
them JSON-ready; sdpo_ttt/report/learning_text.py renders them. Pure functions over dicts; no I/O.

A record is {"kind", "problem", "seed", "lr", "arm", "samples", ...}; the kinds: base (a), teacher (d), base-train
(e: "batches", the training batches' seeds from the model as loaded), trained (b)+(c): "samples" after the updates,
"steps" (one row per update), "train_samples" (each with its "step"). A sample is {"passed", "score", "tokens",
"truncated", ...}, with "ids" (base, stream) or "common" (its common prefix with the same-seed base sample).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sdpo_ttt.report.learning import arm_weight, bootstrap_mean, paired, token_change

BASE, TEACHER, STREAM, TRAINED = "base", "teacher", "base-train", "trained"  # the conditions (a, d, e) and (b)+(c)
FEW_TOKENS = 0.10  # below this share of base tokens changed, an arm's Δ ≈ 0 says little: the report flags it
RARELY_SOLVED = 0.20  # the band of problems/feedback-learning.txt: base pass rate at most this


class Records:
    """The finished conditions of a run and their lookups. updates, batch: T and B of the run; legacy_arm: the arm
    of a trained record written before arms existed (its λ came from the run's options; default sdpo)."""

    def __init__(self, records: list[dict[str, Any]], *, updates: int, batch: int, legacy_arm: str = "sdpo") -> None:
        self.records = records
        self.updates = updates
        self.batch = batch
        self.legacy_arm = legacy_arm

    def arm(self, record: dict[str, Any]) -> str | None:
        """A trained record's arm (records from before arms: `legacy_arm`); None for the others."""
        return (record.get("arm") or self.legacy_arm) if record["kind"] == TRAINED else None

    def key(self, r: dict[str, Any]) -> tuple:
        return r["kind"], r["problem"], r["seed"], None if r.get("lr") is None else float(r["lr"]), self.arm(r)

    def get(self, kind: str, problem: str, seed: int, lr: float | None = None, arm: str | None = None) -> dict[str, Any] | None:
        want = (kind, problem, seed, None if lr is None else float(lr), arm)
        return next((r for r in self.records if self.key(r) == want), None)

    def trained(self, problem: str, lr: float, arm: str) -> list[dict[str, Any]]:
        """The trained records of one problem and (arm, lr), by seed."""
        return sorted((r for r in self.records if r["kind"] == TRAINED and r["problem"] == problem
                       and float(r["lr"]) == float(lr) and self.arm(r) == arm), key=lambda r: r["seed"])

    def cells(self) -> list[tuple[str, float]]:
        """The (arm, lr) of every trained record, sorted by rate then λ."""
        found = {(self.arm(r), float(r["lr"])) for r in self.records if r["kind"] == TRAINED}
        return sorted(found, key=lambda c: (c[1], arm_weight(c[0])))


CI = list  # [estimate, low, high] (None for no data): a 90% bootstrap interval, JSON-ready


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _ci(groups: Sequence[Sequence[float]], n_boot: int) -> CI:
    return [_num(v) for v in bootstrap_mean(groups, n_boot=n_boot)]


def mean_of(samples: Sequence[dict[str, Any]], key: str) -> float:
    return float(np.mean([float(s[key]) for s in samples])) if samples else math.nan


def flat_samples(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sample a record drew (the stream keeps them by batch)."""
    return record.get("samples") or [s for b in record.get("batches", []) for s in b]


def train_batches(record: dict[str, Any], updates: int, batch: int) -> list[list[dict[str, Any]]]:
    """A trained record's training samples by update (records from before issue 25 carry no step: B per update, in order)."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(updates)]
    for i, s in enumerate(record.get("train_samples", [])):
        t = s.get("step", i // batch)
        if t < updates:
            out[t].append(s)
    return out


def _changes(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]]) -> list[tuple[bool, float]]:
    """The token change of each same-seed pair whose common prefix was recorded."""
    return [token_change(a["common"], b["tokens"], a["tokens"]) for a, b in zip(after, before, strict=True) if "common" in a]


def _change(changes: Sequence[tuple[bool, float]]) -> dict[str, Any]:
    return {"pairs": len(changes), "changed": sum(c for c, _ in changes),
            "token_share": _num(float(np.mean([s for _, s in changes]))) if changes else None}


def change_note(change: dict[str, Any]) -> str:
    """What the token change says about a Δ: plain words for a rate that moved (almost) nothing."""
    if not change["pairs"]:
        return "token change not recorded (results from before issue 25)"
    if not change["changed"]:
        return ("no after-sample changed: they are the base samples token for token, so Δ = 0 by construction — "
                "this arm and rate learned nothing visible")
    if change["token_share"] < FEW_TOKENS:
        return (f"few tokens changed ({change['token_share']:.0%} of base tokens, {change['changed']}/{change['pairs']} "
                f"samples): a Δ near 0 says little either way")
    return ""


def _cell_problem(results: Records, pid: str, lr: float, arm: str, n_boot: int) -> dict[str, Any] | None:
    """One problem's row of one (arm, lr): its seeds pooled, with the raw paired differences for pooling."""
    base, after, d_pass, d_score, changes, gaps, corrs, seeds = [], [], [], [], [], [], [], []
    tokens, wall = 0, 0.0
    for a in results.trained(pid, lr, arm):
        b = results.get(BASE, pid, a["seed"])
        if b is None:
            continue
        seeds.append(a["seed"])
        base += b["samples"]
        after += a["samples"]
        d_pass += paired(a["samples"], b["samples"], "passed")
        d_score += paired(a["samples"], b["samples"], "score")
        changes += _changes(a["samples"], b["samples"])
        first = next((s for s in a["steps"] if "sdpo/teacher_student_logprob_gap" in s), None)
        if first is not None:
            gaps.append(first["sdpo/teacher_student_logprob_gap"])
            if "sdpo/gap_score_corr" in first:  # absent when that batch's failed attempts all scored the same
                corrs.append(first["sdpo/gap_score_corr"])
        tokens += sum(s["tokens"] for s in a["samples"] + a.get("train_samples", []))
        wall += a["wall_s"]
    if not seeds:
        return None
    score_ci = _ci([d_score], n_boot)
    return {"problem": pid, "seeds": len(seeds), "base_pass": [sum(s["passed"] for s in base), len(base)],
            "base_score": _num(mean_of(base, "score")), "after_pass": [sum(s["passed"] for s in after), len(after)],
            "after_score": _num(mean_of(after, "score")), "d_pass": _ci([d_pass], n_boot), "d_score": score_ci,
            "gained": score_ci[1] is not None and score_ci[1] > 0, "change": _change(changes),
            "gap0": _num(float(np.mean(gaps))) if gaps else None, "corr0": _num(float(np.mean(corrs))) if corrs else None,
            "tokens": tokens, "wall_s": wall, "_pass": d_pass, "_score": d_score, "_changes": changes}


def _curve(results: Records, pids: Sequence[str], lr: float, arm: str, n_boot: int) -> list[dict[str, Any]]:
    """Per update t: the batch's passes and mean score [CI] (the student after t − 1 updates), the same-seed stream's
    score, the paired Δ batch − stream [CI] and how many of the batch's samples the updates had changed."""
    points = []
    for t in range(results.updates):
        scores, stream_scores, deltas, changes, passed, n = [], [], [], [], 0, 0
        for pid in pids:
            sc, st, d = [], [], []
            for r in results.trained(pid, lr, arm):
                batch = train_batches(r, results.updates, results.batch)[t]
                sc += [x["score"] for x in batch]
                passed, n = passed + sum(x["passed"] for x in batch), n + len(batch)
                stream = results.get(STREAM, pid, r["seed"])
                if stream is not None and len(stream["batches"][t]) == len(batch):
                    st += [x["score"] for x in stream["batches"][t]]
                    d += paired(batch, stream["batches"][t], "score")
                    changes += _changes(batch, stream["batches"][t])
            scores.append(sc)
            stream_scores.append(st)
            deltas.append(d)
        points.append({"update": t + 1, "attempts": n, "passed": passed, "score": _ci(scores, n_boot),
                       "stream_score": _num(float(np.mean([np.mean(x) for x in stream_scores if x]))) if any(stream_scores) else None,
                       "d_score": _ci(deltas, n_boot), "change": _change(changes)})
    return points


def _teacher(results: Records, pids: Sequence[str], n_boot: int) -> dict[str, Any]:
    """The arm- and rate-independent conditions per problem: base, teacher − base, the cut-off share, cost."""
    rows, pooled = [], []
    for pid in pids:
        base, teach, d, tokens, wall = [], [], [], 0, 0.0
        seeds = sorted({r["seed"] for r in results.records if r["problem"] == pid and r["kind"] == BASE})
        for seed in seeds:
            b, t = results.get(BASE, pid, seed), results.get(TEACHER, pid, seed)
            base += b["samples"]
            if t is not None and t["samples"]:
                teach += t["samples"]
                d += paired(t["samples"], b["samples"], "score")
            for r in (b, t, results.get(STREAM, pid, seed)):
                if r is not None:
                    tokens += sum(x["tokens"] for x in flat_samples(r))
                    wall += r["wall_s"]
        if not base:
            continue
        pooled.append(d)
        ci = _ci([d], n_boot)
        rows.append({"problem": pid, "seeds": len(seeds), "base_pass": [sum(s["passed"] for s in base), len(base)],
                     "base_rate": _num(mean_of(base, "passed")), "base_score": _num(mean_of(base, "score")),
                     "base_cut": _num(mean_of(base, "truncated")),
                     "teacher_pass": [sum(s["passed"] for s in teach), len(teach)], "teacher_score": _num(mean_of(teach, "score")),
                     "teacher_minus_base": ci, "teacher_better": ci[0] is not None and ci[0] > 0, "tokens": tokens, "wall_s": wall})
    return {"problems": rows, "pooled": _ci(pooled, n_boot)}


def coupling(results: Records, pids: Sequence[str]) -> dict[str, int]:
    """Batch 1 of every trained record (drawn before any update) against the stream: all equal when sampling is coupled."""
    pairs = same = 0
    for r in results.records:
        stream = results.get(STREAM, r["problem"], r["seed"]) if r["kind"] == TRAINED and r["problem"] in pids else None
        if stream is not None:
            first = train_batches(r, results.updates, results.batch)[0]
            if len(first) == len(stream["batches"][0]):
                changes = _changes(first, stream["batches"][0])
                pairs, same = pairs + len(changes), same + sum(not c for c, _ in changes)
    return {"pairs": pairs, "same": same}


def grpo_signal(results: Records, lr: float, arm: str, pids: Sequence[str]) -> list[int]:
    """[updates whose GRPO advantage was not all 0, updates taken] of one (arm, lr): GRPO learns only from a batch
    whose failed attempts scored differently (A_i = r_i − mean r)."""
    steps = [s for pid in pids for r in results.trained(pid, lr, arm) for s in r["steps"] if "loss" in s]
    return [sum(s.get("grpo/advantage_std", 0.0) > 0 for s in steps), len(steps)]


def summarise(results: Records, problems: Sequence[str], n_boot: int, settings: dict[str, Any],
              regime: str = "") -> dict[str, Any]:
    """Every figure of the report, JSON-ready: per (arm, lr) the per-problem rows, the pooled Δs, the token change and
    the learning curve; the teacher table; the coupling check. Only the `problems` listed count (a problem taken off
    the list after its calibration stays in the results file, ignored)."""
    present = {r["problem"] for r in results.records}
    pids = [p for p in dict.fromkeys(problems) if p in present]  # the listed problems, in the list's order
    cells = []
    for arm, lr in results.cells():
        rows = [row for pid in pids if (row := _cell_problem(results, pid, lr, arm, n_boot)) is not None]
        change = _change([c for row in rows for c in row["_changes"]])
        signal = grpo_signal(results, lr, arm, pids) if arm_weight(arm) > 0 else None
        note = change_note(change)
        if signal is not None and signal[1] and not signal[0]:
            note += ("; " if note else "") + "GRPO had no signal: in every update the failed attempts scored alike (advantage 0)"
        pooled = {"problems": len(rows), "pairs": sum(row["seeds"] for row in rows),
                  "d_pass": _ci([row["_pass"] for row in rows], n_boot), "d_score": _ci([row["_score"] for row in rows], n_boot),
                  "gained": sum(row["gained"] for row in rows), "change": change, "grpo_signal": signal, "note": note}
        cells.append({"arm": arm, "grpo_weight": arm_weight(arm), "lr": lr, "pooled": pooled,
                      "problems": [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows],
                      "curve": _curve(results, pids, lr, arm, n_boot)})
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "settings": settings,
            "regime": regime, "bootstrap": n_boot, "level": 0.9, "ignored": sorted(present - set(pids)), "cells": cells,
            "teacher": _teacher(results, pids, n_boot), "coupling": coupling(results, pids)}
