"""The held-back tests of a run: tests that are judged like every other but never quoted in any feedback.

With `--feedback-visibility all-but-held-back` the feedback may quote any failing test, hidden ones included, as
the reference's test-time setting does. Quoting every test would let a program that only reproduces the quoted
inputs and outputs (a lookup table) pass; the held-back set closes that: its tests still decide `passed`, so a
discovery must pass them, but the feedback names only their verdict kind.

The set is drawn from the hidden tests (the public ones are usually in the statement already), or from all tests
when none is hidden: ceil(fraction x pool) of them, at least one. It is a fixed function of (run seed, problem id,
fraction): each test of the pool is ranked by a SHA-256 of (seed, id, index), so a resumed run, and every strategy
of a `compare` cell with the same seed, hold back the same tests. The run directory records it (held_back.json).
"""

from __future__ import annotations

import hashlib
import math

from sdpo_ttt.problem.schema import Problem

HELD_BACK_VISIBILITY = "all-but-held-back"  # the one visibility that holds tests back


def held_back_tests(problem: Problem, seed: int, fraction: float) -> frozenset[int]:
    """Indices (0-based, into problem.tests) of the tests this run never quotes."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    pool = [i for i, t in enumerate(problem.tests) if not t.public] or list(range(len(problem.tests)))
    k = max(1, math.ceil(fraction * len(pool) - 1e-9))
    ranked = sorted(pool, key=lambda i: hashlib.sha256(f"{seed}/{problem.id}/{i}".encode()).hexdigest())
    return frozenset(ranked[:k])
