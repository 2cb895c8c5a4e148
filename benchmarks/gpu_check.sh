#!/usr/bin/env bash
# The one prepared GPU check (issue 22): <= 8 minutes on one 80 GB card.
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default gpu-check/)
# At the 7B shape with random bf16 weights: per-sample-type step time, tokens/s, MFU and peak
# memory; generation tokens/s with and without prefix reuse; one ZeRO-3 optimiser step on this
# GPU; then `pytest -m gpu`. Writes OUT_DIR/gpu_check.json and appends a dated table naming the
# card to docs/benchmarks.md (benchmarks/gpu_check.py does the work).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}" TOKENIZERS_PARALLELISM=false
runner=(python)
if command -v uv > /dev/null; then runner=(uv run python); fi
timeout 480 "${runner[@]}" benchmarks/gpu_check.py --json "$out/gpu_check.json" \
    --docs docs/benchmarks.md 2>&1 | tee "$out/gpu_check.log"
