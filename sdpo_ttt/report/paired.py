"""The paired comparison with common random numbers: a learning strategy against best-of-k on the same (problem, seed).

Sampling in step s of a run is seeded by (seed, s) and every token is drawn from that seed's stream (policy/decode.py:
inverse CDF from one shared uniform per row and step; `generate` and vLLM: the same seed per batch or request, see
docs/compare.md), so the best-of-k run with a learner's seed and sampling options is that learner's exact
no-learning counterfactual: attempt i of both is the same draw, token for token, until the update moves the
distribution enough to flip a token. Per pair this tells which attempts the update changed, and whether a discovery
came from learning (the learner passed where the same-seed stream had not yet) or was lost to it (the reverse).

Over all pairs, an exact two-sided sign test on the pairs where one run discovered first (ties dropped), and the
exact McNemar test on the pairs where only one run solved within the horizon: both are the binomial(n, 1/2) test
of `sign_test`. Pure functions over RunRecords; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sdpo_ttt.config.strategies import BASELINE
from sdpo_ttt.report.runs import RunRecord
from sdpo_ttt.report.words import plural
from sdpo_ttt.run.strategies import STRATEGIES


def learns(strategy: str) -> bool:
    """The strategy updates the model between batches (its registry entry says so)."""
    spec = STRATEGIES.get(strategy)
    return bool(spec and spec.learns)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test: P(a Binomial(n, 1/2) count lies at least as far from n/2 as `wins`), n = wins + losses.

    Also the exact McNemar test when wins and losses are the two kinds of discordant pairs. 1.0 with no pair."""
    if wins < 0 or losses < 0:
        raise ValueError("counts must be >= 0")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class Pair:
    """A learner's run and best-of-k's run with the same problem, seed and sampling options."""

    problem_id: str
    seed: int
    strategy: str
    horizon: int  # attempts both runs were observed for: the first passes are compared within it
    learner: int | None  # 1-based attempt of the learner's first pass within the horizon (None: none)
    baseline: int | None  # the same for best-of-k's same-seed stream
    compared: int  # attempts both runs drew and recorded token ids for
    changed: tuple[int, ...] | None  # 1-based attempts whose token ids differ from best-of-k's (None: ids not recorded)

    @property
    def outcome(self) -> str:
        """'gained': the learner passed first (where the same-seed stream had failed up to that attempt); 'lost': the
        reverse; 'tie': both first passed at the same attempt, or neither within the horizon."""
        inf = self.horizon + 1
        lo, ba = self.learner or inf, self.baseline or inf
        return "gained" if lo < ba else "lost" if ba < lo else "tie"

    @property
    def difference(self) -> tuple[int | None, str]:
        """Learner's attempts to discovery minus best-of-k's (< 0: the learner was earlier), censored at the horizon:
        ('', exact), ('>=', the learner did not pass within the horizon: at least this), ('<=', best-of-k did not:
        at most this); None when neither passed."""
        h = self.horizon + 1
        if self.learner is None and self.baseline is None:
            return None, ""
        if self.learner is None:
            return h - self.baseline, ">="
        if self.baseline is None:
            return self.learner - h, "<="
        return self.learner - self.baseline, ""

    @property
    def pass_changed(self) -> bool | None:
        """The learner's first pass came from a sample the update changed (None: no pass, or ids not recorded)."""
        if self.learner is None or self.changed is None or self.learner > self.compared:
            return None
        return self.learner in self.changed


@dataclass(frozen=True)
class PairedSummary:
    """One learning strategy against best-of-k over every (problem, seed) pair."""

    strategy: str
    pairs: tuple[Pair, ...]
    unpaired: tuple[str, ...]  # why a learner's run found no counterfactual (one line per run)

    def count(self, outcome: str) -> int:
        return sum(p.outcome == outcome for p in self.pairs)

    @property
    def p_first(self) -> float:
        """Sign test on who passed first (ties dropped)."""
        return sign_test(self.count("gained"), self.count("lost"))

    @property
    def solved_only(self) -> tuple[int, int]:
        """Pairs solved within the horizon by the learner only, and by best-of-k only (McNemar's discordant pairs)."""
        return (sum(p.learner is not None and p.baseline is None for p in self.pairs),
                sum(p.learner is None and p.baseline is not None for p in self.pairs))

    @property
    def p_solved(self) -> float:
        return sign_test(*self.solved_only)

    @property
    def changed_fraction(self) -> float | None:
        """Of the attempts both runs drew, the fraction the update changed (pairs with ids recorded)."""
        known = [p for p in self.pairs if p.changed is not None]
        total = sum(p.compared for p in known)
        return sum(len(p.changed or ()) for p in known) / total if total else None


def first_pass(r: RunRecord, horizon: int) -> int | None:
    return r.discovery if r.discovery is not None and r.discovery <= horizon else None


def pair(learner: RunRecord, baseline: RunRecord) -> Pair:
    """The paired record of a learner's run and best-of-k's run with the same problem, seed and sampling options."""
    h = min(learner.observed, baseline.observed)
    changed: tuple[int, ...] | None = None
    compared = 0
    if learner.token_ids is not None and baseline.token_ids is not None:
        compared = min(len(learner.token_ids), len(baseline.token_ids), h)
        changed = tuple(i + 1 for i in range(compared) if learner.token_ids[i] != baseline.token_ids[i])
    return Pair(problem_id=learner.problem_id, seed=learner.seed, strategy=learner.strategy, horizon=h,
                learner=first_pass(learner, h), baseline=first_pass(baseline, h), compared=compared, changed=changed)


def coupling_mismatch(a: RunRecord, b: RunRecord) -> list[str]:
    """The sampling options on which two runs differ (so their random streams are not shared)."""
    return [k for k in sorted(set(a.coupling) | set(b.coupling)) if a.coupling.get(k) != b.coupling.get(k)]


