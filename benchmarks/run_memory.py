"""Seconds per frame and peak memory of ``pcnacycle run`` on long 1024² movies (issue 10, item 3).

The movie is real: CTC Fluo-N2DH-GOWT1 sequence 02 (92 frames of 1024 × 1024,
mouse ES cell nuclei) played forwards and backwards (0…91, 90…0, 1…91, …)
to ``--lengths`` frames, so that every cell moves on continuously. For each
length, ``pcnacycle run`` runs in a fresh process under a small wrapper that
reports the peak resident set size of that process (``ru_maxrss``): the whole
run, detection, tracking, resolving and writing. Frames are read one at a time
from the TIFF and masks written one at a time, so the peak should not grow with
the length. GOWT1 has one channel; the demo's model, which takes PCNA and DIC,
is given the same movie as both (phases are meaningless here, memory is not).

Usage (from the repository root)::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/run_memory.py --weights demo-output/train \\
        --gowt1 ../shared/data/ctc/Fluo-N2DH-GOWT1/02 --out bench-out/run_memory [--lengths 100 500] \\
        [--nucleus-diameter 60]
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

#: Runs a command and prints its peak resident set size (KiB): a wrapper per run, so that each run's peak is
#: its own (``RUSAGE_CHILDREN`` keeps the largest child a process ever waited for).
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def ping_pong(count: int, length: int) -> np.ndarray:
    """Frame indices 0…count-1, back to 0, forth again…, ``length`` of them (no frame twice in a row)."""
    cycle = np.r_[np.arange(count), np.arange(count - 2, 0, -1)]
    return np.resize(cycle, length)


def write_movie(source: Path, length: int, path: Path) -> None:
    frames = sorted(source.glob("t*.tif"))
    order = ping_pong(len(frames), length)
    pages = (tifffile.imread(frames[i]) for i in order)
    first = tifffile.imread(frames[0])
    tifffile.imwrite(path, pages, shape=(length, *first.shape), dtype=first.dtype, imagej=True,
                     metadata={"axes": "TYX"})


def measure(weights: str, pcna: Path, run_dir: Path, nucleus_diameter: float | None) -> dict:
    # GOWT1 has one channel: a model that also takes DIC (the demo's) is given the same movie as its DIC
    command = [sys.executable, "-m", "pcnacycle", "run", "--weights", weights, "--pcna", str(pcna), "--dic", str(pcna),
               "--output", str(run_dir), "--frame-interval", "5", "--overwrite"]
    if nucleus_diameter:
        command += ["--nucleus-diameter", str(nucleus_diameter)]
    started = time.perf_counter()
    peak_kib = int(subprocess.run([sys.executable, "-c", _PEAK, *command], check=True, capture_output=True,
                                  text=True).stdout.split()[-1])
    seconds = time.perf_counter() - started
    info = json.loads((run_dir / "run.json").read_text())
    return {"seconds": round(seconds, 1), "seconds_per_frame": round(seconds / info["frames"], 2),
            "peak_rss_mib": round(peak_kib / 1024), "frames": info["frames"], "nuclei": info["nuclei"],
            "tracks": info["tracks"], "scale": info.get("scale")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--gowt1", type=Path, required=True, help="the Fluo-N2DH-GOWT1/02 folder (t000.tif...)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--nucleus-diameter", type=float,
                        help="passed to run (a model trained on other nuclei may misjudge GOWT1's, e.g. 60)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for length in args.lengths:
        movie = args.out / f"gowt1-{length}.tif"
        if not movie.is_file():
            write_movie(args.gowt1, length, movie)
        results[length] = measure(args.weights, movie, args.out / f"run-{length}", args.nucleus_diameter)
        print(length, results[length], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
