"""GPU acceptance of the one-GPU path at true model shapes, with random weights (nothing downloaded).

    bash benchmarks/gpu_acceptance.sh                 # Qwen2.5-Coder-1.5B/-7B and Qwen3-8B shapes on the GPU
    python3 benchmarks/gpu_acceptance.py --shapes tiny-qwen2 --device cpu --batch 2 --steps 2 \\
        --loop-tokens 12 --probe-tokens 24,48           # the same code on CPU (tests/test_gpu_acceptance.py)

For each shape the model is built directly on the device in the training dtype (random_model.random_policy:
Policy.from_base, LoRA student + EMA teacher as Policy.load gives; gradient checkpointing as `solve` sets it,
i.e. on for a GPU) and then:
1. the discovery loop itself (sdpo_ttt.run.loop.run_discovery, strategy sdpo, the local process sandbox, a shipped
   problem) for --steps steps of --batch attempts. Random weights never write a program and rarely stop, so
   (a) EOS does not end an attempt (every attempt is exactly --loop-tokens long, what time and memory are
   about) and (b) each attempt's text is the problem's shipped *wrong* program followed by the sampled text:
   the sandbox runs a real program and the teacher gets real feedback. The token ids the update learns from
   are the sampled ones;
2. update probes: one SDPO update (strategy.observe, the loop's update call) on --batch attempts of exactly
   T tokens for each T in --probe-tokens, with the feedback of step 1.
Printed per step: sample / judge / teacher / student fwd+bwd seconds, tokens/s and peak GPU memory per phase;
then, for every probe and sampling phase, benchmarks/memory_model.py's prediction (the table in docs/gpu.md) beside
the measured peak. Exit status 1 if a step fails, a loss is not finite or the student LoRA did not change.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_model import GB, Shape, sampling_memory, training_memory  # noqa: E402

from sdpo_ttt.run.reporter import Reporter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GPU_SHAPES = "qwen2.5-coder-1.5b,qwen2.5-coder-7b,qwen3-8b"
CARRIED_TOKENIZER = REPO / ".whl" / "gpu-carry" / "tokenizer"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=GPU_SHAPES, help=f"comma-separated shipped shapes or config.json paths (default: {GPU_SHAPES})")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N (default: auto)")
    ap.add_argument("--tokenizer", default=None,
                    help=f"folder with a Qwen tokenizer (default: $SDPO_TTT_TOKENIZER, else {CARRIED_TOKENIZER.relative_to(REPO)} "
                    "when carried, else the prepared built-in qwen2.5-coder-0.5b)")
    ap.add_argument("--problem", type=Path, default=REPO / "problems" / "count-inversions" / "problem.json",
                    help="shipped problem whose wrong/ program is judged (default: problems/count-inversions/problem.json)")
    ap.add_argument("--batch", type=int, default=16, help="attempts per step, B (default: 16, solve's GPU default)")
    ap.add_argument("--steps", type=int, default=2, help="loop steps per shape; the last one has no update, as in solve (default: 2)")
    ap.add_argument("--loop-tokens", type=int, default=256, help="tokens of every attempt in the loop (default: 256)")
    ap.add_argument("--probe-tokens", default="2048,8192", help="attempt lengths T of the update probes (default: 2048,8192)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="local sandbox workers (default: min(8, CPUs))")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and of sampling (default: 0)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file (default: none)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.steps < 2 or args.loop_tokens < 8:
        ap.error("--batch >= 1, --steps >= 2 (the last step of a run has no update) and --loop-tokens >= 8 are needed")
    return args


def default_tokenizer() -> Path:
    if os.environ.get("SDPO_TTT_TOKENIZER"):
        return Path(os.environ["SDPO_TTT_TOKENIZER"])
    if (CARRIED_TOKENIZER / "tokenizer_config.json").is_file():
        return CARRIED_TOKENIZER
    from sdpo_ttt.policy.catalog import model_dir

    return model_dir("qwen2.5-coder-0.5b")


class ProgramWriter:
    """The policy, except that each sampled attempt's text starts with a fixed program (random weights write none).

    Completion ids, what the update trains on, are exactly as sampled; everything else is the policy's own.
    """

    def __init__(self, policy: Any, program: str) -> None:
        self._policy = policy
        self._prefix = f"```python\n{program.rstrip()}\n```\n"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def sample(self, prompts: list[list[int]], **kw: Any) -> list[Any]:
        return [dataclasses.replace(c, text=self._prefix + c.text) for c in self._policy.sample(prompts, **kw)]


class Meter:
    """Wall time and peak GPU memory of the phase that is running (a no-op for memory on CPU)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.cuda = device.type == "cuda"
        self.torch = torch
        self.device = device

    def start(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
        return time.perf_counter()

    def peak_gb(self) -> float | None:
        if not self.cuda:
            return None
        self.torch.cuda.synchronize(self.device)
        return self.torch.cuda.max_memory_allocated(self.device) / GB


class Recorder(Reporter):
    """A loop Reporter that keeps each step's metrics, attempts and per-phase (time, peak memory).

    A phase reported several times in a step (teacher / update once per micro-batch) adds up its time and keeps
    its highest peak.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.steps: dict[int, dict[str, Any]] = {}
        self.seen: list[Any] = []  # every judged attempt, in order
        self._open: tuple[int, str, float] | None = None

    def _close(self) -> None:
        if self._open is not None:
            step, name, t0 = self._open
            d = self.steps.setdefault(step, {}).setdefault(name, {"s": 0.0, "peak_gb": None})
            d["s"] += time.perf_counter() - t0
            peak = self.meter.peak_gb()
            d["peak_gb"] = peak if d["peak_gb"] is None else max(d["peak_gb"], peak or 0.0)
            self._open = None

    def phase(self, name: str, step: int, n: int, token_cap: int, *more: Any) -> None:
        self._close()
        self._open = (step, name, self.meter.start())

    def finish(self) -> None:
        self._close()

    def start(self, budget: int, used: int) -> None: ...
    def message(self, text: str) -> None: print(f"    loop: {text}", flush=True)
    def tokens(self, n: int) -> None: ...

    def attempts(self, attempts: list[Any], used: int, best_score: float) -> None:
        self._close()  # judging ends when the attempts are reported
        self.seen.extend(attempts)
        step = attempts[0].step
        self.steps.setdefault(step, {})["generated"] = sum(len(a.completion.completion_ids) for a in attempts)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        self._close()
        self.steps.setdefault(step, {})["metrics"] = dict(metrics)


def solve_config(args: argparse.Namespace, device: str, max_new_tokens: int, budget: int) -> Any:
    from sdpo_ttt.config.tree import SolveConfig

    return SolveConfig(strategy="sdpo", budget=budget, batch_size=args.batch, max_new_tokens=max_new_tokens, sandbox="local",
                       sandbox_workers=args.workers, device=device, seed=args.seed, stop_on_success=False)


def student_snapshot(policy: Any) -> list[Any]:
    return [p.detach().float().cpu().clone() for p in policy.trainable_parameters()]


def _fmt(x: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def run_shape(name: str, args: argparse.Namespace, tokenizer: Path, problem: Any, program: str, sandbox: Any,
              failures: list[str]) -> dict[str, Any]:
    import torch

    from sdpo_ttt.run.loop import run_discovery
    from sdpo_ttt.policy.model import Completion
    from sdpo_ttt.policy.random_model import random_policy, shape_config
    from sdpo_ttt.run.rundir import RunDir
    from sdpo_ttt.run.strategies import make_strategy

    out: dict[str, Any] = {"shape": name, "steps": [], "probes": [], "predictions": {}}
    cfg = solve_config(args, args.device, args.loop_tokens, args.steps * args.batch)
    t0 = time.perf_counter()
    policy = random_policy(cfg.policy, name, tokenizer, seed=args.seed)
    meter = Meter(policy.device)
    shape = Shape.from_config({**shape_config(name), "vocab_size": policy.model.get_base_model().config.vocab_size})
    checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in policy.model.get_base_model().modules())
    out.update(build_s=time.perf_counter() - t0, params=policy.info.n_params, device=str(policy.device), dtype=str(policy.dtype),
               gradient_checkpointing=checkpointing)
    print(f"\n== {name}: {policy.info.n_params / 1e9:.2f} B params incl. LoRA, built on {policy.device} in {policy.dtype} "
          f"in {out['build_s']:.1f} s; gradient checkpointing {'on' if checkpointing else 'off'}", flush=True)
    policy.eos_ids = []  # random weights: EOS never ends an attempt, each one is exactly max_new_tokens long
    before = student_snapshot(policy)
    messages = policy.problem_messages(problem)
    prompt_len = len(policy.chat_ids(messages))

    # 1. the loop
    rec = Recorder(meter)
    with tempfile.TemporaryDirectory(prefix="sdpo-ttt-accept-") as tmp:
        run = RunDir.create(Path(tmp) / "run", cfg.model_dump(mode="json"), problem.to_json())
        try:
            run_discovery(problem, cfg, run, ProgramWriter(policy, program), sandbox, reporter=rec)
        except Exception as e:  # noqa: BLE001 - reported, counted as a failure, the next shape still runs
            failures.append(f"{name}: loop step failed: {type(e).__name__}: {e}")
            traceback.print_exc()
        rec.finish()
    for step in sorted(rec.steps):
        st = rec.steps[step]
        m = st.get("metrics", {})
        sample, judge = st.get("sampling", {}), st.get("judging", {})
        update_peaks = [st[k]["peak_gb"] for k in ("teacher", "update") if k in st and st[k]["peak_gb"] is not None]
        update = {"peak_gb": max(update_peaks) if update_peaks else None}
        gen = st.get("generated", 0)
        row = {"step": step, "sample_s": sample.get("s"), "judge_s": judge.get("s"), "teacher_s": m.get("time/teacher_s"),
               "student_fwd_bwd_s": m.get("time/student_fwd_bwd_s"), "loss": m.get("loss"), "generated_tokens": gen,
               "sample_tok_s": gen / sample["s"] if sample.get("s") else None, "peak_sample_gb": sample.get("peak_gb"),
               "peak_update_gb": update.get("peak_gb")}
        out["steps"].append(row)
        loss = "-" if row["loss"] is None else f"{row['loss']:.4g}"
        print(f"  step {step}: sample {_fmt(row['sample_s'], ' s')} ({gen} tok, {_fmt(row['sample_tok_s'], ' tok/s', 0)}) | "
              f"judge {_fmt(row['judge_s'], ' s', 2)} | teacher {_fmt(row['teacher_s'], ' s', 2)} | "
              f"student fwd+bwd {_fmt(row['student_fwd_bwd_s'], ' s', 2)} | loss {loss} | "
              f"peak GPU sample {_fmt(row['peak_sample_gb'], ' GB', 2)}, update {_fmt(row['peak_update_gb'], ' GB', 2)}", flush=True)
        if row["loss"] is not None and not math.isfinite(row["loss"]):
            failures.append(f"{name}: step {step} loss is {row['loss']}")
    if len(rec.steps) != args.steps or not any("metrics" in s for s in rec.steps.values()):
        failures.append(f"{name}: the loop ran {len(rec.steps)} of {args.steps} steps, {sum('metrics' in s for s in rec.steps.values())} with an update")
    pred = sampling_memory(shape, batch=args.batch, tokens=prompt_len + args.loop_tokens)
    out["predictions"][f"sample B={args.batch} T={args.loop_tokens}"] = {
        "predicted_gb": pred["total"] / GB, "measured_gb": max((s["peak_sample_gb"] or 0 for s in out["steps"]), default=None) or None}

    # 2. update probes at full attempt lengths, with the loop's real feedback
    judged = [a for a in rec.seen if a.feedback] or rec.seen
    gen = torch.Generator().manual_seed(args.seed)
    vocab = min(len(policy.tokenizer), shape.vocab)
    for T in [int(x) for x in args.probe_tokens.split(",") if x.strip()]:
        if not judged:
            break
        pcfg = solve_config(args, args.device, T, 10**6)
        strategy = make_strategy(pcfg, ProgramWriter(policy, program), messages)
        prompt = strategy.prompts(1)[0]
        attempts = []
        for i in range(args.batch):
            ids = torch.randint(0, vocab, (T,), generator=gen).tolist()
            src = judged[i % len(judged)]
            attempts.append(dataclasses.replace(src, step=0, index=i, chain=i,
                                                completion=Completion(prompt_ids=list(prompt), completion_ids=ids, text=src.completion.text,
                                                                      finish_reason="length")))
        t_start = meter.start()
        try:
            m = strategy.observe(attempts)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at this length: reported, counted
            failures.append(f"{name}: update probe T={T} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            traceback.print_exc()
            del strategy, attempts
            gc.collect()
            if meter.cuda:
                torch.cuda.empty_cache()
            continue
        wall = time.perf_counter() - t_start
        peak = meter.peak_gb()
        tr = training_memory(shape, tokens=len(prompt) + T, lora_rank=cfg.policy.lora_rank, teacher_rank=cfg.policy.teacher_rank,
                             targets=tuple(cfg.policy.lora_targets), chunk_tokens=cfg.sdpo.chunk_tokens)
        row = {"tokens": T, "prompt_tokens": len(prompt), "teacher_s": m.get("time/teacher_s"), "student_fwd_bwd_s": m.get("time/student_fwd_bwd_s"),
               "update_s": wall, "update_tok_s": args.batch * T / wall, "loss": m.get("loss"), "peak_gb": peak,
               "predicted_gb": tr["total"] / GB}
        out["probes"].append(row)
        out["predictions"][f"update B={args.batch} T={T}"] = {"predicted_gb": row["predicted_gb"], "measured_gb": peak}
        print(f"  update probe B={args.batch} x T={T} (+{len(prompt)} prompt): teacher {_fmt(row['teacher_s'], ' s', 2)} | "
              f"student fwd+bwd {_fmt(row['student_fwd_bwd_s'], ' s', 2)} | {row['update_tok_s']:.0f} tok/s | loss {row['loss']:.4g} | "
              f"peak GPU {_fmt(peak, ' GB', 2)} (predicted {row['predicted_gb']:.2f} GB)", flush=True)
        if not math.isfinite(row["loss"]):
            failures.append(f"{name}: update probe T={T} loss is {row['loss']}")
        del strategy, attempts
    after = student_snapshot(policy)
    changed = sum(float((a - b).abs().max()) > 0 for a, b in zip(after, before, strict=True))
    out["lora_tensors_changed"] = f"{changed}/{len(before)}"
    print(f"  student LoRA tensors changed by the updates: {changed}/{len(before)}", flush=True)
    if changed == 0:
        failures.append(f"{name}: the student LoRA did not change")
    del policy, before, after
    gc.collect()
    if meter.cuda:
        torch.cuda.empty_cache()
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n== predicted (benchmarks/memory_model.py, the README table) vs measured peak GPU memory")
    print(f"{'shape':<22} {'phase':<26} {'predicted GB':>12} {'measured GB':>12}")
    for r in results:
        for phase, v in r["predictions"].items():
            print(f"{r['shape']:<22} {phase:<26} {v['predicted_gb']:>12.2f} {_fmt(v['measured_gb'], '', 2):>12}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from sdpo_ttt.policy.device import resolve_device
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox

    device = resolve_device(args.device)
    args.device = str(device)
    tokenizer = Path(args.tokenizer) if args.tokenizer else default_tokenizer()
    problem = load_problem(args.problem)
    wrong = sorted((args.problem.parent / "wrong").glob("*.py"))
    if not wrong:
        print(f"{args.problem.parent}/wrong/ holds no program to judge", file=sys.stderr)
        return 2
    program = wrong[0].read_text(encoding="utf-8")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"gpu_acceptance {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: torch {torch.__version__}, device {device} ({gpu}), "
          f"B={args.batch}, {args.steps} loop steps of {args.loop_tokens} tokens, update probes at T={args.probe_tokens}, "
          f"problem {problem.id} judged program {wrong[0].name}, tokenizer {tokenizer}", flush=True)
    failures: list[str] = []
    results = []
    t0 = time.perf_counter()
    with open_sandbox("local", workers=args.workers) as sandbox:
        for name in [s.strip() for s in args.shapes.split(",") if s.strip()]:
            try:
                results.append(run_shape(name, args, tokenizer, problem, program, sandbox, failures))
            except Exception as e:  # noqa: BLE001 - a shape that cannot even be built fails the run, the others still run
                failures.append(f"{name}: {type(e).__name__}: {e}")
                traceback.print_exc()
    print_table(results)
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "failures": failures, "total_s": total}, indent=2) + "\n")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("gpu_acceptance OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
