"""Real PCNA frames against reference labels: segmentation F1 and phases (issue 12's goal on real PCNA).

The data are those of Biolapse (Lebrat et al., github.com/lebrat/Biolapse, MIT licence), the only real
PCNA time-lapse with reference labels found in a public repository reachable here. Bring the repository
beside the project with the ``fetch`` tool (``github:lebrat/Biolapse``) and give its git directory:

* ``segmentation/Data/{Train,Test}/Original/`` (commit 0e01b4a): two fields of a PCNA movie, 30 frames
  each, 256 × 256, 16-bit, with binary nucleus masks drawn for segmentation (two nuclei that touch
  are one region in them; each connected region is taken as one reference nucleus);
* ``Data/Outputs/nn/`` (commit 427f06b, removed later): 11 cells tracked through 12–135 frames, each as
  a crop around the cell (PCNA channel, 8-bit) with its nucleus mask, and ``cells.csv``, the frames
  where a person marked each cell's phase changes (G1, early S, mid S, late S, G2, end).

For each model (``--models NAME=WEIGHTS``), with no option given (the nucleus size is estimated and
frames rescaled as ``pcnacycle run`` does on any movie):

1. **fields**: ``pcnacycle run`` on each 30-frame field; one-to-one matches at IoU 0.5 against the
   reference regions, frame by frame (precision, recall, F1); the share of nuclei the detector calls
   G1/G2, S and M, and the resolved phases' shares;
2. **tracked cells**: ``pcnacycle run`` on each cell's crops as a movie; per frame, the nucleus that
   overlaps the cell's mask most: its IoU with the mask (a nucleus found at IoU 0.5 counts), and its
   class against the person's phase (early, mid and late S → S; G1 and G2 → G1/G2), for the detector's
   call and for the resolved phase. One nucleus per crop is too few to measure its size blind on three
   frames, so each cell's diameter is given (``--nucleus-diameter``, the median of its masks); 4 of the
   11 cells are left out because their masks have another size than their crops (they belong to
   other crops).

With ``--threshold-curve`` only the fields are run, each once keeping detections from score 0.1, and the
matches are given at each score threshold from 0.1 to 0.8 (as ``benchmarks/score_threshold.py`` gives them on
other data), to see what ``run``'s ``score_threshold`` does on real PCNA.

The frame interval of these movies is not published with them; 10 minutes is given to ``run`` (it
matters to the resolved phases only, through the expected durations).

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/real_pcna.py --out bench-out/real_pcna \\
        --biolapse-git /work/.mirror/lebrat+Biolapse/repo/.git \\
        --models recipe=bench-out/transfer/stage3_with_nuclei_long
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage import io, measure

from pcnacycle.evaluation.tracks import match_frame

PCNACYCLE = [sys.executable, "-m", "pcnacycle"]
FIELDS_COMMIT, CELLS_COMMIT = "0e01b4a", "427f06b"
FRAME_INTERVAL = 10.0
#: cells.csv columns: id, then (frame, position) for each mark, in this order.
MARKS = ["G1", "earlyS", "midS", "lateS", "G2", "end"]
#: Score thresholds of ``--threshold-curve`` and of ``benchmarks/score_threshold.py``.
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MARK_CLASS = {"G1": "G1/G2", "earlyS": "S", "midS": "S", "lateS": "S", "G2": "G1/G2"}


def extract(git_dir: Path, folder: Path) -> Path:
    """The two parts of Biolapse used here, from its git history, under ``folder``."""
    if not (folder / "cells.csv").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for commit, paths in ((FIELDS_COMMIT, ["segmentation/Data/Train/Original", "segmentation/Data/Test/Original"]),
                              (CELLS_COMMIT, ["Data/Outputs/nn/zoom", "Data/Outputs/nn/zoom_mask",
                                              "Data/Outputs/nn/cells.csv"])):
            archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", commit, *paths], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        (folder / "cells.csv").write_bytes((folder / "Data/Outputs/nn/cells.csv").read_bytes())
    return folder


def stack(paths: list[Path], movie: Path) -> np.ndarray:
    frames = np.stack([io.imread(p) for p in paths])
    if not movie.exists():
        tifffile.imwrite(movie, frames, imagej=True, metadata={"axes": "TYX"})
    return frames


def field(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One Biolapse field (``Train`` or ``Test``): its frames (T, H, W) and reference nuclei, each connected
    region of its masks labelled (T, H, W) int."""
    original = folder / "segmentation/Data" / name / "Original"
    images = sorted((original / "images").glob("*.png"))
    frames = np.stack([io.imread(p) for p in images])
    return frames, np.stack([measure.label(io.imread(original / "masks" / p.name) > 0) for p in images])


