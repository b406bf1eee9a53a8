#!/usr/bin/env bash
# Stage 1 CPU profile on the shared DSB2018 data: train, then evaluate on the 100-image val split.
# Usage: benchmarks/stage1_cpu.sh [OUTPUT_DIR] [extra KEY VALUE overrides...]
#   Add --resume as the first override to continue an interrupted run in OUTPUT_DIR.
set -euo pipefail
out=${1:-bench-out/stage1_cpu}; shift || true
resume=(); if [ "${1:-}" = "--resume" ]; then resume=(--resume); shift; fi
data=${DSB_ROOT:-../shared/data/dsb2018/stage1_train}
start=$(date +%s)
.venv/bin/pcnacycle train --config configs/stage1_dsb2018_cpu.yaml --output "$out" --quiet "${resume[@]}" DATASETS.ROOT "$data" "$@"
echo "train seconds: $(( $(date +%s) - start ))"
.venv/bin/pcnacycle evaluate --quiet --config "$out/config.yaml" --weights "$out/model_final.pt" --output "$out/eval"