def paired_summaries(records: Sequence[RunRecord]) -> list[PairedSummary]:
    """Every learning strategy in `records` against the best-of-k run with the same (problem, seed) and sampling
    options; none when there is no best-of-k run or no learner."""
    base = {(r.problem_id, r.seed): r for r in records if r.strategy == BASELINE}
    if not base:
        return []
    out = []
    for s in sorted({r.strategy for r in records if learns(r.strategy)}):
        pairs, unpaired = [], []
        for r in sorted((r for r in records if r.strategy == s), key=lambda r: (r.problem_id, r.seed)):
            b = base.get((r.problem_id, r.seed))
            where = f"{r.problem_id} seed {r.seed}"
            if b is None:
                unpaired.append(f"{where}: no {BASELINE} run with this seed")
            elif bad := coupling_mismatch(r, b):
                unpaired.append(f"{where}: the {BASELINE} run samples with other {', '.join(bad)}, so it draws another stream")
            else:
                pairs.append(pair(r, b))
        out.append(PairedSummary(s, tuple(pairs), tuple(unpaired)))
    return out


# ------------------------------------------------------------------ words and JSON
def format_difference(p: Pair) -> str:
    value, bound = p.difference
    if value is None:
        return f"— (neither within {p.horizon})"
    shown = f"{value:+d}"
    if bound == ">=":
        return f">= {shown} ({p.strategy} censored at {p.horizon})"
    if bound == "<=":
        return f"<= {shown} ({BASELINE} censored at {p.horizon})"
    return shown


def format_changed(p: Pair) -> str:
    if p.changed is None:
        return "not recorded"
    if not p.changed:
        return f"none of {p.compared}"
    return f"{len(p.changed)} of {p.compared}, from attempt {p.changed[0]}"


def paired_lines(summaries: Sequence[PairedSummary]) -> list[str]:
    """The primary comparison in words: one paragraph per learning strategy."""
    out = []
    for s in summaries:
        if not s.pairs:
            out.append(f"{s.strategy} vs {BASELINE}, paired: no pair ({'; '.join(s.unpaired)}).")
            continue
        g, lost, t = s.count("gained"), s.count("lost"), s.count("tie")
        a, b = s.solved_only
        gains = [p for p in s.pairs if p.outcome == "gained" and p.pass_changed is not None]
        caused = f", {sum(bool(p.pass_changed) for p in gains)} of {len(gains)} from samples the update changed" if gains else ""
        line = (f"{s.strategy} vs {BASELINE}, paired by (problem, seed) on common random numbers over "
                f"{plural(len(s.pairs), 'pair')}: {s.strategy} passed first in {g} (discoveries gained{caused}), {BASELINE}'s same-seed stream first in "
                f"{lost} (lost), {t} tied; exact two-sided sign test p = {s.p_first:.3g}. Solved within the horizon by "
                f"{s.strategy} only {a}, by {BASELINE} only {b} (exact McNemar p = {s.p_solved:.3g}).")
        frac = s.changed_fraction
        if frac is not None:
            line += f" The updates changed {frac:.0%} of the attempts both drew."
        if s.unpaired:
            line += f" Not paired: {'; '.join(s.unpaired)}."
        out.append(line)
    return out


def paired_tally(summaries: Sequence[PairedSummary], strategy: str, problem_id: str | None = None) -> str:
    """'paired by seed: 0 gained, 1 lost, 3 tied' for a strategy's pairs on one problem (None: every problem), to stand
    beside its ratio to best-of-k; '' where it has no pair."""
    pairs = [p for s in summaries if s.strategy == strategy for p in s.pairs if problem_id is None or p.problem_id == problem_id]
    if not pairs:
        return ""
    n = {o: sum(p.outcome == o for p in pairs) for o in ("gained", "lost", "tie")}
    return f"paired by seed: {n['gained']} gained, {n['lost']} lost, {n['tie']} tied"


def pair_table(summaries: Sequence[PairedSummary]) -> tuple[list[str], list[list[str]]]:
    """One row per pair: the first passes, their difference (censored at the horizon), the changed attempts, the outcome."""
    headers = ["problem", "seed", "strategy", "first pass", f"{BASELINE} first pass (same seed)",
               "difference (attempts)", "attempts the update changed", "outcome"]
    none = lambda v: "—" if v is None else str(v)  # noqa: E731
    rows = [[p.problem_id, str(p.seed), p.strategy, none(p.learner), none(p.baseline),
             format_difference(p), format_changed(p), p.outcome] for s in summaries for p in s.pairs]
    return headers, rows


def paired_json(summaries: Sequence[PairedSummary]) -> list[dict[str, Any]]:
    out = []
    for s in summaries:
        a, b = s.solved_only
        out.append({
            "strategy": s.strategy, "baseline": BASELINE, "pairs": len(s.pairs),
            "gained": s.count("gained"), "lost": s.count("lost"), "ties": s.count("tie"), "sign_test_p": s.p_first,
            "solved_only_by_strategy": a, "solved_only_by_baseline": b, "mcnemar_p": s.p_solved,
            "changed_fraction": s.changed_fraction, "unpaired": list(s.unpaired),
            "per_pair": [{"problem_id": p.problem_id, "seed": p.seed, "horizon": p.horizon, "first_pass": p.learner,
                          "baseline_first_pass": p.baseline, "difference": p.difference[0],
                          "difference_bound": p.difference[1] or None, "censored": bool(p.difference[1]),
                          "compared": p.compared, "changed": None if p.changed is None else list(p.changed),
                          "pass_changed": p.pass_changed, "outcome": p.outcome} for p in s.pairs],
        })
    return out
