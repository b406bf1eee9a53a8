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

The unchanged config is always the first row. ``--profile N`` first prints where the time of N
iterations of the config as saved goes, operator by operator and input shape (``torch.profiler``; the
profiler's own overhead makes those iterations slower than the timed ones).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

from pcnacycle.config import load_config
from pcnacycle.engine.trainer import train


def short_training(config: str | Path, overrides: list, out: Path) -> tuple[list[dict], float]:
    """Train ``config`` with ``overrides`` into ``out`` (an earlier one there is replaced).

    Returns the rows of its ``metrics.jsonl`` and the wall-clock seconds of the whole training.
    """
    cfg = load_config(config, [str(value) for value in overrides])
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    train(cfg, out, progress=False)
    seconds = time.perf_counter() - start
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()], seconds


def _overrides(weights: str, iterations: int) -> list:
    return ["MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", iterations, "SOLVER.STEPS", f"[{iterations - 1}]",
            "SOLVER.WARMUP_ITERS", 1, "SOLVER.CHECKPOINT_PERIOD", 10 * iterations, "TEST.EVAL_PERIOD", 0,
            "DATALOADER.NUM_WORKERS", 0, "SOLVER.LOG_PERIOD", 1]


def seconds_per_iteration(config: str, weights: str, iterations: int, overrides: list[str], out: Path) -> float:
    """Median logged iteration time of a short training (s)."""
    rows, _ = short_training(config, [*_overrides(weights, iterations), *overrides], out)
    times = [row["time"] for row in rows if "time" in row][2:]  # the first iterations allocate
    return statistics.median(times)


def profile(config: str, weights: str, iterations: int, out: Path, rows: int = 25) -> None:
    """Print the operators that took most CPU time over a short training, by input shape (torch.profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        short_training(config, _overrides(weights, iterations), out)
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=rows,
                                                             max_name_column_width=30, max_shapes_column_width=80))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a training's config.yaml")
    parser.add_argument("--weights", required=True, help="weights to start every variant from")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--variant", action="append", default=[], help='"KEY VALUE [KEY VALUE ...]"')
    parser.add_argument("--out", type=Path, default=Path("bench-out/train_speed"))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="first profile N iterations of the config as saved and print where the time goes")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.iterations} iterations each")
    if args.profile:
        profile(args.config, args.weights, args.profile, args.out / "run")
    for variant in ["", *args.variant]:
        seconds = seconds_per_iteration(args.config, args.weights, args.iterations, variant.split(),
                                        args.out / "run")
        print(f"{variant or '(config as saved)'}: {seconds:.2f} s/it")
    shutil.rmtree(args.out / "run", ignore_errors=True)


if __name__ == "__main__":
    main()
