#!/usr/bin/env bash
# GPU acceptance of the one-GPU path (issue #17): Qwen2.5-Coder-1.5B / -7B and Qwen3-8B shapes with random weights,
# the hf backend end to end (loop + local sandbox + SDPO updates at 2k and 8k tokens), predicted vs measured memory.
# What benchmarks/gpu_acceptance.py does is in its docstring; options pass through (--help).
#
#   bash benchmarks/gpu_acceptance.sh --prepare    # on a machine with the package set up: collect what a bare GPU
#                                                  # machine lacks into .whl/gpu-carry/ (ignored by git, ~25 MB):
#                                                  # a Qwen tokenizer (no weights) and wheels of pure-Python deps
#   bash benchmarks/gpu_acceptance.sh [OPTIONS]    # on the GPU machine, from a plain checkout (no pip install):
#                                                  # only torch, transformers and peft need to be there
#
# Runs under `timeout` (SDPO_TTT_ACCEPT_TIMEOUT seconds, default 480 = the 8-minute budget on one H200).
# Exit status: 0 all green; 1 a step failed, a loss was not finite or LoRA did not change; 124 timed out.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
CARRY=.whl/gpu-carry

if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$CARRY" && mkdir -p "$CARRY/tokenizer" "$CARRY/wheels"
  src="$("$PY" -c 'from sdpo_ttt.policy.catalog import model_dir; print(model_dir("qwen2.5-coder-0.5b"))')"
  for f in tokenizer.json tokenizer_config.json vocab.json merges.txt special_tokens_map.json added_tokens.json chat_template.jinja; do
    [ -f "$src/$f" ] && cp "$src/$f" "$CARRY/tokenizer/"
  done
  [ -f "$CARRY/tokenizer/tokenizer_config.json" ] || { echo "no tokenizer in $src: run scripts/setup.sh first" >&2; exit 2; }
  # Imported by sdpo_ttt but not by torch/transformers/peft. pydantic-core is compiled: one wheel per CPython.
  for py in 3.10 3.11 3.12 3.13; do
    "$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --no-deps --python-version "$py" \
      --platform manylinux2014_x86_64 -d "$CARRY/wheels" "pydantic-core==$("$PY" -c 'import pydantic_core; print(pydantic_core.__version__)')"
  done
  "$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --no-deps -d "$CARRY/wheels" \
    "pydantic==$("$PY" -c 'import pydantic; print(pydantic.VERSION)')" annotated-types typing-inspection \
    "typing-extensions==$("$PY" -c 'import importlib.metadata as m; print(m.version("typing_extensions"))')"  # pydantic needs a newer one than torch's images may have
  du -sh "$CARRY"; ls "$CARRY/wheels"
  exit 0
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this checkout, installed or not
missing="$("$PY" - <<'PY'
import importlib.util
print(" ".join(m for m in ("torch", "transformers", "peft", "numpy", "yaml", "pydantic") if importlib.util.find_spec(m) is None))
PY
)"
if [ -n "$missing" ] && [ -d "$CARRY/wheels" ]; then
  echo "[gpu_acceptance] installing carried wheels for: $missing (into $CARRY/site, no network)"
  "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --find-links "$CARRY/wheels" --target "$CARRY/site" \
    pydantic pydantic-core annotated-types typing-inspection typing-extensions >&2
  export PYTHONPATH="$PYTHONPATH:$PWD/$CARRY/site"
fi
exec timeout --signal=INT --kill-after=30 "${SDPO_TTT_ACCEPT_TIMEOUT:-480}" "$PY" benchmarks/gpu_acceptance.py "$@"
