#!/usr/bin/env bash
# A stage-3 CPU model trained on simulated PCNA frames, scored on a fresh simulated movie
# (segm AP50 per class, per-object phase accuracy).
# Usage: benchmarks/simulated_pcna.sh [OUTPUT_DIR] [ITERATIONS] [extra KEY VALUE overrides...]
set -euo pipefail
out=${1:-bench-out/simulated_pcna}; iters=${2:-1000}; shift 2 || shift $# || true
bin=.venv/bin/pcnacycle
$bin simulate --quiet --output "$out/sim_train" --frames 80 --size 384 384 --cells 45 --seed 101 --annotated-frames 40
$bin simulate --quiet --output "$out/sim_test" --frames 40 --size 384 384 --cells 45 --seed 202 --annotated-frames 10
start=$(date +%s)
$bin train --quiet --config configs/stage3_pcna_cpu.yaml --output "$out/train" \
  DATASETS.ROOT "$out/sim_train/annotated" DATASETS.VAL_SIZE 4 \
  SOLVER.MAX_ITER "$iters" SOLVER.STEPS "[$(( iters * 4 / 5 ))]" SOLVER.CHECKPOINT_PERIOD "$iters" \
  TEST.EVAL_PERIOD "$(( iters / 2 ))" "$@"
echo "train seconds: $(( $(date +%s) - start ))"
$bin evaluate --quiet --config "$out/train/config.yaml" --weights "$out/train" --split all \
  --output "$out/eval_fresh_movie" DATASETS.ROOT "$out/sim_test/annotated"
