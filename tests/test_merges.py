"""Neighbours outlined as one nucleus for a few frames are not a mother and her daughters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pcnacycle.pipeline import analyse
from pcnacycle.settings import RunSettings
from pcnacycle.tracking.merges import separate_merged_neighbours

SD = RunSettings().steady_log_area_sd


def rows(track, parent, frames, x, area, y=50.0):
    return [dict(frame=f, track=track, parent=parent, centroid_y=y, centroid_x=x, area=area) for f in frames]


def merged_pair(blob_area=620.0, left_after=300.0, right_after=300.0, partner_ends=9, granddaughters=False):
    """Cells at x = 40 (track 1) and x = 60 (track 2), 300 px, outlined as one at x = 50 after track 2 ends;
    from frame 12 on apart again, taken by the tracker for track 1's daughters 3 (x = 40) and 4 (x = 60)."""
    table = (rows(1, 0, range(0, 10), 40.0, 300.0) + rows(1, 0, range(10, 12), 50.0, blob_area)
             + rows(2, 0, range(0, partner_ends + 1), 60.0, 300.0)
             + rows(3, 1, range(12, 20), 40.0, left_after)
             + rows(4, 1, range(12, 20 if granddaughters else 30), 60.0, right_after))
    if granddaughters:  # the right one divides for real at frame 20
        table += rows(5, 4, range(20, 30), 54.0, 150.0) + rows(6, 4, range(20, 30), 66.0, 150.0)
    else:
        table += rows(3, 1, range(20, 30), 40.0, left_after)
    return pd.DataFrame(table)


def track_rows(result, track):
    return result[result["track"] == track].sort_values("frame")


def test_two_neighbours_outlined_as_one_go_on_as_themselves():
    result = separate_merged_neighbours(merged_pair(), merge_frames=3, steady_log_area_sd=SD)
    assert result.attrs["merges_undone"] == 1
    left, right = track_rows(result, 1), track_rows(result, 2)
    assert left["frame"].tolist() == [*range(10), *range(12, 30)]
    assert (left["centroid_x"] == 40).all() and (left["parent"] == 0).all()
    assert right["frame"].tolist() == [*range(10), *range(12, 30)]
    assert (right["centroid_x"] == 60).all() and (right["parent"] == 0).all()
    merged = result[result["centroid_x"] == 50]
    assert merged["track"].nunique() == 1 and merged["track"].iloc[0] not in (1, 2, 3, 4)
    assert (merged["parent"] == 0).all()
    assert (result["parent"] == 0).all()  # no division is left


def test_a_daughter_taken_back_keeps_her_own_daughters():
    result = separate_merged_neighbours(merged_pair(granddaughters=True), merge_frames=3, steady_log_area_sd=SD)
    right = track_rows(result, 2)
    assert right["frame"].tolist() == [*range(10), *range(12, 20)]
    assert (result.loc[result["track"].isin([5, 6]), "parent"] == 2).all()


def test_a_nucleus_and_a_speck_beside_it_keep_their_frames():
    # a 100-px speck (track 2) touching a 600-px nucleus is missed for two frames; then the nucleus "divides"
    # into itself and the speck: no two cells were outlined as one, so the nucleus keeps every frame
    table = pd.DataFrame(rows(1, 0, range(0, 12), 50.0, 600.0) + rows(2, 0, range(0, 10), 66.0, 100.0)
                         + rows(3, 1, range(12, 30), 50.0, 610.0) + rows(4, 1, range(12, 30), 66.0, 100.0))
    result = separate_merged_neighbours(table, merge_frames=3, steady_log_area_sd=SD)
    assert result.attrs["merges_undone"] == 1
    assert track_rows(result, 1)["frame"].tolist() == list(range(30))
    assert track_rows(result, 2)["frame"].tolist() == [*range(10), *range(12, 30)]
    assert set(result["track"]) == {1, 2} and (result["parent"] == 0).all()


def test_a_real_division_beside_a_lost_neighbour_is_kept():
    # the mother keeps her size (600 px) to the end and her daughters are half of it: not two nuclei leaving one
    table = pd.DataFrame(rows(1, 0, range(0, 12), 50.0, 600.0) + rows(2, 0, range(0, 10), 75.0, 300.0)
                         + rows(3, 1, range(12, 30), 40.0, 300.0) + rows(4, 1, range(12, 30), 60.0, 300.0))
    result = separate_merged_neighbours(table, merge_frames=3, steady_log_area_sd=SD)
    assert result.attrs["merges_undone"] == 0
    pd.testing.assert_frame_equal(result, table)


def test_what_leaves_the_blob_must_be_what_entered_it():
    # daughters of 150 px (half of each cell) and a blob too small to hold both cells: both divisions stand
    for table in (merged_pair(left_after=150.0, right_after=150.0), merged_pair(blob_area=350.0)):
        result = separate_merged_neighbours(table, merge_frames=3, steady_log_area_sd=SD)
        assert result.attrs["merges_undone"] == 0
        assert sorted(result.loc[result["parent"] > 0, "track"].unique()) == [3, 4]


def test_merge_frames_bounds_how_long_two_cells_may_look_as_one():
    table = merged_pair(partner_ends=7)  # outlined as one for frames 8 to 11 (track 1's 8 and 9 are x = 40 still)
    assert separate_merged_neighbours(table, merge_frames=3, steady_log_area_sd=SD).attrs["merges_undone"] == 0
    assert separate_merged_neighbours(merged_pair(), merge_frames=0, steady_log_area_sd=SD).attrs["merges_undone"] == 0


def test_a_run_resolves_the_two_neighbours_as_two_cells_in_g1():
    table = merged_pair().drop(columns=["track", "parent"])
    blob = table["area"] > 500
    table["p_G1/G2"] = np.where(blob, 0.2, 0.95)
    table["p_S"] = 0.03
    table["p_M"] = np.where(blob, 0.77, 0.02)  # the detector takes the blob for a mitotic cell, as it did
    table["label"] = np.arange(len(table)) + 1
    tracked, _, summary = analyse(table, 15.0, RunSettings(estimate_durations=False))
    assert summary["merges_undone"] == 1 and summary["divisions"] == 0
    for x in (40.0, 60.0):
        cell = tracked[tracked["centroid_x"] == x]
        assert cell["track"].nunique() == 1 and (cell["parent"] == 0).all()
        assert set(cell["phase"]) <= {"G1", "G2"}
    _, _, summary = analyse(table, 15.0, RunSettings(estimate_durations=False, merge_frames=0))
    assert summary["divisions"] == 1  # what the tracker made of it before
