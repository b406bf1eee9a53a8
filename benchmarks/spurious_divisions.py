"""What a run's spurious divisions are: each predicted division not counted as found, sorted by its mother.

``evaluate-tracks`` counts a predicted division as found when its mother's last nuclei are matched to a
true mother and a daughter's first nuclei to one of her true daughters (within a frame). This script takes
the others and sorts them by what the mother's last nucleus is matched to in the truth (IoU ≥ 0.5):

- a true mother that divides later (how many frames before her division the prediction ended her);
- a cell that does not divide then (a true cell that is no mother, or divides earlier);
- no true nucleus: a fragment (smaller than 0.4 of the run's median nucleus area) or another unmatched one.

Usage (from the repository root; RUN a ``pcnacycle run`` folder, MOVIE a ``pcnacycle simulate`` folder)::

    PYTHONPATH=src .venv/bin/python benchmarks/spurious_divisions.py RUN MOVIE [RUN MOVIE ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pandas as pd

from pcnacycle.evaluation.tracks import _frame_matches, _label_frames
from pcnacycle.tracking.tracker import track_table

FRAGMENT = 0.4  # of the run's median nucleus area


def spurious_divisions(run: Path, movie: Path) -> Counter:
    """Counts of the run's unmatched divisions by kind (see the module notes)."""
    matches = _frame_matches(_label_frames(movie / "truth" / "labels.tif"), _label_frames(run / "masks.tif"))
    objects, truth = pd.read_csv(run / "objects.csv"), pd.read_csv(movie / "truth" / "objects.csv")
    predicted, true = track_table(objects).set_index("track"), track_table(truth).set_index("track")
    identity = matches.groupby(["pred", "frame"])["truth"].first()
    true_parent = true["parent"]
    daughters_per_mother = true_parent[true_parent > 0].value_counts()
    true_mothers = set(daughters_per_mother.index[daughters_per_mother >= 2])
    median_area = objects["area"].median()
    kinds = Counter()
    for mother, daughters in predicted[predicted["parent"] > 0].groupby("parent"):
        last = int(predicted.at[mother, "last_frame"])
        mother_cells = {identity.get((mother, f)) for f in (last - 1, last)} - {None}
        found = any(truth_cell in true_mothers and true_parent.get(identity.get((int(d), f))) == truth_cell
                    for d, row in daughters.iterrows() for f in (int(row.first_frame), int(row.first_frame) + 1)
                    for truth_cell in mother_cells)
        if found:
            continue
        cell = identity.get((mother, last))
        if cell is None:
            small = objects.loc[objects["track"] == mother, "area"].iloc[-1] < FRAGMENT * median_area
            kinds["fragment" if small else "unmatched"] += 1
        elif cell in true_mothers and true.at[cell, "last_frame"] > last:
            kinds[f"true mother, {true.at[cell, 'last_frame'] - last} frame(s) early"] += 1
        else:
            kinds["a cell that does not divide then"] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", nargs="+", type=Path, metavar="RUN MOVIE")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give RUN MOVIE pairs")
    for run, movie in zip(args.pairs[::2], args.pairs[1::2]):
        kinds = spurious_divisions(run, movie)
        print(f"{run}: {sum(kinds.values())} spurious;", dict(sorted(kinds.items())))


if __name__ == "__main__":
    main()
