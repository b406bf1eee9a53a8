#!/usr/bin/env bash
# Cell Tracking Challenge Fluo-N2DH-SIM+ sequence 01, end to end with our segmentation:
# `pcnacycle run` with a nucleus model (default: the stage-1 CPU benchmark's), scored by evaluate-tracks
# against 01_GT (TRA, DET, SEG by py-ctcmetrics).
# Usage: benchmarks/ctc_end_to_end.sh [WEIGHTS] [OUTPUT_DIR] [extra run options...]
set -euo pipefail
weights=${1:-bench-out/stage1_cpu}; out=${2:-bench-out/ctc_end_to_end}; shift 2 || shift $# || true
seq=${CTC_SEQ:-../shared/data/ctc/Fluo-N2DH-SIM+/01}
mkdir -p "$out"
# The sequence is one TIFF per frame; pcnacycle run reads a stack.
.venv/bin/python -c "
import sys, glob, numpy as np, tifffile
frames = sorted(glob.glob(sys.argv[1] + '/t*.tif'))
tifffile.imwrite(sys.argv[2], np.stack([tifffile.imread(f) for f in frames]), photometric='minisblack')
" "$seq" "$out/movie.tif"
start=$(date +%s)
.venv/bin/pcnacycle run --quiet --weights "$weights" --pcna "$out/movie.tif" --output "$out/run" --overwrite "$@"
echo "run seconds: $(( $(date +%s) - start ))"
.venv/bin/pcnacycle evaluate-tracks --pred "$out/run" --gt "${seq}_GT" --output "$out/eval"
