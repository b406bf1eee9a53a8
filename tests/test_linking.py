"""FastLapTrack finds exactly the links laptrack's own LapTrack finds, in a fraction of the time."""

import numpy as np
import pytest
from laptrack import LapTrack

from pcnacycle.tracking.linking import FastLapTrack


def moving_cells(frames=30, cells=60, seed=0):
    """Cells random-walking and dividing, a few detections missed, one empty frame: one (n, 2) array per frame."""
    rng = np.random.default_rng(seed)
    position = rng.uniform(0, 400, (cells, 2))
    coords = []
    for t in range(frames):
        seen = rng.uniform(size=len(position)) > 0.05
        coords.append(position[seen] if t != 12 else np.zeros((0, 2)))
        position = position + rng.normal(0, 2.5, position.shape)
        dividing = rng.uniform(size=len(position)) < 0.03
        offset = rng.normal(0, 4, (int(dividing.sum()), 2))
        position = np.vstack([position[~dividing], position[dividing] + offset, position[dividing] - offset])
        position = position[rng.permutation(len(position))]  # detection order carries no identity
    return coords


def laptrack_edges(coords, **settings):
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in coords])])
    graph = LapTrack(**settings).predict(coords)
    return {(int(offsets[a[0]] + a[1]), int(offsets[b[0]] + b[1])) for a, b in graph.edges()}


@pytest.mark.parametrize("gap, division", [(3, 25.0), (3, False), (False, 25.0)])
def test_the_links_are_laptracks_own(gap, division):
    coords = moving_cells()
    reach = 12.0
    settings = {"metric": "sqeuclidean", "cutoff": reach**2, "gap_closing_cutoff": reach**2 if gap else False,
                "gap_closing_max_frame_count": gap or 2,
                "splitting_cutoff": division**2 if division else False, "merging_cutoff": False,
                "track_start_cost": reach**2, "track_end_cost": reach**2, "segment_start_cost": 25.0**2,
                "segment_end_cost": 25.0**2, "no_splitting_cost": 25.0**2}
    expected = laptrack_edges(coords, **settings)
    found = FastLapTrack(**settings).predict_edges(coords)
    assert {tuple(e) for e in found.tolist()} == expected and len(found) == len(expected)
    out_degree = np.bincount(found[:, 0])
    assert (out_degree == 2).any() == bool(division)  # divisions found only when asked for
    steps = np.searchsorted(np.cumsum([len(c) for c in coords]), found, side="right")
    assert ((steps[:, 1] - steps[:, 0]) > 1).any() == bool(gap)  # gaps closed only when asked for


def test_no_detections_give_no_links():
    tracker = FastLapTrack(cutoff=100.0, gap_closing_cutoff=100.0, splitting_cutoff=100.0, merging_cutoff=False)
    assert tracker.predict_edges([np.zeros((0, 2)), np.zeros((0, 2))]).shape == (0, 2)