def run(weights: Path, movie: Path, output: Path, *extra) -> Path:
    if not (output / "run.json").exists():
        subprocess.run([*PCNACYCLE, "run", "--quiet", "--weights", str(weights), "--pcna", str(movie),
                        "--output", str(output), "--frame-interval", str(FRAME_INTERVAL), "--overwrite", *extra],
                       check=True, capture_output=True, text=True)
    return output


def match_counts(masks: np.ndarray, reference: np.ndarray, dropped=None) -> dict:
    """One-to-one matches at IoU 0.5, frame by frame: tp, fp, fn and their precision, recall and F1.

    ``dropped``: for each frame, the labels of ``masks`` to leave out (e.g. those scoring under a threshold).
    """
    tp = fp = fn = 0
    for index, (truth, pred) in enumerate(zip(reference, masks)):
        if dropped is not None:
            pred = np.where(np.isin(pred, dropped[index]), 0, pred)
        matched = match_frame(truth, pred)
        tp += len(matched)
        fn += int(truth.max()) - len(matched)
        fp += len(np.unique(pred[pred > 0])) - len(matched)
    return counts_scores(tp, fp, fn)


def counts_scores(tp: int, fp: int, fn: int) -> dict:
    """tp, fp, fn with their precision, recall and F1."""
    return {"tp": tp, "fp": fp, "fn": fn, "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "f1": 2 * tp / max(2 * tp + fp + fn, 1)}


def score_field(run_dir: Path, reference: np.ndarray) -> dict:
    objects = pd.read_csv(run_dir / "objects.csv")
    record = json.loads((run_dir / "run.json").read_text())
    return {**match_counts(tifffile.imread(run_dir / "masks.tif"), reference),
            "called": objects["predicted_phase"].value_counts(normalize=True).round(3).to_dict(),
            "resolved": objects["phase"].value_counts(normalize=True).round(3).to_dict(),
            "scale": {k: record.get(k) for k in ("movie_nucleus_diameter_px", "scale", "scale_note")}}


def threshold_curve(run_dir: Path, reference: np.ndarray) -> dict:
    """Matches at each of :data:`THRESHOLDS` from one run that kept detections from the lowest of them."""
    masks = tifffile.imread(run_dir / "masks.tif")
    objects = pd.read_csv(run_dir / "objects.csv")  # masks.tif is labelled by track
    by_frame = [objects[objects["frame"] == t] for t in range(len(masks))]
    return {threshold: match_counts(masks, reference, [f.loc[f["score"] < threshold, "track"].to_numpy()
                                                       for f in by_frame])
            for threshold in THRESHOLDS}


def person_marks(cells_csv: Path) -> dict[str, dict[str, int]]:
    """{cell id: {mark: frame}} from Biolapse's cells.csv (one mark per row, repeated rows dropped)."""
    marks: dict[str, dict[str, int]] = {}
    for line in cells_csv.read_text().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if not fields or not fields[0]:
            continue
        for index, mark in enumerate(MARKS):
            value = fields[1 + 2 * index] if 1 + 2 * index < len(fields) else ""
            if value:
                marks.setdefault(fields[0], {}).setdefault(mark, int(float(value)))
    return marks


def person_mark(marks: dict[str, int], frame: int) -> str | None:
    """The person's mark in force at ``frame``: the last one at or before it (None: unmarked)."""
    before = [(at, mark) for mark, at in marks.items() if mark != "end" and at <= frame]
    if not before or frame > marks.get("end", frame):
        return None
    return max(before)[1]


def person_class(marks: dict[str, int], frame: int) -> str | None:
    """The class the person's marks give ``frame`` (None: unmarked)."""
    mark = person_mark(marks, frame)
    return None if mark is None else MARK_CLASS[mark]


def score_cells(folder: Path, weights: Path, out: Path, *options) -> dict:
    """The tracked cells' frames found and their phases against the person's; ``options``: more ``run`` options."""
    base = folder / "Data/Outputs/nn"
    marks = person_marks(folder / "cells.csv")
    rows, skipped = [], []
    for cell in sorted(marks):
        crops = sorted((base / "zoom" / cell).glob("*.png"))
        reference = [io.imread(base / "zoom_mask" / cell / p.name) > 0 for p in crops]
        movie = out.parent / "cells" / f"{cell}.tif"
        movie.parent.mkdir(parents=True, exist_ok=True)
        if not crops or any(r.shape != reference[0].shape for r in reference) or \
                stack(crops, movie).shape[1:] != reference[0].shape:
            skipped.append(cell)  # masks of another size than the crops: they belong to other crops
            continue
        reference = np.stack(reference)
        # one nucleus per crop is too few to measure its size on three frames: it is given, from the masks
        diameter = float(np.median(2 * np.sqrt(reference.sum(axis=(1, 2)) / np.pi)))
        run_dir = run(weights, movie, out / "cell_runs" / cell, "--nucleus-diameter", f"{diameter:.1f}", *options)
        masks = tifffile.imread(run_dir / "masks.tif")
        objects = pd.read_csv(run_dir / "objects.csv").set_index(["frame", "track"])  # masks.tif: label = track
        for index, (path, truth, pred) in enumerate(zip(crops, reference, masks)):
            expected = person_class(marks[cell], int(path.stem))  # crops are named by the movie's frame
            if expected is None:
                continue
            labels, overlap = np.unique(pred[truth & (pred > 0)], return_counts=True)
            row = {"cell": cell, "frame": int(path.stem), "person": expected, "iou": 0.0, "called": "",
                   "resolved": ""}
            if len(labels):
                label = int(labels[np.argmax(overlap)])
                row["iou"] = float(overlap.max() / ((pred == label) | truth).sum())
                found = objects.loc[(index, label)]
                row["called"] = found["predicted_phase"]
                row["resolved"] = "G1/G2" if found["phase"] in ("G1", "G2") else found["phase"]
            rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "cells.csv", index=False)
    found = table[table["iou"] >= 0.5]
    result = {"cells": int(table["cell"].nunique()), "skipped_cells": skipped, "frames": len(table),
              "found_iou_0.5": len(found) / len(table), "median_iou": float(table["iou"].median()),
              "person_frames": table["person"].value_counts().to_dict()}
    for column in ("called", "resolved"):
        right = found[column] == found["person"]
        result[column] = {"accuracy": float(right.mean()), "shares": found[column].value_counts(normalize=True)
                          .round(3).to_dict(), **{f"recall {c}": float(right[found["person"] == c].mean())
                                                  for c in ("S", "G1/G2") if (found["person"] == c).any()}}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/real_pcna"))
    parser.add_argument("--biolapse-git", type=Path, required=True, help="git directory of lebrat/Biolapse")
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=WEIGHTS")
    parser.add_argument("--score-threshold", type=float,
                        help="give run this --score-threshold (default: run's own; it was 0.5 until 2026-11-30, "
                             "so give 0.5 to compare with the models scored before)")
    parser.add_argument("--threshold-curve", action="store_true",
                        help="also run each field keeping detections from score 0.1, and give the matches at "
                             "each score threshold from 0.1 to 0.8 (fields only; the tracked cells are not run)")
    args = parser.parse_args(argv)
    options = ["--score-threshold", str(args.score_threshold)] if args.score_threshold is not None else []
    folder = extract(args.biolapse_git, args.out / "biolapse")
    results = {"date": time.strftime("%Y-%m-%d"), "frame_interval_given": FRAME_INTERVAL}
    references = {}  # read once for every model
    for name in ("Train", "Test"):
        frames, references[name] = field(folder, name)
        movie = args.out / f"field_{name.lower()}.tif"
        if not movie.exists():
            tifffile.imwrite(movie, frames, imagej=True, metadata={"axes": "TYX"})
    for name, weights in (pair.split("=", 1) for pair in args.models):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        scores = results[name] = {"weights": weights}
        started = time.time()
        for field_name, reference in references.items():
            key = f"field_{field_name.lower()}"
            if args.threshold_curve:
                lowest = run(Path(weights), args.out / f"{key}.tif", out / f"{key}_from_{THRESHOLDS[0]}",
                             "--score-threshold", str(THRESHOLDS[0]))
                scores[key + "_by_threshold"] = threshold_curve(lowest, reference)
            else:
                scores[key] = score_field(run(Path(weights), args.out / f"{key}.tif", out / key, *options), reference)
        if args.threshold_curve:
            curves = [scores[f"field_{f.lower()}_by_threshold"] for f in references]
            scores["both_fields_f1_by_threshold"] = {
                t: round(counts_scores(*(sum(c[t][k] for c in curves) for k in ("tp", "fp", "fn")))["f1"], 3)
                for t in THRESHOLDS}
        else:
            scores["tracked_cells"] = score_cells(folder, Path(weights), out, *options)
        scores["seconds"] = round(time.time() - started)
    path = args.out / ("results_" + "_".join(pair.split("=", 1)[0] for pair in args.models)
                       + ("_by_threshold" if args.threshold_curve else "") + ".json")
    path.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
