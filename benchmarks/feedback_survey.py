"""What the feedback says about the shipped wrong programs, per style and visibility (no model needed).

    python benchmarks/feedback_survey.py                # every problems/*/wrong/*.py, seeds 0-3, local sandbox
    python benchmarks/feedback_survey.py --seeds 8 --fraction 0.5

Each wrong program is judged once; its feedback is rendered in both styles under `public` and under
`all-but-held-back` (one held-back draw per seed). Prints, per (style, visibility): the mean length of the text,
and the share of texts that quote no test at all ("A hidden/held-back test failed: <kind>" only) — how often
the teacher is told nothing but a verdict kind. docs/feedback.md quotes the result.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = [(s, v) for s in ("reference", "detailed") for v in ("public", "all-but-held-back")]


def kind_only(text: str) -> bool:
    """The text names a failure's kind and quotes no test (either style)."""
    return (text.startswith(("A hidden test failed", "A held-back test failed"))
            or "the failing tests are hidden" in text or "the failing tests are held back" in text)


def main(argv: list[str] | None = None) -> int:
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sandbox.feedback import render_feedback
    from sdpo_ttt.sandbox.held_back import held_back_tests

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4, help="held-back draws per program (default: %(default)s)")
    ap.add_argument("--fraction", type=float, default=0.25, help="--held-back-fraction (default: %(default)s)")
    ap.add_argument("--sandbox", default="local", choices=["auto", "docker", "local"], help="(default: %(default)s)")
    args = ap.parse_args(argv)

    texts: dict[tuple[str, str], list[str]] = {c: [] for c in CELLS}
    n = 0
    with open_sandbox(args.sandbox, workers=2) as sb:
        for wrong in sorted(ROOT.glob("problems/*/wrong/*.py")):
            problem = load_problem(wrong.parent.parent)
            verdict = sb.judge(problem, wrong.read_text(encoding="utf-8"))
            if verdict.passed:
                continue
            n += 1
            for style, vis in CELLS:
                for seed in range(args.seeds):
                    held = held_back_tests(problem, seed, args.fraction) if vis != "public" else frozenset()
                    texts[(style, vis)].append(render_feedback(problem, verdict, vis, style=style, held_back=held))
    print(f"{n} failing wrong programs x {args.seeds} seeds, held-back fraction {args.fraction}")
    print(f"{'style':<10} {'visibility':<18} {'mean chars':>10} {'kind only':>10}")
    for (style, vis), ts in texts.items():
        share = sum(map(kind_only, ts)) / max(len(ts), 1)
        print(f"{style:<10} {vis:<18} {statistics.mean(map(len, ts)) if ts else 0:>10.0f} {share:>10.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
