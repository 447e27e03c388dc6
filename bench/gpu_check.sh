#!/usr/bin/env bash
# The GPU checks (tests/gpu, marker `gpu`) on a machine with CUDA and PyTorch, transformers, peft, accelerate
# and pytest; trl, datasets and pydantic are installed from .whl/ when that folder holds wheels (machines
# without a package index). Usage: bench/gpu_check.sh [pytest args]   (about a minute on one H200)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pugc-site .whl/*.whl
  export PYTHONPATH="/tmp/pugc-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PUGC_CACHE_DIR="${PUGC_CACHE_DIR:-/tmp/pugc-cache}" TRL_EXPERIMENTAL_SILENCE=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m pytest -p no:cacheprovider -q -m gpu tests/gpu "$@"
