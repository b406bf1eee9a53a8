#!/usr/bin/env bash
# The demo's experiment with another input layout: same simulated movies (seeds, sizes), same stage-3 CPU
# schedule (400 iterations), scored on the unseen simulated movie (segm AP50 per class, phase accuracy)
# and — class-agnostic — on the DSB2018 val split (real nuclei), to show how far the simulation transfers.
# Usage: CHANNELS="[pcna]" benchmarks/simulated_pcna.sh [OUTPUT_DIR] [extra training KEY VALUE overrides...]
#   e.g. CHANNELS="[pcna, pcna, bf]" benchmarks/simulated_pcna.sh bench-out/simulated_pcna DATASETS.CHANNEL_DIRS "[bf=dic]"
#   DSB_ROOT (default ../shared/data/dsb2018/stage1_train) and DSB_SPLIT (a split.json of that data,
#   default bench-out/stage1_cpu/split.json) choose the real-nuclei check; it is skipped without them.
set -euo pipefail
channels=${CHANNELS:-"[pcna]"}
out=${1:-bench-out/simulated_pcna}; shift || true
bin=.venv/bin/pcnacycle
iters=400
# The demo's training movie, and the 24-frame test movie of its first version (the test movie the
# three-channel row of BENCHMARKS.md was scored on).
[ -f "$out/sim_train/simulation.json" ] || $bin simulate --quiet --output "$out/sim_train" --frames 60 --size 256 256 --cells 30 --seed 1 --annotated-frames 30
[ -f "$out/sim_test/simulation.json" ] || $bin simulate --quiet --output "$out/sim_test" --frames 24 --size 256 256 --cells 30 --seed 2 --annotated-frames 8
run="$out/train_$(echo "$channels" | tr -cd 'a-z,' | tr ',' '_')"
start=$(date +%s)
$bin train --quiet --config configs/stage3_pcna_cpu.yaml --output "$run" \
  DATASETS.ROOT "$out/sim_train/annotated" DATASETS.VAL_SIZE 3 INPUT.CHANNELS "$channels" \
  SOLVER.MAX_ITER $iters SOLVER.STEPS "[320]" SOLVER.WARMUP_ITERS 100 SOLVER.CHECKPOINT_PERIOD $iters \
  TEST.EVAL_PERIOD 0 DATALOADER.NUM_WORKERS 0 "$@"
echo "train seconds: $(( $(date +%s) - start ))"
$bin evaluate --quiet --config "$run/config.yaml" --weights "$run" --split all \
  --output "$run/eval_fresh_movie" DATASETS.ROOT "$out/sim_test/annotated"
dsb=${DSB_ROOT:-../shared/data/dsb2018/stage1_train}; split=${DSB_SPLIT:-bench-out/stage1_cpu/split.json}
if [ -d "$dsb" ] && [ -f "$split" ] && [ "$channels" = "[pcna]" ]; then
  $bin evaluate --quiet --config "$run/config.yaml" --weights "$run" --split val --split-file "$split" \
    --class-agnostic --output "$run/eval_dsb2018_val" DATASETS.FORMAT dsb2018 DATASETS.ROOT "$dsb"
fi
