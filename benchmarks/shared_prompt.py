"""Seconds of one SDPO update with the shared prompt (sdpo/shared.py) against the unshared rows, same batch.

Loads the model once, builds a batch like the loop's (the problem's question prompt, B completions of about
--tokens tokens drawn from the model's own vocabulary, each with its own feedback), and runs the update
alternately unshared / shared from the same adapter state, --repeats times each. Prints per variant the mean
teacher and student seconds, and the largest relative difference of the loss and of the LoRA gradients between
the two (float32 rounding only). No sampling, no sandbox: the update alone, minutes on the 2-core CPU.

    python benchmarks/shared_prompt.py [--model qwen2.5-coder-0.5b] [--batch-size 4] [--tokens 200] [--micro-batch-size 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problem", default=str(REPO / "problems" / "count-inversions" / "problem.json"))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=200, help="mean completion tokens (default: 200)")
    ap.add_argument("--micro-batch-size", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy import threads
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sdpo import update as update_module
    from sdpo_ttt.sdpo.microbatch import UpdateBatch
    from sdpo_ttt.sdpo.reprompt import Contexts
    from sdpo_ttt.sdpo.shared import SharedPrompts
    from sdpo_ttt.sdpo.update import SDPOUpdater

    cfg = SolveConfig(model=args.model, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size, seed=0, threads=args.threads)
    policy = Policy.load(cfg.policy, seed=0)
    threads.adapt()
    contexts = Contexts(policy.chat_ids, policy.problem_messages(load_problem(args.problem)), cfg.sampling.max_prompt_tokens)
    g = torch.Generator().manual_seed(0)
    vocab = min(policy.lm_head_weight.shape[0], len(policy.tokenizer))
    B = args.batch_size
    lengths = [max(1, int(args.tokens * (0.5 + i / max(B - 1, 1)))) for i in range(B)]  # 0.5x .. 1.5x
    feedback = [f"Test {i + 1} (public): wrong answer.\nInput:\n5\n{' '.join(map(str, range(i, i + 9)))}\nExpected output:\n{i * 3}\n"
                f"Your output:\n{i * 3 + 1}" for i in range(B)]
    batch = UpdateBatch(
        student_prompts=[contexts.student() for _ in range(B)],
        teacher_prompts=[contexts.teacher(f) for f in feedback],
        completions=[torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths],
        rewards=[0.0] * B, has_feedback=[True] * B, has_demo=[False] * B,
    )
    with tempfile.TemporaryDirectory() as tmp:
        policy.save_adapter("student", Path(tmp) / "s")
        policy.save_adapter("teacher", Path(tmp) / "t")
        before = threads.cpu_sample()
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        grads: dict[bool, list[torch.Tensor]] = {}
        for _ in range(args.repeats):
            for shared in (False, True):
                policy.load_adapter("student", Path(tmp) / "s")
                policy.load_adapter("teacher", Path(tmp) / "t")
                update_module.SharedPrompts = functools.partial(SharedPrompts, enabled=shared)  # type: ignore[misc]
                updater = SDPOUpdater(policy, cfg.sdpo, cfg.optim, contexts)
                t0 = time.perf_counter()
                metrics = updater.update(batch)
                metrics["wall_s"] = time.perf_counter() - t0
                runs[shared].append(metrics)
                grads[shared] = [p.grad.detach().clone() for p in updater.params]
        after = threads.cpu_sample()
    student, teacher = len(contexts.student()), [len(p) for p in batch.teacher_prompts]
    print(f"model={args.model} B={B} micro_batch_size={args.micro_batch_size} completion tokens={lengths} student prompt={student} "
          f"teacher prompts={teacher} torch threads={threads.current()} ({time.strftime('%Y-%m-%d %H:%M')})")
    for shared in (False, True):
        mean = functools.partial(lambda ms, key: statistics.mean(m[key] for m in ms), runs[shared])
        print(f"  {'shared' if shared else 'unshared':<9} teacher {mean('time/teacher_s'):6.2f} s   student fwd+bwd "
              f"{mean('time/student_fwd_bwd_s'):6.2f} s   update {mean('wall_s'):6.2f} s")
    loss = [runs[s][-1]["loss"] for s in (False, True)]
    gap = max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) for a, b in zip(grads[True], grads[False], strict=True))
    print(f"  loss unshared {loss[0]:.6g} shared {loss[1]:.6g} (rel. diff {abs(loss[1] - loss[0]) / max(abs(loss[0]), 1e-30):.1e}); "
          f"largest LoRA gradient difference / that tensor's largest entry: {gap:.1e}")
    if before and after:
        print(f"load: other processes kept {threads.others_busy(before, after):.2f} of {threads.available_cpus()} cores busy during the run")


if __name__ == "__main__":
    main()
