"""evolve and sdpo-evolve: refine the programs judged so far, as evolutionary coding loops do (OpenEvolve,
AlphaEvolve) and as TTT-Discover reuses earlier solutions as starting states.

    archive   every judged attempt: index, parent, code, score, verdict, feedback (from observe(), or rebuilt
              from attempts.jsonl on resume, where each attempt logs its parent)
    select    one parent per prompt of the batch: `select_parents` below, seeded by (seed, step)
    prompt    question + the parent's code, score and feedback + [inspirations] + "write an improved complete
              program" (reprompt.Contexts.refine); the first batch (empty archive) is plain samples
    evolve        the frozen base model samples; nothing is learned
    sdpo-evolve   the student LoRA samples; the SDPO update (sdpo/update.py, unchanged) has the refining prompt as
                  the student context and the refining prompt + the attempt's own feedback as the teacher's: it
                  distils "how to fix a program like this" into the weights

The parent rule, over the eligible programs (attempts that produced code):
    R(i)  its verifier score (fraction of tests passed)
    Q(i)  the best R among its descendants (attempts refined from it, or from those, ...); R(i) while it has none
    n(i)  its descendants, this batch's earlier picks included (a pick counts as a visit at once, so a batch
          spreads over parents instead of repeating one)
    T     refinements so far (attempts with a parent), this batch's earlier picks included
    s     max R − min R over the eligible programs; 1 when they are all equal
    P(i)  (M − rank(i)) / Σ_j (M − rank(j)): M eligible programs ranked by R, best first, ties sharing the better rank
    puct  Q(i) + c·s·P(i)·sqrt(1 + T) / (1 + n(i))        (TTT-Discover's reuse rule, arXiv 2601.16175)
    ucb   Q(i) + c·s·sqrt(ln(1 + T) / (1 + n(i)))
The highest priority is picked; ties are broken by the step's seeded random generator, so a run is deterministic
for its seed and a resumed run picks what an uninterrupted one would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sdpo_ttt.sdpo.reprompt import Contexts, Program

if TYPE_CHECKING:
    from sdpo_ttt.config.evolve import EvolveConfig
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.sandbox.attempt import Attempt
    from sdpo_ttt.sdpo.update import SDPOUpdater


# ------------------------------------------------------------------ the parent rule (pure)
def lineage_stats(parents: Sequence[int | None], scores: Sequence[float]) -> tuple[list[int], list[float]]:
    """n(i) (descendants) and Q(i) (best descendant score, R(i) while none) of every node. Node i's parent is
    parents[i] < i: a parent is judged before any attempt refines it."""
    visits = [0] * len(parents)
    best = [-math.inf] * len(parents)  # best score below each node
    for i in reversed(range(len(parents))):  # children before parents: a node's subtree is complete when reached
        p = parents[i]
        if p is not None:
            visits[p] += 1 + visits[i]
            best[p] = max(best[p], scores[i], best[i])
    return visits, [b if n else r for b, n, r in zip(best, visits, scores, strict=True)]


def rank_prior(scores: Sequence[float], eligible: Sequence[bool]) -> list[float]:
    """P(i) = (M − rank(i)) / Σ_j (M − rank(j)) over the M eligible nodes (rank 0 = best; ties share the better
    rank); 0 for the others."""
    pool = [s for s, e in zip(scores, eligible, strict=True) if e]
    weights = [len(pool) - sum(t > s for t in pool) if e else 0 for s, e in zip(scores, eligible, strict=True)]
    total = sum(weights)
    return [w / total if total else 0.0 for w in weights]


def priority(rule: str, q: float, prior: float, visits: int, total: int, c: float, scale: float) -> float:
    """A node's priority: puct Q + c·s·P·sqrt(1+T)/(1+n), or ucb Q + c·s·sqrt(ln(1+T)/(1+n))."""
    if rule == "puct":
        return q + c * scale * prior * math.sqrt(1 + total) / (1 + visits)
    if rule == "ucb":
        return q + c * scale * math.sqrt(math.log(1 + total) / (1 + visits))
    raise ValueError(f"unknown parent selection rule {rule!r}")


def select_parents(parents: Sequence[int | None], scores: Sequence[float], eligible: Sequence[bool], k: int,
                   rule: str, c: float, rng: random.Random) -> list[int | None]:
    """k parents for one batch, picked one after another, each pick a visit of the node and its ancestors at once.
    None each when no node is eligible (nothing to refine yet: plain samples)."""
    if not any(eligible):
        return [None] * k
    visits, q = lineage_stats(parents, scores)
    prior = rank_prior(scores, eligible)
    pool = [s for s, e in zip(scores, eligible, strict=True) if e]
    scale = (max(pool) - min(pool)) or 1.0
    total = sum(p is not None for p in parents)
    picks: list[int | None] = []
    for _ in range(k):
        pr = [priority(rule, q[i], prior[i], visits[i], total, c, scale) if eligible[i] else -math.inf for i in range(len(parents))]
        top = max(pr)
        ties = [i for i, v in enumerate(pr) if v == top]
        pick = ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]
        picks.append(pick)
        total += 1
        node: int | None = pick
        while node is not None:
            visits[node] += 1
            node = parents[node]
    return picks


def selection_seed(seed: int, step: int) -> int:
    """The seed of step `step`'s parent picks (distinct from the sampling seed's formula, loop.step_seed)."""
    return (seed * 1_000_033 + step * 104_729 + 29) % (2**31 - 1)


