"""Seconds per frame and peak memory of ``pcnacycle run`` on long 1024² movies (issue 10, item 3).

Simulates one movie of ``--frames`` 1024 × 1024 frames (PCNA and DIC; its
parameters differ from the simulator's defaults: 15-min frames, 90 cells) and
runs ``pcnacycle run`` on its first N frames for each N of ``--lengths``, each
in a fresh process measured with ``resource.getrusage`` (peak resident set
size of the child: the whole run, detection, tracking, resolving and writing).
The movie is read frame by frame from its TIFF, and masks are written frame by
frame, so the peak should not grow with the movie's length.

Usage (from the repository root)::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/run_memory.py \\
        --weights demo-output/train --out bench-out/run_memory [--frames 500] [--lengths 50 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie
from pcnacycle.simulation.writers import write_movie

MOVIE = dict(size=(1024, 1024), cells=90, frame_interval=15.0, seed=505)


def movie(out: Path, frames: int) -> Path:
    folder = out / f"movie-{frames}"
    if not (folder / "simulation.json").is_file():
        write_movie(simulate_movie(SimulationParams(frames=frames, **MOVIE)), folder, annotated_frames=0,
                    overwrite=True)
    return folder


def first_frames(folder: Path, length: int, out: Path) -> tuple[Path, Path]:
    """The first ``length`` frames of the movie's PCNA and DIC, as their own TIFFs (copied frame by frame)."""
    paths = []
    for channel in ("pcna", "dic"):
        path = out / f"{channel}-{length}.tif"
        if not path.is_file():
            with tifffile.TiffFile(folder / f"{channel}.tif") as source:
                pages = (source.pages[t].asarray() for t in range(length))
                first = source.pages[0]
                tifffile.imwrite(path, pages, shape=(length, *first.shape), dtype=first.dtype,
                                 imagej=True, metadata={"axes": "TYX", "finterval": MOVIE["frame_interval"] * 60,
                                                        "unit": "um"})
        paths.append(path)
    return paths[0], paths[1]


#: Runs a command and prints its peak resident set size (KiB): a wrapper per run, so that each run's peak is
#: its own (``RUSAGE_CHILDREN`` keeps the largest child a process ever waited for).
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(weights: str, pcna: Path, dic: Path, run_dir: Path) -> dict:
    command = [sys.executable, "-m", "pcnacycle", "run", "--weights", weights, "--pcna", str(pcna), "--dic",
               str(dic), "--output", str(run_dir), "--frame-interval", str(MOVIE["frame_interval"]), "--overwrite"]
    started = time.perf_counter()
    peak_kib = int(subprocess.run([sys.executable, "-c", _PEAK, *command], check=True, capture_output=True,
                                  text=True).stdout.split()[-1])
    seconds = time.perf_counter() - started
    info = json.loads((run_dir / "run.json").read_text())
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024), "frames": info["frames"],
            "nuclei": info["nuclei"], "tracks": info["tracks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 500])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    folder = movie(args.out, args.frames)
    print(f"simulated {args.frames} frames in {time.perf_counter() - started:.0f} s", flush=True)
    results = {}
    for length in sorted(args.lengths):
        pcna, dic = first_frames(folder, length, args.out)
        results[length] = measure(args.weights, pcna, dic, args.out / f"run-{length}")
        results[length]["seconds_per_frame"] = round(results[length]["seconds"] / length, 2)
        print(length, results[length], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({"pixels": int(np.prod(MOVIE["size"])), **{str(k): v for k, v in results.items()}}))


if __name__ == "__main__":
    sys.exit(main())
