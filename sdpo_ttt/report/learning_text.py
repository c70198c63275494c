"""The markdown report of a paired before/after learning experiment (benchmarks/feedback_learning.py, issue 25): the
figures of `learning_summary.summarise` as tables — arms pooled over problems, learning curves, per problem, the
teacher — and how to read them. Pure; no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from sdpo_ttt.report.learning_summary import CI, FEW_TOKENS, RARELY_SOLVED

__all__ = ["render"]


def _fci(ci: CI, pct: bool = False, sign: str = "+") -> str:
    m, lo, hi = ci
    if m is None:
        return "-"
    f = (lambda x: format(100 * x, f"{sign}.0f")) if pct else (lambda x: format(x, f"{sign}.2f"))
    return f"{f(m)} [{f(lo)}, {f(hi)}]"


def _frac(kn: Sequence[int]) -> str:
    return f"{kn[0]}/{kn[1]}" if kn[1] else "-"


def _f2(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _fchange(change: dict[str, Any]) -> tuple[str, str]:
    """(after-samples changed, base tokens changed) cells."""
    if not change["pairs"]:
        return "-", "-"
    return f"{change['changed']}/{change['pairs']}", f"{change['token_share']:.0%}"


def _fsigned(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _fcurve(curve: Sequence[dict[str, Any]]) -> str:
    first, last = curve[0]["score"][0], curve[-1]["score"][0]
    return "-" if first is None or last is None else f"{first:.2f} → {last:.2f}"


def render(summary: dict[str, Any]) -> str:
    """The markdown report of `summarise`: arms pooled, learning curves, per problem, the teacher, then how to read it."""
    s, cells = summary["settings"], summary["cells"]
    lines = ([summary["regime"], ""] if summary["regime"] else []) + [f"settings: {json.dumps(s)}", ""]
    if summary["ignored"]:
        lines += [f"Not in the problem list, so left out: {', '.join(summary['ignored'])}.", ""]
    if not cells:
        lines += ["(no trained condition finished yet)", ""]
    else:
        lines += ["## Arms, pooled over problems", "",
                  "| arm | λ | lr | problems | problem × seed pairs | Δ pass (pp) [90% CI] | Δ score [90% CI] | after-samples "
                  f"changed | base tokens changed | batch score, update 1 → {s['updates']} | GRPO signal (updates) | gained on |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in cells:
            p = c["pooled"]
            lines.append(f"| {c['arm']} | {c['grpo_weight']:g} | {c['lr']:g} | {p['problems']} | {p['pairs']} "
                         f"| {_fci(p['d_pass'], pct=True)} | {_fci(p['d_score'])} | {' | '.join(_fchange(p['change']))} "
                         f"| {_fcurve(c['curve'])} | {'-' if p['grpo_signal'] is None else _frac(p['grpo_signal'])} "
                         f"| {p['gained']}/{p['problems']} |")
        lines.append("")
        lines += [f"- **{c['arm']} at lr {c['lr']:g}**: {c['pooled']['note']}" for c in cells if c["pooled"]["note"]]
        cp = summary["coupling"]
        if cp["pairs"]:
            ok = cp["same"] == cp["pairs"]
            lines.append(f"- Coupling check: update 1's batch (drawn before any update) equals the same-seed stream on "
                         f"{cp['same']}/{cp['pairs']} samples" + ("." if ok else " — sampling is NOT coupled here, so "
                         "the token-change figures and the Δ vs stream are not the effect of the updates alone."))
        lines += ["", "## Learning curves, pooled over problems and seeds", "",
                  "Update t's batch is drawn from the student after t − 1 updates, with the seeds of the stream (the model "
                  "as loaded on the same seeds); the last row is the evaluation after all updates against the base samples.", ""]
        for c in cells:
            lines += [f"### {c['arm']}, lr {c['lr']:g}", "",
                      "| update | batch passes | batch score [90% CI] | stream score | Δ vs stream [90% CI] | samples changed | tokens changed |",
                      "|---|---|---|---|---|---|---|"]
            for pt in c["curve"]:
                lines.append(f"| {pt['update']} | {pt['passed']}/{pt['attempts']} | {_fci(pt['score'], sign='')} "
                             f"| {_f2(pt['stream_score'])} | {_fci(pt['d_score'])} | {' | '.join(_fchange(pt['change']))} |")
            rows = c["problems"]
            after = [sum(r["after_pass"][i] for r in rows) for i in (0, 1)]
            lines += [f"| after (eval seeds) | {_frac(after)} | {_f2(_problem_mean(rows, 'after_score'))} | "
                      f"{_f2(_problem_mean(rows, 'base_score'))} (base) | {_fci(c['pooled']['d_score'])} "
                      f"| {' | '.join(_fchange(c['pooled']['change']))} |", ""]
        lines += ["## Per problem", ""]
        for lr in sorted({c["lr"] for c in cells}):
            lines += [f"### lr = {lr:g}", "",
                      "| problem | arm | seeds | base pass | base score | after pass | after score | Δ pass (pp) [90% CI] "
                      "| Δ score [90% CI] | samples changed | tokens changed | gap₀ | corr₀ | tokens | wall |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            here = [c for c in cells if c["lr"] == lr]
            for pid in dict.fromkeys(r["problem"] for c in here for r in c["problems"]):
                for c in here:
                    for r in (r for r in c["problems"] if r["problem"] == pid):
                        lines.append(
                            f"| {pid} | {c['arm']} | {r['seeds']} | {_frac(r['base_pass'])} | {_f2(r['base_score'])} "
                            f"| {_frac(r['after_pass'])} | {_f2(r['after_score'])} | {_fci(r['d_pass'], pct=True)} "
                            f"| {_fci(r['d_score'])} | {' | '.join(_fchange(r['change']))} "
                            f"| {_fsigned(r['gap0'], '+.3f')} | {_fsigned(r['corr0'], '+.2f')} | {r['tokens']} "
                            f"| {r['wall_s'] / 60:.1f} min |")
            for c in here:
                p = c["pooled"]
                lines.append(f"| **pooled ({p['problems']} problems)** | {c['arm']} | | | | | | {_fci(p['d_pass'], pct=True)} "
                             f"| {_fci(p['d_score'])} | {' | '.join(_fchange(p['change']))} | | | | |")
            lines += ["", "Gained (Δ score interval above 0) on: " + "; ".join(
                f"{c['arm']} {c['pooled']['gained']}/{c['pooled']['problems']} problems" for c in here) + ".", ""]
    t = summary["teacher"]
    if t["problems"]:
        lines += ["## Base and teacher (independent of arm and rate)", "",
                  "| problem | seeds | base pass | base score | base cut off | teacher pass | teacher score "
                  "| teacher − base score [90% CI] | tokens | wall |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in t["problems"]:
            lines.append(f"| {r['problem']} | {r['seeds']} | {_frac(r['base_pass'])} | {_f2(r['base_score'])} "
                         f"| {r['base_cut']:.0%} | {_frac(r['teacher_pass'])} | {_f2(r['teacher_score'])} "
                         f"| {_fci(r['teacher_minus_base'])} | {r['tokens']} | {r['wall_s'] / 60:.1f} min |")
        n = len(t["problems"])
        too_easy = [r for r in t["problems"] if r["base_rate"] > RARELY_SOLVED]
        lines += [f"| **pooled ({n} problems)** | | | | | | | {_fci(t['pooled'])} | | |", "",
                  f"Ingredients: the teacher's context beat the base model (teacher − base score > 0) on "
                  f"{sum(r['teacher_better'] for r in t['problems'])}/{n} problems; most base attempts were cut off at "
                  f"{s['max_new_tokens']} tokens on {sum(r['base_cut'] > 0.5 for r in t['problems'])}/{n}.", "",
                  f"Calibration: base pass rate above {RARELY_SOLVED:.0%} (the band of problems/feedback-learning.txt) on "
                  + (", ".join(f"{r['problem']} ({_frac(r['base_pass'])})" for r in too_easy) if too_easy else "none")
                  + (": replace them before the trained conditions run." if too_easy else "."), ""]
    lines.append(
        "Δ = after − base on the same sampling seeds (pp: percentage points); CIs: 90% bootstrap over problems, then "
        "samples. λ: the weight of GRPO on the partial score in λ·L_grpo + (1−λ)·L_sdpo; every arm learns from the "
        "failed attempts of its batches only (`solve` stops at the first pass); GRPO signal: the updates whose failed "
        "attempts' scores differed (else the GRPO advantage is 0). Samples/tokens changed: same-seed pairs "
        "share their random stream, so an after-sample is its base sample until the updates flip a token; 'samples "
        "changed' counts the pairs that differ, 'tokens changed' averages the share of the base sample's tokens from "
        f"the first differing one (under {FEW_TOKENS:.0%}: the rate barely moved the samples). gap₀: teacher − student "
        "log-prob on the first update's attempts (nats/token; its sign is no test of the teacher: the feedback quotes "
        "the attempt; sdpo_ttt/run/monitors.py); corr₀: its rank correlation with the attempts' scores (> 0: the "
        "teacher prefers the better-scored attempts; '-': their scores all tied). Tokens and wall: the trained "
        "condition's (the teacher table: base, teacher and stream).")
    return "\n".join(lines)


def _problem_mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean over problems of a per-problem figure."""
    values = [r[key] for r in rows if r[key] is not None]
    return float(np.mean(values)) if values else None
