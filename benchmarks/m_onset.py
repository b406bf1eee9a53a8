"""What a nucleus shows at M's first frames, read against its own previous frames: p_M, brightness, area, texture.

For each RUN MOVIE pair (a run of a ``pcnacycle simulate`` movie and that movie), each run nucleus matched
(IoU ≥ 0.5) to a true nucleus gets, per feature (log mean PCNA, log area, log texture, log odds of p_M),
its change from the median of its track's previous five rows. Printed: the median and robust sd
(1.4826 × MAD) of that change over G2 frames that follow a G2 frame (how much a G2 nucleus moves from frame
to frame), and its median on the first, second and third M frame of every cell, with the detector's p_M
there, the mean of the resolver's M evidence from p_M (``mitosis_log_ratio``, which reads p_M against the
cell's own level) and the share resolved M.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/m_onset.py RUN MOVIE [RUN MOVIE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.evaluation.tracks import match_frame
from pcnacycle.tracking.evidence import mitosis_log_ratio

FEATURES = {"brightness": "mean_pcna", "area": "area", "texture": "texture_pcna", "p_M log odds": "p_M"}


def changes(objects: pd.DataFrame) -> pd.DataFrame:
    """Each feature's change from the median of the track's previous five rows (NaN for a track's first row)."""
    objects = objects.sort_values(["track", "frame"]).copy()
    objects["M evidence"] = mitosis_log_ratio(objects["p_M"].to_numpy(), objects["track"].to_numpy(),
                                              objects["frame"].to_numpy())
    for name, column in FEATURES.items():
        values = objects[column].to_numpy(np.float64)
        if column == "p_M":
            p = np.clip(values, 1e-3, 1 - 1e-3)
            values = np.log(p / (1 - p))
        else:
            values = np.log(values)
        series = pd.Series(values, index=objects.index)
        level = series.groupby(objects["track"]).transform(lambda v: v.shift(1).rolling(5, min_periods=1).median())
        objects[name] = series - level
    return objects


def matched(run: Path, movie: Path) -> pd.DataFrame:
    truth = tifffile.imread(movie / "truth" / "labels.tif")
    pred = tifffile.imread(run / "masks.tif")
    pairs = pd.concat([match_frame(truth[t], pred[t]).assign(frame=t) for t in range(len(truth))])
    objects = changes(pd.read_csv(run / "objects.csv")).rename(columns={"track": "pred"})
    true = pd.read_csv(movie / "truth" / "objects.csv").sort_values(["track", "frame"])
    true["previous"] = true.groupby("track")["phase"].shift(1)
    true["m_frame"] = true.groupby(["track", (true["phase"] != true["previous"]).cumsum()]).cumcount() + 1
    table = pairs.merge(true.rename(columns={"track": "truth", "phase": "true_phase"})
                        [["frame", "truth", "true_phase", "previous", "m_frame"]], on=["frame", "truth"])
    return table.merge(objects[["frame", "pred", "p_M", "phase", "M evidence", *FEATURES]], on=["frame", "pred"])


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for run, movie in zip(map(Path, args[::2]), map(Path, args[1::2])):
        table = matched(run, movie)
        g2 = table[(table["true_phase"] == "G2") & (table["previous"] == "G2")]
        spread = {n: f"{g2[n].median():+.3f} / {1.4826 * (g2[n] - g2[n].median()).abs().median():.3f}"
                  for n in FEATURES}
        print(f"{run}: G2 frame to frame (median / robust sd): {spread}; "
              f"M evidence in G2, mean {g2['M evidence'].mean():+.2f}")
        mitotic = table[table["true_phase"] == "M"]
        for k in (1, 2, 3):
            at = mitotic[mitotic["m_frame"] == k]
            medians = {n: round(float(at[n].median()), 3) for n in FEATURES}
            print(f"  M frame {k} ({len(at)} nuclei): {medians}, p_M {at['p_M'].median():.2f}, "
                  f"M evidence mean {at['M evidence'].mean():+.2f}, resolved M {(at['phase'] == 'M').mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
