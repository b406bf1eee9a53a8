#!/usr/bin/env bash
# M recall against training budget, input channels and mitoses in the training frames (BENCHMARKS.md, "M recall"),
# as run on a lent GPU machine from the repository root after `make demo` (it scores on the 8 annotated frames of
# the demo's test movie). Results land in $OUT.
#
# The two training movies (the demo's, with the default 52-minute M and with twice the mitoses) were made
# beforehand, on the development machine, with
#   .venv/bin/python -c "from pcnacycle.simulation.simulator import *; write_movie(simulate_movie(SimulationParams(frames=60,
#       size=(256, 256), cells=30, seed=1)), 'gpu_tmp/sim_train_default', annotated_frames=30)"
#   .venv/bin/python -c "from pcnacycle.simulation.simulator import *; write_movie(simulate_movie(SimulationParams(frames=60,
#       size=(256, 256), cells=30, seed=1, m_minutes=(104.0, 10.0))), 'gpu_tmp/sim_train_moreM', annotated_frames=30)"
# pycocotools travels as a wheel in .whl/ when the machine lacks it.
OUT=${OUT:-bench-out/m_recall}; mkdir -p "$OUT"
[ -d .whl ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1; }
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name())"

run() {  # name  training-frames  iterations  channels
  start=$(date +%s)
  python3 -m pcnacycle.cli train --config stage3_pcna_cpu --output /tmp/runs/$1 --quiet \
    DATASETS.ROOT $2 DATASETS.VAL_SIZE 3 SOLVER.MAX_ITER $3 SOLVER.STEPS "[$(( $3 * 4 / 5 ))]" \
    SOLVER.WARMUP_ITERS 100 SOLVER.CHECKPOINT_PERIOD $3 TEST.EVAL_PERIOD 0 MODEL.DEVICE cuda \
    DATALOADER.NUM_WORKERS 6 INPUT.CHANNELS "$4" 2>&1 | grep -v Warning | tail -2
  echo "train $1 seconds $(( $(date +%s) - start ))"
  python3 -m pcnacycle.cli evaluate --config /tmp/runs/$1/config.yaml --weights /tmp/runs/$1 --split all \
    --output /tmp/runs/$1/eval --quiet DATASETS.ROOT demo-output/sim_test/annotated MODEL.DEVICE cuda 2>&1 | tail -8
  cp /tmp/runs/$1/eval/eval.json "$OUT/eval_$1.json"
}
# the config's full schedule, with and without DIC (the first run used SOLVER.WARMUP_ITERS 100 as here)
run three2000 gpu_tmp/sim_train_default/annotated 2000 "[pcna, dic, otsu]"
run grey2000 gpu_tmp/sim_train_default/annotated 2000 "[pcna]"
# the demo's budget: its movie, the movie with twice the mitoses, and twice the iterations
run base400 gpu_tmp/sim_train_default/annotated 400 "[pcna, dic, otsu]"
run moreM400 gpu_tmp/sim_train_moreM/annotated 400 "[pcna, dic, otsu]"
run base800 gpu_tmp/sim_train_default/annotated 800 "[pcna, dic, otsu]"
