#!/usr/bin/env bash
# GPU smoke test of the policy (hf backend, and the vLLM backend when installed). Run on a CUDA machine:
#     bash benchmarks/gpu_smoke.sh [MODEL]        # default: the built-in qwen2.5-coder-0.5b
# It cannot run in CPU-only CI; every step prints what it checked. Exit code != 0 on the first failure.
set -euo pipefail
MODEL="${1:-qwen2.5-coder-0.5b}"
cd "$(dirname "$0")/.."

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; assert torch.cuda.is_available(), 'torch has no CUDA'; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== built-in models"
sdpo-ttt models prepare || true

echo "== hf backend on cuda (bf16): sampling, scoring = sampling log-probs, student backward, EMA"
MODEL="$MODEL" python - <<'PY'
import os, time, torch
from sdpo_ttt.policy.config import PolicyConfig
from sdpo_ttt.policy.model import Policy
pol = Policy.load(PolicyConfig(model=os.environ["MODEL"], device="cuda"), seed=0)
assert pol.dtype == torch.bfloat16, pol.dtype
p = pol.chat_ids([{"role": "user", "content": "Write a Python program that prints the first 10 primes."}])
t = time.perf_counter()
c = pol.sample([p] * 16, max_new_tokens=128, seed=0, return_logprobs=True)
n = sum(len(x.completion_ids) for x in c)
print(f"sampled 16 x <=128 tokens: {n / (time.perf_counter() - t):.0f} tok/s")
lp = pol.token_logprobs([x.prompt_ids for x in c], [x.completion_ids for x in c], adapter="student")
err = max((l.cpu() - torch.tensor(x.logprobs)).abs().mean().item() for x, l in zip(c, lp))
print(f"mean |scored - sampled| log-prob (bf16): {err:.4f}")
assert err < 0.05, err
h, m = pol.hidden_states([x.prompt_ids for x in c[:4]], [x.completion_ids for x in c[:4]], adapter="student")
(h[m].float() @ pol.lm_head_weight.float().T).logsumexp(-1).mean().backward()
assert all(q.grad is not None for q in pol.trainable_parameters())
with torch.no_grad():
    for q in pol.trainable_parameters():
        q.add_(1e-3 * torch.randn_like(q))
print("EMA discarded fraction:", pol.ema_update_teacher(0.01))
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")
PY

echo "== throughput (hf backend)"
python benchmarks/sampling_throughput.py --model "$MODEL" --device cuda --max-new-tokens 256

if python -c "import vllm" 2>/dev/null; then
  echo "== vLLM backend: LoRA hot-swap"
  MODEL="$MODEL" python - <<'PY'
import os, torch
from sdpo_ttt.policy.config import PolicyConfig
from sdpo_ttt.policy.model import Policy
pol = Policy.load(PolicyConfig(model=os.environ["MODEL"], device="cuda", backend="vllm", vllm_gpu_memory=0.4), seed=0)
p = pol.chat_ids([{"role": "user", "content": "Write a Python program that prints the first 10 primes."}])
a = pol.sample([p] * 8, temperature=0.0, max_new_tokens=64, seed=0, adapter="student")
base = pol.sample([p] * 8, temperature=0.0, max_new_tokens=64, seed=0, adapter=None)
assert [x.completion_ids for x in a] == [x.completion_ids for x in base], "zero-init LoRA must equal the base model"
with torch.no_grad():
    for q in pol.trainable_parameters():
        q.add_(0.05 * torch.randn_like(q))
b = pol.sample([p] * 8, temperature=0.0, max_new_tokens=64, seed=0, adapter="student")
assert [x.completion_ids for x in a] != [x.completion_ids for x in b], "the updated adapter was not hot-swapped"
lp = pol.token_logprobs([x.prompt_ids for x in b], [x.completion_ids for x in b], adapter="student")
print("vLLM greedy tokens under hf scoring: mean log-prob", float(torch.cat(lp).mean()))
print("vLLM hot-swap OK; published", pol._vllm.publisher._next_id - 1, "adapter versions")
PY
else
  echo "== vLLM not installed: skipped (pip install 'sdpo-ttt[vllm]')"
fi
echo "GPU smoke OK"
