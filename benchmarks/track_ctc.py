"""Tracking benchmark on a Cell Tracking Challenge movie: track the ground-truth masks, score with CTC metrics.

The detections are the movie's gold segmentation (``01_GT/SEG/man_segNNN.tif``,
one per frame in Fluo-N2DH-SIM+; the script stops if a frame lacks one), so
the scores measure the linking alone: frame-to-frame links, gap closing and
geometric division detection. No phase probabilities exist, so every nucleus
gets the neutral 1/3 for each class; with p_M = 1/3 below the mitosis
threshold, :func:`pcnacycle.tracking.tracker.pair_mitoses` accepts divisions on geometry only.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/track_ctc.py \
        [--data ../shared/data/ctc/Fluo-N2DH-SIM+] [--sequence 01] [--settings 20:2 30:2 ...] \
        [--output bench-out/track_ctc] [--json results.json]

Prints one line per (max_distance, max_gap) setting: tracking seconds (track()
alone), TRA, DET, SEG, LNK, BC(0); the JSON holds every py-ctcmetrics score.
Scoring takes ~25 s per setting, nearly all in py-ctcmetrics' mask matching.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from pcnacycle.evaluation.tracks import evaluate_tracks
from pcnacycle.phases import CLASSES
from pcnacycle.pipeline import analyse
from pcnacycle.tracking.detections import detections_table
from pcnacycle.tracking.tracker import track, write_ctc

DEFAULT_SETTING = (20.0, 2)  # track()'s defaults


def read_gold_segmentation(gt_dir: Path, frames: int, kind: str = "SEG") -> list[np.ndarray]:
    """The (H, W) SEG (or TRA marker) masks of every frame; exits naming the first frame without one."""
    masks = []
    for t in range(frames):
        path = gt_dir / kind / (f"man_seg{t:03d}.tif" if kind == "SEG" else f"man_track{t:03d}.tif")
        if not path.is_file():
            sys.exit(f"{path}: missing; this benchmark needs a gold segmentation of every frame")
        masks.append(tifffile.imread(path))
    return masks


def neutral_probabilities(label_image: np.ndarray) -> np.ndarray:
    """(N, 3) class probabilities of 1/3 each, row i for label i + 1: no phase evidence."""
    return np.full((int(label_image.max()), len(CLASSES)), 1.0 / len(CLASSES))


def run_setting(detections, masks, gt_dir: Path, output: Path, max_distance: float | None, max_gap: int) -> dict:
    """Track, write the CTC result to ``output`` and score it; the scores plus ``track_seconds``.

    ``max_distance`` None: what ``pcnacycle run`` does with its defaults (reaches in nucleus diameters
    measured on the masks, division vetting by geometry and area, no phase model).
    """
    start = time.perf_counter()
    if max_distance is None:
        tracked = analyse(detections.drop(columns=[c for c in detections if c.startswith("p_")]).assign(
            p_nucleus=1.0), 10.0, class_names=["nucleus"])[0]
    else:
        tracked = track(detections, max_distance=max_distance, max_gap=max_gap)
    seconds = time.perf_counter() - start
    write_ctc(tracked, masks, output)
    with contextlib.redirect_stdout(io.StringIO()):  # evaluate_tracks' own table; ours is shorter
        scores = evaluate_tracks(output, gt_dir)["ctc"]
    return {"max_distance": max_distance, "max_gap": max_gap, "track_seconds": round(seconds, 3),
            "tracks": int(tracked["track"].nunique()), **scores}


def parse_setting(text: str) -> tuple[float | None, int]:
    """``DISTANCE:GAP`` in pixels, or ``auto`` for run's defaults."""
    if text == "auto":
        return None, 2
    distance, gap = text.split(":")
    return float(distance), int(gap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc/Fluo-N2DH-SIM+"),
                        help="CTC dataset folder holding SEQUENCE/ and SEQUENCE_GT/")
    parser.add_argument("--sequence", default="01")
    parser.add_argument("--settings", nargs="+", type=parse_setting,
                        default=[(None, 2), DEFAULT_SETTING, (30.0, 2), (40.0, 2), (50.0, 2), (40.0, 4)],
                        metavar="DISTANCE:GAP", help="max_distance:max_gap pairs to try, or auto (run's defaults)")
    parser.add_argument("--masks", choices=["SEG", "TRA"], default="SEG",
                        help="gold masks to track: SEG (complete in SIM+) or TRA markers (GOWT1)")
    parser.add_argument("--output", type=Path, default=Path("bench-out/track_ctc"), help="CTC results go here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    gt_dir = args.data / f"{args.sequence}_GT"
    frames = len(sorted((args.data / args.sequence).glob("t*.tif")))
    masks = read_gold_segmentation(gt_dir, frames, args.masks)
    start = time.perf_counter()
    detections = detections_table(masks, (neutral_probabilities(m) for m in masks))
    detect_seconds = time.perf_counter() - start
    print(f"{args.data.name}/{args.sequence}: {frames} frames, {len(detections)} nuclei from SEG gold masks "
          f"(measured in {detect_seconds:.2f} s); {platform.platform()}, {platform.processor() or 'cpu'}")
    track(detections[detections["frame"] < 2])  # laptrack's import and first-call set-up stay out of the timings
    results = []
    print(f"{'max_distance':>12} {'max_gap':>7} {'track_s':>8}"
          + "".join(f"{name:>8}" for name in ("TRA", "DET", "SEG", "LNK", "BC(0)")))
    for max_distance, max_gap in args.settings:
        name = "auto" if max_distance is None else f"d{max_distance:g}_g{max_gap}"
        row = run_setting(detections, masks, gt_dir, args.output / name, max_distance, max_gap)
        results.append(row)
        reach = "auto" if max_distance is None else f"{max_distance:g}"
        print(f"{reach:>12} {max_gap:>7d} {row['track_seconds']:>8.2f}"
              + "".join(f"{row[name]:>8.4f}" for name in ("TRA", "DET", "SEG", "LNK", "BC(0)")))
    best = max(results, key=lambda r: r["TRA"])
    print(f"best TRA {best['TRA']:.4f} at max_distance={best['max_distance']}, max_gap={best['max_gap']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dataset": str(args.data / args.sequence), "frames": frames,
                                         "nuclei": len(detections),
                                         "segmentation": f"{gt_dir.name}/{args.masks} gold masks",
                                         "results": results, "best": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
