#!/usr/bin/env bash
# GPU benchmark: one ~1B random Llama built on the machine, hf engine + judge modes + TRL DPO steps under
# ddp (one process), fsdp and deepspeed_zero3 (launched, one GPU); ZeRO-3 needs deepspeed installed.
# Needs PyTorch with CUDA, transformers, peft, accelerate, pyyaml; trl and datasets are installed from .whl/
# when that folder is there (wheels downloaded beforehand, for machines without a package index).
# Usage: bench/gpu_bench.sh [OUT_DIR]     (about 5 minutes on one H100)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-${OUT:-bench/results}}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pugc-site .whl/*.whl
  export PYTHONPATH="/tmp/pugc-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:$PWD/bench:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PUGC_CACHE_DIR="${PUGC_CACHE_DIR:-/tmp/pugc-cache}" TRL_EXPERIMENTAL_SILENCE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 bench/gpu_bench.py --out "$out_dir/gpu.json"
