"""Speed and memory of tracking plus phase resolution on ~1000 cells × 100 frames (target: under 10 s).

The input is a synthetic detections table, no images: cells random-walk in a
large field, go through G1 → S → G2 → M and divide into two daughters a few
pixels apart; ~1% of detections are dropped (missed) and every detection
carries noisy phase probabilities (0.8 on the true class). Timed:
:func:`pcnacycle.tracking.tracker.track`, then :func:`pcnacycle.tracking.resolve.resolve_phases`
and :func:`pcnacycle.tracking.resolve.phase_durations`, in wall-clock seconds and in
CPU seconds of this process (``time.process_time``: on a machine shared with
other work the wall time grows, the CPU time much less). Peak memory is the
process's maximum resident set size (``resource.getrusage``), before and after.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/track_speed.py [--cells 1000] [--frames 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pcnacycle.phases import PHASE_CLASS
from pcnacycle.tracking.resolve import phase_durations, resolve_phases
from pcnacycle.tracking.tracker import track

FRAME_INTERVAL = 10.0  # minutes
PHASE_FRAMES = {"G1": 30, "S": 25, "G2": 12, "M": 5}  # mean frames per phase: a ~72-frame cycle
CLASS_NAMES = ("G1/G2", "S", "M")


def _phase_at(age: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Phase index (0..3) of cells ``age`` frames into a cycle with per-cell phase ``lengths`` (n, 4)."""
    return (age[:, None] >= np.cumsum(lengths, axis=1)).sum(axis=1).clip(max=3)


def synthetic_detections(cells: int, frames: int, seed: int = 0, missed: float = 0.01) -> pd.DataFrame:
    """Detections of a dividing, migrating population: ``frame, centroid_y, centroid_x, p_G1/G2, p_S, p_M``.

    Founders are placed with ~100 px between neighbours and start at random
    points of their cycle; steps are ~2 px per frame; daughters appear ±6 px
    from the mother. The founder count is chosen so that the mean number of
    cells per frame is about ``cells``.
    """
    rng = np.random.default_rng(seed)
    cycle = sum(PHASE_FRAMES.values())
    founders = int(cells / 2 ** (frames / cycle / 2))  # growth 2^(t/cycle), averaged over the movie
    side = 100.0 * np.sqrt(cells)
    position = rng.uniform(0, side, (founders, 2))
    lengths = np.column_stack([rng.poisson(PHASE_FRAMES[p], founders) + 1 for p in PHASE_FRAMES])
    age = (rng.uniform(0, 1, founders) * lengths.sum(axis=1)).astype(int)
    rows = []
    for t in range(frames):
        phase = _phase_at(age, lengths)
        rows.append(pd.DataFrame({"frame": t, "centroid_y": position[:, 0], "centroid_x": position[:, 1],
                                  "phase": phase}))
        dividing = age + 1 >= lengths.sum(axis=1)
        age += 1
        position = position + rng.normal(0, 2.0, position.shape)
        if dividing.any():  # each mother is replaced by two daughters along a random axis
            n = int(dividing.sum())
            axis = rng.normal(0, 1, (n, 2))
            axis *= 6.0 / np.linalg.norm(axis, axis=1, keepdims=True)
            mothers = position[dividing]
            new_lengths = np.column_stack([rng.poisson(PHASE_FRAMES[p], 2 * n) + 1 for p in PHASE_FRAMES])
            position = np.vstack([position[~dividing], mothers + axis, mothers - axis])
            lengths = np.vstack([lengths[~dividing], new_lengths])
            age = np.r_[age[~dividing], np.zeros(2 * n, int)]
    table = pd.concat(rows, ignore_index=True)
    table = table[rng.uniform(size=len(table)) >= missed].reset_index(drop=True)
    return _with_noisy_probabilities(table, rng)


def _with_noisy_probabilities(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Replace ``phase`` by class probabilities: 0.8 on the true class plus noise, renormalised."""
    true_class = [CLASS_NAMES.index(PHASE_CLASS[p]) for p in ("G1", "S", "G2", "M")]
    probs = rng.uniform(0, 0.2, (len(table), len(CLASS_NAMES)))
    probs[np.arange(len(table)), np.take(true_class, table["phase"].to_numpy())] += 0.8
    probs /= probs.sum(axis=1, keepdims=True)
    for k, name in enumerate(CLASS_NAMES):
        table[f"p_{name}"] = probs[:, k]
    return table.drop(columns="phase")


def max_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000, help="mean cells per frame")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    detections = synthetic_detections(args.cells, args.frames, args.seed)
    track(detections[detections["frame"] < 2])  # laptrack's import and first-call set-up stay out of the timings
    rss_before = max_rss_mib()
    start, start_cpu = time.perf_counter(), time.process_time()
    tracked = track(detections)
    track_seconds, track_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    resolved = resolve_phases(tracked, FRAME_INTERVAL)
    durations = phase_durations(resolved, FRAME_INTERVAL)
    total_seconds, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "threads": os.environ.get("OMP_NUM_THREADS", "unset")},
        "frames": args.frames, "detections": len(detections),
        "mean_cells_per_frame": round(len(detections) / args.frames, 1),
        "tracks": int(tracked["track"].nunique()), "divisions": int((durations["parent"] > 0).sum() // 2),
        "track_seconds": round(track_seconds, 2), "resolve_seconds": round(total_seconds - track_seconds, 2),
        "total_seconds": round(total_seconds, 2),
        "track_cpu_seconds": round(track_cpu, 2), "resolve_cpu_seconds": round(total_cpu - track_cpu, 2),
        "total_cpu_seconds": round(total_cpu, 2), "load_average_1min": round(os.getloadavg()[0], 2),
        "max_rss_mib_before": round(rss_before, 1), "max_rss_mib_after": round(max_rss_mib(), 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
