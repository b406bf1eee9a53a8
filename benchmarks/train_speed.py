"""Seconds per training iteration of a saved config, with config changes side by side.

Each variant trains ``--iterations`` iterations of the config a training
saved (``--config``, e.g. the demo's ``train/config.yaml``) from the same
weights and seed, with its own ``KEY VALUE`` overrides, and reports the
median of the iteration times the trainer logged. Start from a trained
model's weights (``--weights``) so that the RoI heads see as many positive
proposals as late in training (a model at iteration 0 proposes few nuclei,
and its mask head costs little). Weights whose shapes differ from a variant's
(a narrower head) are skipped for those layers, as ``MODEL.WEIGHTS`` always
does: only the time is measured here, not the accuracy.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_speed.py --config demo-output/train/config.yaml \\
        --weights demo-output/train/model_final.pt --iterations 60 \\
        --variant "MODEL.ROI_MASK_HEAD.CONV_DIM 64" --variant "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 64"

The unchanged config is always the first row.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
from pathlib import Path

import torch

from pcnacycle.config import load_config
from pcnacycle.engine.trainer import train


def seconds_per_iteration(config: str, weights: str, iterations: int, overrides: list[str], out: Path) -> float:
    """Median logged iteration time of a short training (s)."""
    cfg = load_config(config, [
        "MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", str(iterations), "SOLVER.STEPS", f"[{iterations - 1}]",
        "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", str(10 * iterations), "TEST.EVAL_PERIOD", "0",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.LOG_PERIOD", "1", *overrides])
    shutil.rmtree(out, ignore_errors=True)
    train(cfg, out, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    times = [row["time"] for row in rows if "time" in row][2:]  # the first iterations allocate
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a training's config.yaml")
    parser.add_argument("--weights", required=True, help="weights to start every variant from")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--variant", action="append", default=[], help='"KEY VALUE [KEY VALUE ...]"')
    parser.add_argument("--out", type=Path, default=Path("bench-out/train_speed"))
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.iterations} iterations each")
    for variant in ["", *args.variant]:
        seconds = seconds_per_iteration(args.config, args.weights, args.iterations, variant.split(),
                                        args.out / "run")
        print(f"{variant or '(config as saved)'}: {seconds:.2f} s/it")
    shutil.rmtree(args.out / "run", ignore_errors=True)


if __name__ == "__main__":
    main()
