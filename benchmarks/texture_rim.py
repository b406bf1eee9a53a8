"""How far nuclear texture sets S apart from G1/G2 with 1, 2 or 3 edge layers left out.

:func:`pcnacycle.tracking.detections.nuclear_texture` is the resolver's texture evidence. Two sources:

- **simulated movies** (a ``phase_durations.py --out`` folder: its ``movies/`` with their truth and its
  ``runs/`` of a model): log texture of each true nucleus, measured on its true mask and on the run's
  mask matched to it (IoU ≥ 0.5), in robust sd (1.4826 MAD) of the G1 nuclei above their median; for S
  nuclei in mid S (foci at full contrast) and, at S entry and exit, by foci contrast
  (``s_visibility.s_contrast``: :func:`pcnacycle.simulation.render.foci_contrast` of the frame's place in S);
- **real PCNA cells** (``--biolapse-git``: Biolapse's 7 tracked cells with a person's phase marks, as
  ``real_pcna.py`` extracts them), each crop shrunk so that its nucleus is 30.7 px across (the movie's own
  nuclei) and measured on the person's mask: the area under the ROC curve of log texture for S against
  G1/G2, pooled and for early, mid and late S.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/texture_rim.py --runs OUT [--movies dev-10min ...] \\
        [--biolapse-git /work/.mirror/lebrat+Biolapse/repo/.git]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from s_visibility import s_contrast  # beside this script
from scipy.stats import rankdata
from skimage import io, transform

from pcnacycle.evaluation.tracks import _frame_matches, _label_frames
from pcnacycle.tracking.detections import nuclear_texture

RIMS = (1, 2, 3)
BIOLAPSE_DIAMETER = 30.7  # px, the median nucleus of Biolapse's two fields (real_pcna.py)


def _texture_by_track(labels: np.ndarray, image: np.ndarray, rim: int) -> pd.Series:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return pd.Series(nuclear_texture(labels, image, ids, rim=rim), index=ids)


def simulated(folder: Path, name: str) -> pd.DataFrame:
    movie, run = folder / "movies" / name, folder / "runs" / name
    truth_labels, run_labels = tifffile.imread(movie / "truth" / "labels.tif"), tifffile.imread(run / "masks.tif")
    pcna = tifffile.imread(movie / "pcna.tif")
    truth = pd.read_csv(movie / "truth" / "objects.csv").sort_values(["track", "frame"])
    truth["contrast"], truth["side"] = np.nan, ""
    for _, cell in truth.groupby("track"):
        in_s = cell.index[cell["phase"] == "S"]
        if len(in_s) >= 4 and cell["phase"].iloc[0] != "S" and cell["phase"].iloc[-1] != "S":  # complete S
            truth.loc[in_s, "contrast"] = s_contrast(len(in_s))
            truth.loc[in_s, "side"] = np.where(np.arange(len(in_s)) < len(in_s) / 2, "entry", "exit")
    matches = _frame_matches(_label_frames(movie / "truth" / "labels.tif"), _label_frames(run / "masks.tif"))
    pred_of = matches.set_index(["frame", "truth"])["pred"]
    rows = []
    for frame in range(len(truth_labels)):
        cells = truth[truth["frame"] == frame]
        for rim in RIMS:
            on_truth = _texture_by_track(truth_labels[frame], pcna[frame], rim)
            on_run = _texture_by_track(run_labels[frame], pcna[frame], rim)
            pred = [pred_of.get((frame, track)) for track in cells["track"]]
            rows.append(cells.assign(rim=rim, truth_mask=on_truth.reindex(cells["track"]).to_numpy(),
                                     run_mask=[on_run.get(p, np.nan) if p is not None else np.nan for p in pred]))
    table = pd.concat(rows)
    result = []
    long = table.melt(id_vars=["rim", "phase", "contrast", "side"], value_vars=["truth_mask", "run_mask"],
                      var_name="mask")
    for (rim, mask), values in long.groupby(["rim", "mask"]):
        x = np.log(values["value"].where(values["value"] > 0))
        g1 = x[values["phase"] == "G1"]
        sd = 1.4826 * (g1 - g1.median()).abs().median()
        row = {"movie": name, "mask": mask, "rim": rim,
               "mid S": ((x[values["contrast"] >= 0.95] - g1.median()) / sd).median()}
        for low, high in ((0.2, 0.5), (0.5, 0.95)):
            for side in ("entry", "exit"):
                chosen = (values["contrast"] >= low) & (values["contrast"] < high) & (values["side"] == side)
                row[f"{side} {low}-{high}"] = ((x[chosen] - g1.median()) / sd).median()
        result.append(row)
    return pd.DataFrame(result)


def _auc(positive: np.ndarray, values: np.ndarray) -> float:
    ranks = rankdata(values)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def biolapse(git_dir: Path) -> pd.DataFrame:
    import real_pcna  # beside this script

    with tempfile.TemporaryDirectory() as scratch:
        folder = real_pcna.extract(git_dir, Path(scratch))
        base = folder / "Data/Outputs/nn"
        marks = real_pcna.person_marks(folder / "cells.csv")
        rows = []
        for cell in sorted(marks):
            for crop in sorted((base / "zoom" / cell).glob("*.png")):
                mask_path = base / "zoom_mask" / cell / crop.name
                mark = real_pcna.person_mark(marks[cell], int(crop.stem))  # crops are named by the movie's frame
                if not mask_path.exists() or mark is None:
                    continue
                image, mask = io.imread(crop).astype(np.float64), io.imread(mask_path) > 0
                if image.shape != mask.shape or mask.sum() < 50:
                    continue  # a mask of another crop (real_pcna.py leaves these cells out too)
                factor = BIOLAPSE_DIAMETER / (2 * np.sqrt(mask.sum() / np.pi))
                shape = tuple(max(int(round(n * factor)), 8) for n in image.shape)
                small = transform.resize(image, shape, order=1, anti_aliasing=True, preserve_range=True)
                small_mask = (transform.resize(mask.astype(np.float64), shape, order=1) > 0.5).astype(np.int32)
                rows.append({"cell": cell, "mark": mark,
                             **{rim: nuclear_texture(small_mask, small, np.array([1]), rim=rim)[0] for rim in RIMS}})
    table = pd.DataFrame(rows)
    in_s = table["mark"].str.endswith("S").to_numpy()
    result = []
    for rim in RIMS:
        x = np.log(table[rim].to_numpy())
        row = {"rim": rim, "frames": len(table), "cells": table["cell"].nunique(),
               "AUC S vs G1/G2": _auc(in_s, x)}
        for mark in ("earlyS", "midS", "lateS"):
            chosen = (table["mark"] == mark).to_numpy() | ~in_s
            row[f"AUC {mark}"] = _auc((table["mark"] == mark).to_numpy()[chosen], x[chosen])
        result.append(row)
    return pd.DataFrame(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, help="a phase_durations.py --out folder with movies/ and runs/")
    parser.add_argument("--movies", nargs="+", default=["dev-10min", "dev-20min", "dev-8min"])
    parser.add_argument("--biolapse-git", type=Path, help="Biolapse's git directory (the fetch tool's mirror)")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    if args.runs:
        print(pd.concat([simulated(args.runs, name) for name in args.movies]).round(1).to_string(index=False))
    if args.biolapse_git:
        print(biolapse(args.biolapse_git).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
