"""Does SDPO learn? Teacher-student divergence on HELD-BACK attempts before and after SDPO steps.

1. Sample a training batch and a held-back batch of attempts from the base model; judge both (feedback).
2. Measure, on the held-back attempts, the mean per-token KL(student on the plain prompt ‖ base model on
   the feedback re-prompt): how far the policy is from what the feedback-informed model would say.
3. Take SDPO steps (the real updater: default loss, EMA teacher) on the TRAINING batch only.
4. Measure the same divergence on the held-back attempts again. A drop means the student absorbed the
   feedback-informed behaviour beyond the attempts it was trained on. A control run with lr=0 gives the
   no-update baseline (identical by construction, printed as a check).
Optionally (--pass-rate-samples N) sample N fresh attempts before and after and compare pass rates.

    python benchmarks/learning_check.py [--model qwen2.5-coder-0.5b] [--problem problems/two-sum] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problem", default=str(REPO / "problems" / "two-sum"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--pass-rate-samples", type=int, default=0)
    ap.add_argument("--sandbox", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.loop import seed_everything
    from sdpo_ttt.sandbox.feedback import FeedbackRules
    from sdpo_ttt.sandbox.judging import judge_batch
    from sdpo_ttt.policy.extract import extract_code
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sdpo.chunked import sdpo_loss
    from sdpo_ttt.config.sdpo import LossConfig
    from sdpo_ttt.run.strategies import SDPO, Attempt

    seed_everything(args.seed)
    cfg = SolveConfig(model=args.model, lr=args.lr, max_new_tokens=args.max_new_tokens, sandbox=args.sandbox, seed=args.seed)
    problem = load_problem(args.problem)
    t0 = time.perf_counter()
    policy = Policy.load(cfg.policy, seed=args.seed)
    messages = policy.problem_messages(problem)
    strategy = SDPO(policy, messages, cfg)
    gap_cfg = LossConfig(mode="full", alpha=1.0)

    with open_sandbox(args.sandbox, workers=2) as sandbox:

        def draw(seed: int, n: int) -> list[Attempt]:
            comps = policy.sample(strategy.prompts(n), temperature=1.0, max_new_tokens=args.max_new_tokens, seed=seed, adapter="student")
            codes = [extract_code(c.text) for c in comps]
            verdicts, fbs = judge_batch(problem, sandbox, codes, FeedbackRules(visibility="public"))
            return [Attempt(0, i, i, c, code, v, fb) for i, (c, code, v, fb) in enumerate(zip(comps, codes, verdicts, fbs, strict=True))]

        def gap(attempts: list[Attempt], demo: str | None) -> float:
            """Mean per-token KL(student ‖ base model on the re-prompt) over failed attempts.

            The re-prompt is built as in training: the attempt's own feedback, plus a passing attempt of the
            TRAINING batch as demonstration when there is one (the teacher SDPO distilled from).
            """
            vals = []
            with torch.no_grad():
                for a in attempts:
                    if a.verdict.passed or not a.completion.completion_ids:
                        continue
                    tp = strategy.contexts.teacher(a.feedback, demo)
                    t_h, _ = policy.hidden_states([tp], [a.completion.completion_ids], adapter=None)
                    s_h, mask = policy.hidden_states([a.completion.prompt_ids], [a.completion.completion_ids], adapter="student")
                    ids = torch.tensor([a.completion.completion_ids], device=mask.device)
                    vals.append(float(sdpo_loss(s_h, t_h, policy.lm_head_weight, ids, mask, gap_cfg).loss))
            return statistics.mean(vals) if vals else float("nan")

        def pass_rate(seed: int) -> float:
            if not args.pass_rate_samples:
                return float("nan")
            att = draw(seed, args.pass_rate_samples)
            return sum(a.verdict.passed for a in att) / len(att)

        train = draw(10_000 + args.seed, args.batch)
        held = draw(20_000 + args.seed, args.batch)
        print(f"problem={problem.id} model={args.model} train pass={sum(a.verdict.passed for a in train)}/{len(train)} "
              f"held-back pass={sum(a.verdict.passed for a in held)}/{len(held)} (load+sample {time.perf_counter() - t0:.0f} s)")
        demo = next((a.code for a in train if a.verdict.passed and a.code), None)
        print(f"demonstration from the training batch: {'yes' if demo else 'none (no passing attempt)'}")
        pr_before = pass_rate(30_000)
        g_train0, g_held0 = gap(train, demo), gap(held, demo)
        print(f"before: KL(student‖feedback-teacher) train={g_train0:.4f} held-back={g_held0:.4f} pass-rate={pr_before:.3f}")
        for s in range(args.steps):
            m = strategy.observe(train)
            print(f"  step {s}: loss={m['loss']:.4f} grad_norm={m['grad_norm']:.3f} "
                  f"(teacher {m['time/teacher_s']:.1f} s, student fwd+bwd {m['time/student_fwd_bwd_s']:.1f} s)")
        g_train1, g_held1 = gap(train, demo), gap(held, demo)
        pr_after = pass_rate(30_000)
        print(f"after {args.steps} SDPO steps: train={g_train1:.4f} held-back={g_held1:.4f} pass-rate={pr_after:.3f}")
        print(f"held-back divergence change: {g_held1 - g_held0:+.4f} ({100 * (g_held1 - g_held0) / g_held0:+.1f}%); "
              f"train: {100 * (g_train1 - g_train0) / g_train0:+.1f}%")


if __name__ == "__main__":
    main()
