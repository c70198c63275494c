#!/usr/bin/env bash
# GPU smoke test of what users run on one GPU (hf backend, and the vLLM backend when installed). On a CUDA machine:
#     bash benchmarks/gpu_smoke.sh [MODEL]        # default: the built-in qwen2.5-coder-0.5b
# It cannot run in CPU-only CI; every step prints what it checked. Exit code != 0 on the first failure.
# (benchmarks/gpu_acceptance.sh measures time and memory at 1.5B-8B shapes; this checks behaviour.)
#
# vLLM 0.33 starts its engine in a *spawned* process once CUDA is initialised, and a spawned child re-runs the
# parent's main module: a `python - <<EOF` parent has none to re-run. So every vLLM check goes through the
# `sdpo-ttt` CLI, as users run it; the hf checks use stdin Python (no engine process there).
set -euo pipefail
MODEL="${1:-qwen2.5-coder-0.5b}"
cd "$(dirname "$0")/.."
WORK="$(mktemp -d /tmp/sdpo-ttt-gpu-smoke.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
PROBLEM=problems/two-sum/problem.json

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; assert torch.cuda.is_available(), 'torch has no CUDA'; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== built-in models"
sdpo-ttt models prepare || true

echo "== hf backend on cuda as solve runs it (bf16, gradient checkpointing on): sampling, scoring = sampling log-probs,"
echo "   student backward, EMA; the same scoring in float32 with a tight threshold"
MODEL="$MODEL" WORK="$WORK" python - <<'PY'
import os, time, torch
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.model import Policy

def check(dtype: str, limit: float, save: bool) -> None:
    pol = Policy.load(PolicyConfig(model=os.environ["MODEL"], device="cuda", dtype=dtype), seed=0)  # checkpointing: GPU default
    base = pol.model.get_base_model()
    assert any(getattr(m, "gradient_checkpointing", False) is True for m in base.modules()), "gradient checkpointing is off"
    p = pol.chat_ids([{"role": "user", "content": "Write a Python program that prints the first 10 primes."}])
    t = time.perf_counter()
    c = pol.sample([p] * 16, max_new_tokens=128, seed=0, return_logprobs=True)
    n = sum(len(x.completion_ids) for x in c)
    print(f"[{dtype}] sampled 16 x <=128 tokens: {n / (time.perf_counter() - t):.0f} tok/s")
    lp = pol.token_logprobs([x.prompt_ids for x in c], [x.completion_ids for x in c], adapter="student")
    err = max((l.cpu() - torch.tensor(x.logprobs)).abs().mean().item() for x, l in zip(c, lp))
    # bf16 rounding alone moves log-probs by ~0.01-0.05 nats (the noise floor); a real mismatch (position,
    # mask, adapter or cache bug) moves them by nats. float32 must agree to ~1e-4.
    print(f"[{dtype}] max over attempts of mean |scored - sampled| log-prob: {err:.5f} (limit {limit})")
    assert err < limit, err
    with torch.enable_grad():
        h, m = pol.hidden_states([x.prompt_ids for x in c[:4]], [x.completion_ids for x in c[:4]], adapter="student")
        (h[m].float() @ pol.lm_head_weight.float().T).logsumexp(-1).mean().backward()
    grads = [q.grad for q in pol.trainable_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "student backward under checkpointing"
    if save:
        pol.save_adapter("student", os.path.join(os.environ["WORK"], "zero"))  # B = 0: the base model
        with torch.no_grad():
            for q in pol.trainable_parameters():
                q.add_(0.05 * torch.randn_like(q))
        pol.save_adapter("student", os.path.join(os.environ["WORK"], "moved"))
    print(f"[{dtype}] EMA discarded fraction:", pol.ema_update_teacher(0.01))
    print(f"[{dtype}] peak GPU memory {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")
    del pol
    torch.cuda.empty_cache()

check("bfloat16", 0.25, save=True)
check("float32", 2e-3, save=False)
PY

echo "== solve --json on the hf backend: stdout is exactly one JSON object"
sdpo-ttt solve "$PROBLEM" --model "$MODEL" --device cuda --budget 16 --max-new-tokens 256 --run-dir "$WORK/run-hf" --json \
  > "$WORK/hf.json"
python -c "import json, sys; s = json.load(open(sys.argv[1])); print('hf solve:', s['status'], s['attempts_used'], 'attempts')" "$WORK/hf.json"

if python -c "import vllm" 2>/dev/null; then
  echo "== vLLM backend through the CLI: a moved adapter is hot-swapped in (greedy answers change)"
  run_vllm() {  # greedy completions' token counts and texts, one JSON per attempt
    sdpo-ttt sample "$PROBLEM" --model "$MODEL" --device cuda --backend vllm -n 8 --temperature 0 --max-new-tokens 64 --json "$@"
  }
  run_vllm --adapter "$WORK/zero" > "$WORK/zero.jsonl"
  run_vllm --adapter "$WORK/moved" > "$WORK/moved.jsonl"
  python - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
zero = [json.loads(line) for line in open(f"{w}/zero.jsonl")]
moved = [json.loads(line) for line in open(f"{w}/moved.jsonl")]
assert len(zero) == len(moved) == 8, (len(zero), len(moved))  # and every stdout line was JSON: no vLLM logs there
assert [z["text"] for z in zero] != [m["text"] for m in moved], "the moved adapter was not hot-swapped"
print("vLLM hot-swap OK:", zero[0]["n_tokens"], "tokens greedy; moved adapter changes the answer")
PY
  echo "== solve --backend vllm --json: trains, hot-swaps, stdout is exactly one JSON object (vLLM logs on stderr)"
  sdpo-ttt solve "$PROBLEM" --model "$MODEL" --device cuda --backend vllm --lora-rank 12 --budget 32 --max-new-tokens 256 \
    --run-dir "$WORK/run-vllm" --json > "$WORK/vllm.json"
  python -c "import json, sys; s = json.load(open(sys.argv[1])); print('vllm solve:', s['status'], s['attempts_used'], 'attempts')" "$WORK/vllm.json"
  if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    echo "== --device cuda:1: the vLLM engine runs on GPU 1 too (GPU 0 stays empty)"
    sdpo-ttt sample "$PROBLEM" --model "$MODEL" --device cuda:1 --backend vllm -n 4 --max-new-tokens 32 --json > /dev/null &
    pid=$!
    used0=0
    while kill -0 "$pid" 2>/dev/null; do
      u=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0); [ "$u" -gt "$used0" ] && used0=$u; sleep 1
    done
    wait "$pid"
    echo "most memory used on GPU 0 meanwhile: ${used0} MiB"; [ "$used0" -lt 1024 ]
  fi
else
  echo "== vLLM not installed: skipped (bash scripts/setup.sh --gpu installs it)"
fi
echo "GPU smoke OK"