# ------------------------------------------------------------------ the archive
@dataclass(frozen=True)
class Entry:
    """One judged attempt in the archive."""

    index: int
    parent: int | None
    code: str | None  # None: no program was found (never a parent)
    score: float
    verdict: str
    feedback: str

    @classmethod
    def of_attempt(cls, a: "Attempt") -> "Entry":
        return cls(a.index, a.parent, a.code, a.verdict.score, a.verdict.outcome.value, a.feedback)

    @classmethod
    def of_record(cls, rec: dict[str, Any]) -> "Entry":
        """From a line of attempts.jsonl (resume)."""
        parent = rec.get("parent")
        return cls(int(rec["index"]), None if parent is None else int(parent), rec.get("code"), float(rec["score"]),
                   str(rec["verdict"]), str(rec.get("feedback") or ""))

    @property
    def program(self) -> Program:
        return Program(self.code or "", self.score, self.feedback)


@dataclass(frozen=True)
class Pick:
    """What one prompt of a batch refines: the parent's archive index and the inspirations' (None: a plain sample)."""

    parent: int | None
    inspirations: tuple[int, ...] = ()


class Archive:
    """Every judged attempt, in index order (a parent's index is its position)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> None:
        if entry.index != len(self.entries):
            raise ValueError(f"archive: attempt {entry.index} arrived as number {len(self.entries)}")
        self.entries.append(entry)

    def picks(self, k: int, cfg: "EvolveConfig", rng: random.Random) -> list[Pick]:
        es = self.entries
        parents = select_parents([e.parent for e in es], [e.score for e in es], [bool(e.code) for e in es], k,
                                 cfg.selection, cfg.exploration, rng)
        return [Pick(p, self.inspirations(p, cfg.inspirations) if p is not None else ()) for p in parents]

    def inspirations(self, parent: int, k: int) -> tuple[int, ...]:
        """The k best-scored programs (newest first among equals) whose code differs from the parent's and each other's."""
        seen = {self.entries[parent].code}
        out: list[int] = []
        for e in sorted(self.entries, key=lambda e: (-e.score, -e.index)):
            if len(out) == k:
                break
            if e.code and e.code not in seen:
                seen.add(e.code)
                out.append(e.index)
        return tuple(out)


# ------------------------------------------------------------------ the strategies
class Evolve:
    """Refine archived programs with their feedback on the frozen base model; the parent rule is select_parents."""

    name = "evolve"
    sample_adapter: str | None = None

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig") -> None:
        self.contexts = Contexts(policy.chat_ids, messages, cfg.sampling.max_prompt_tokens)
        self.options = cfg.evolve
        self.seed = cfg.seed
        self.archive = Archive()
        self.step = 0  # the loop's step of the next prompts() call
        self.picks: list[Pick] = []  # the last batch's, by position in the batch (= Attempt.chain)
        self.texts: list[str | None] = []  # the last batch's refining user turns (None: the plain question)

    @property
    def last_parents(self) -> list[int | None]:
        """The parent of each prompt of the last batch: the loop logs it with the attempt."""
        return [p.parent for p in self.picks]

    def prompts(self, n: int) -> list[list[int]]:
        self.picks = self.archive.picks(n, self.options, random.Random(selection_seed(self.seed, self.step)))
        self.step += 1
        es = self.archive.entries
        self.texts = [None if p.parent is None else
                      self.contexts.refine_text(es[p.parent].program, [es[i].program for i in p.inspirations]) for p in self.picks]
        return [self.contexts.student() if t is None else self.contexts.with_question(t).student() for t in self.texts]

    def observe(self, attempts: list["Attempt"]) -> dict[str, float]:
        for a in attempts:
            self.archive.add(Entry.of_attempt(a))
        parents = [p.parent for p in self.picks if p.parent is not None]
        return {"evolve/archive_size": float(len(self.archive.entries)),
                "evolve/best_score": max(e.score for e in self.archive.entries),
                "evolve/distinct_parents": float(len(set(parents))),
                "evolve/parent_score_mean": sum(self.archive.entries[p].score for p in parents) / len(parents) if parents else 0.0}

    def save(self, directory: Path) -> None:
        pass  # the archive is rebuilt from attempts.jsonl on resume

    def load(self, directory: Path, history: list[dict]) -> None:
        for rec in sorted(history, key=lambda r: int(r["index"])):
            self.archive.add(Entry.of_record(rec))
        self.step = max((int(r["step"]) for r in history), default=-1) + 1


class Learner(Protocol):
    """What sdpo-evolve takes from the sdpo strategy (run/strategies.SDPO)."""

    updater: "SDPOUpdater"

    def save(self, directory: Path) -> None: ...
    def load(self, directory: Path, history: list[dict]) -> None: ...


class SDPOEvolve(Evolve):
    """evolve's prompts sampled from the student LoRA, learning by SDPO: the student context is the refining prompt
    (parent + its feedback), the teacher's adds the attempt's own feedback (and a passing sibling, as in sdpo).
    `sdpo`: the sdpo strategy of the same run, whose adapters, updater and checkpoint files it uses."""

    name = "sdpo-evolve"
    sample_adapter = "student"

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig", sdpo: "Learner") -> None:
        super().__init__(policy, messages, cfg)
        self.sdpo = sdpo
        self.updater = sdpo.updater  # the loop's live display reads the updater's phases

    def teacher_contexts(self, attempts: list["Attempt"]) -> list[Contexts]:
        """Each attempt's contexts: its refining prompt as the question (the plain one for the first batch)."""
        return [self.contexts if self.texts[a.chain] is None else self.contexts.with_question(self.texts[a.chain]) for a in attempts]

    def observe(self, attempts: list["Attempt"]) -> dict[str, float]:
        metrics = self.updater.step(attempts, self.teacher_contexts(attempts))
        return {**metrics, **super().observe(attempts)}

    def save(self, directory: Path) -> None:
        self.sdpo.save(directory)

    def load(self, directory: Path, history: list[dict]) -> None:
        self.sdpo.load(directory, history)
        super().load(directory, history)
