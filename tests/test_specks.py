"""Specks, micronuclei and pieces of nuclei are no cells to follow: dropped before tracking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcnacycle.engine.scale import typical_nucleus_area
from pcnacycle.pipeline import analyse, drop_specks
from pcnacycle.settings import RunSettings


def movie(speck_area=40.0, frames=12):
    """Four G1 nuclei of 300 px standing still 60 px apart, and beside the first one a speck in frames 3–8."""
    rows = [dict(frame=t, centroid_y=50.0, centroid_x=40.0 + 60 * k, area=300.0)
            for t in range(frames) for k in range(4)]
    rows += [dict(frame=t, centroid_y=50.0, centroid_x=55.0, area=speck_area) for t in range(3, 9)]
    table = pd.DataFrame(rows).sort_values("frame", kind="stable").reset_index(drop=True)
    table["label"] = table.groupby("frame").cumcount() + 1
    table["p_G1/G2"], table["p_S"], table["p_M"] = 0.96, 0.02, 0.02
    return table


def test_a_speck_beside_a_nucleus_is_no_track_of_its_own():
    tracked, _, summary = analyse(movie(), 15.0, RunSettings(estimate_durations=False))
    assert summary["specks_dropped"] == 6 and summary["tracks"] == 4
    assert (tracked["area"] == 300).all() and len(tracked) == 48
    assert summary["nucleus_diameter_px"] == pytest.approx(2 * np.sqrt(300 / np.pi))
    _, _, summary = analyse(movie(), 15.0, RunSettings(estimate_durations=False, min_area_share=0))
    assert summary["specks_dropped"] == 0 and summary["tracks"] == 5  # what was tracked before


def test_small_nuclei_above_the_share_are_kept():
    tracked, _, summary = analyse(movie(speck_area=90.0), 15.0, RunSettings(estimate_durations=False))
    assert summary["specks_dropped"] == 0 and (tracked["area"] == 90).sum() == 6  # 0.3 of a nucleus


def test_many_specks_do_not_make_the_typical_nucleus_small():
    """60 specks of 20 px and 20 nuclei of 300 px: the plain median is a speck, the typical nucleus is not."""
    areas = np.r_[np.full(60, 20.0), np.full(20, 300.0)]
    assert np.median(areas) == 20 and typical_nucleus_area(areas) == 300
    # one frame, the objects 50 px apart: each its own track
    table = pd.DataFrame({"frame": 0, "centroid_y": 0.0, "centroid_x": 50.0 * np.arange(80), "area": areas,
                          "p_M": 0.0})
    kept = drop_specks(table, 0.25, max_distance=20.0, max_gap=2)
    assert len(kept) == 20 and (kept["area"] == 300).all()
    assert len(drop_specks(table, 0.0, 20.0, 2)) == 80 and len(drop_specks(table.iloc[:0], 0.25, 20.0, 2)) == 0
    assert typical_nucleus_area([]) is None and typical_nucleus_area([0.0]) is None


def test_a_nucleus_outlined_small_for_two_frames_keeps_them():
    table = movie()
    first = (table["centroid_x"] == 40.0) & table["frame"].isin([5, 6])
    table.loc[first, "area"] = 50.0  # the detector caught a piece of it in frames 5 and 6
    tracked, _, summary = analyse(table, 15.0, RunSettings(estimate_durations=False))
    assert summary["specks_dropped"] == 6  # the speck beside it, not its own frames
    assert len(tracked[tracked["centroid_x"] == 40.0]) == 12  # every frame of it


def test_a_nucleus_the_frame_cuts_is_no_speck():
    table = movie()
    table["edge"] = False
    table.loc[table["centroid_x"] == 55.0, "edge"] = True  # the "speck" is a nucleus leaving the field
    _, _, summary = analyse(table, 15.0, RunSettings(estimate_durations=False))
    assert summary["specks_dropped"] == 0 and summary["tracks"] == 5
