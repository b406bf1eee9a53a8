"""How grainy S nuclei are frame by frame from S entry and to S exit, on a simulated movie's true masks.

For each complete S phase of the truth, the log texture (``texture_pcna``, as ``run`` measures it) of its
first and last frames, in sd of the G1 nuclei's log texture above their mean: across all cells (what a
texture model of the whole movie sees) and against each cell's own G1 frames (what one reading a
nucleus against its own track sees). Prints one line per frame position.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/s_texture_profile.py bench-out/phase_durations_dev_rs/movies/dev-10min
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.tracking.detections import detections_table


def profile(folder: Path, positions: int = 5) -> pd.DataFrame:
    labels = tifffile.imread(folder / "truth" / "labels.tif")
    pcna = tifffile.imread(folder / "pcna.tif")
    truth = pd.read_csv(folder / "truth" / "objects.csv")
    probs = [np.full((int(frame.max()), 3), 1 / 3) for frame in labels]
    nuclei = detections_table(labels, probs, ["G1/G2", "S", "M"], pcna)
    table = nuclei.merge(truth[["frame", "track", "phase"]].rename(columns={"track": "label"}), on=["frame", "label"])
    table = table.sort_values(["label", "frame"]).assign(x=lambda t: np.log(t["texture_pcna"]))
    g1 = table[table["phase"] == "G1"]
    own = table["label"].map(g1.groupby("label")["x"].median())
    table["across"] = (table["x"] - g1["x"].mean()) / g1["x"].std()
    table["own"] = (table["x"] - own) / (g1["x"] - own[g1.index]).std()
    rows = []
    for _, cell in table.groupby("label"):
        in_s = cell.index[cell["phase"] == "S"]
        if len(in_s) < 2 * positions or cell["phase"].iloc[0] == "S" or cell["phase"].iloc[-1] == "S":
            continue  # complete S phases only
        for k in range(positions):
            rows.append({"from": "entry", "frame": k, **table.loc[in_s[k], ["across", "own"]].to_dict()})
            rows.append({"from": "exit", "frame": k, **table.loc[in_s[-1 - k], ["across", "own"]].to_dict()})
    return pd.DataFrame(rows).groupby(["from", "frame"]).agg(across=("across", "mean"), own=("own", "mean"),
                                                             phases=("own", "size"))


if __name__ == "__main__":
    for folder in map(Path, sys.argv[1:]):
        print(folder.name)
        print(profile(folder).round(2).to_string())
