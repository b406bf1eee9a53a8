"""Where a run puts each phase boundary against the truth, in frames, and what the detector saw at S's ends (issue 14).

A duration bias is the sum of two boundary offsets. For every pair of tracks that are the same cell
(``evaluate-tracks``' matching: each holds over half of the other's frames), this takes each boundary
both sides show inside the track (S entry, S exit, M entry; a daughter's birth) and counts its offset,
predicted minus true frame. For the first and last frame of each complete S phase of the truth it adds
the foci contrast the simulator drew there (``s_visibility.s_contrast``: phases last whole frames, so
the first S frame is always at ``0.5 / S_frames`` of S), the detector's share of S calls and the
resolved share of S on the nuclei matched there (IoU ≥ 0.5).

Usage (from the repository root; RUN a ``pcnacycle run`` folder, MOVIE its ``pcnacycle simulate`` folder)::

    PYTHONPATH=src .venv/bin/python benchmarks/phase_boundaries.py RUN MOVIE [RUN MOVIE ...]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from s_visibility import s_contrast

from pcnacycle.evaluation.tracks import _frame_matches, _label_frames, match_tracks

#: Boundaries: (name, phase before, phase after); a birth has no phase before inside the track.
BOUNDARIES = [("birth", None, "G1"), ("S entry", "G1", "S"), ("S exit", "S", "G2"), ("M entry", "G2", "M")]


def _boundary_frames(objects: pd.DataFrame) -> pd.DataFrame:
    """Per track: the first frame of each boundary's later phase, where the track shows the boundary (NaN else)."""
    rows = objects.sort_values(["track", "frame"])
    previous = rows.groupby("track")["phase"].shift(1)
    result = {}
    for name, before, after in BOUNDARIES:
        if before is None:
            first = rows.groupby("track").head(1)
            starts = first[(first["phase"] == after) & (first["parent"] > 0)]
        else:
            starts = rows[(rows["phase"] == after) & (previous == before)]
        result[name] = starts.groupby("track")["frame"].first()
    return pd.DataFrame(result)


def _s_ends(truth: pd.DataFrame) -> pd.DataFrame:
    """The truth's rows of the first and last frame of each complete S phase (G1 just before it, G2 just
    after, in the same cell), with ``end`` (which of the two) and the foci ``contrast`` drawn there."""
    rows = truth.sort_values(["track", "frame"]).copy()
    rows["before"] = rows.groupby("track")["phase"].shift(1)
    rows["after"] = rows.groupby("track")["phase"].shift(-1)
    s_rows = rows[rows["phase"] == "S"].copy()
    s_rows["s_frames"] = s_rows.groupby("track")["frame"].transform("size")
    s_rows["k"] = s_rows.groupby("track").cumcount()
    entered = s_rows[s_rows["k"] == 0].set_index("track")["before"] == "G1"
    left = s_rows[s_rows["k"] == s_rows["s_frames"] - 1].set_index("track")["after"] == "G2"
    complete = s_rows["track"].map(entered & left).fillna(False).astype(bool)
    ends = s_rows[complete & ((s_rows["k"] == 0) | (s_rows["k"] == s_rows["s_frames"] - 1))].copy()
    ends["end"] = np.where(ends["k"] == 0, "first S frame", "last S frame")
    ends["contrast"] = [s_contrast(int(n))[int(k)] for n, k in zip(ends["s_frames"], ends["k"])]
    return ends


def boundary_offsets(run: Path, movie: Path) -> tuple[dict[str, Counter], pd.DataFrame]:
    """Offsets (frames, predicted − true) per boundary, and the matched nuclei of S's first and last frames."""
    matches = _frame_matches(_label_frames(movie / "truth" / "labels.tif"), _label_frames(run / "masks.tif"))
    predicted, truth = pd.read_csv(run / "objects.csv"), pd.read_csv(movie / "truth" / "objects.csv")
    pairs = match_tracks(matches, truth.groupby("track").size(), predicted.groupby("track").size())
    true_bounds, pred_bounds = _boundary_frames(truth), _boundary_frames(predicted)
    offsets = {name: Counter() for name, _, _ in BOUNDARIES}
    for name in offsets:
        true_frame = true_bounds[name].reindex(pairs["truth"]).to_numpy()
        pred_frame = pred_bounds[name].reindex(pairs["pred"]).to_numpy()
        both = np.isfinite(true_frame) & np.isfinite(pred_frame)
        offsets[name].update((pred_frame[both] - true_frame[both]).astype(int).tolist())
    ends = _s_ends(truth)
    seen = matches.merge(ends, left_on=["frame", "truth"], right_on=["frame", "track"])
    seen = seen.merge(predicted[["frame", "track", "predicted_phase", "phase", "p_S"]].rename(
        columns={"track": "pred", "phase": "resolved"}), on=["frame", "pred"])
    return offsets, seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", nargs="+", type=Path, metavar="RUN MOVIE")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give RUN MOVIE pairs")
    for run, movie in zip(args.pairs[::2], args.pairs[1::2]):
        offsets, seen = boundary_offsets(run, movie)
        print(f"{run}:")
        for name, counts in offsets.items():
            n = sum(counts.values())
            mean = sum(k * v for k, v in counts.items()) / n if n else float("nan")
            print(f"  {name:8s} n={n:3d} mean offset {mean:+.2f} frames  {dict(sorted(counts.items()))}")
        for end, group in seen.groupby("end"):
            print(f"  {end}: n={len(group)}, foci contrast median {group['contrast'].median():.2f}, "
                  f"called S {np.mean(group['predicted_phase'] == 'S'):.2f} (mean p_S {group['p_S'].mean():.2f}), "
                  f"resolved S {np.mean(group['resolved'] == 'S'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
