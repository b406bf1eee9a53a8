"""FastLapTrack finds exactly the links laptrack's own LapTrack finds, in a fraction of the time."""

import numpy as np
import pytest
from laptrack import LapTrack

from pcnacycle.tracking.linking import FastLapTrack, step_persistence


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


def crossing_cells(frames=30, speed=8.0):
    """Two cells on parallel lines 4 px apart moving in opposite directions at ``speed`` px per frame:
    they pass each other, and at one frame each is where the other was. (frames, 2, 2): frame, cell, (y, x)."""
    t = np.arange(frames, dtype=float)[:, None]
    first = np.hstack([np.full_like(t, 50.0), 20.0 + speed * t])
    second = np.hstack([np.full_like(t, 54.0), 20.0 + speed * (frames - 1) - speed * t])
    return np.stack([first, second], axis=1)


def identities_kept(links, frames):
    """True when every link joins the same cell (nodes are numbered frame by frame, cell 0 then cell 1)."""
    return bool(len(links) == 2 * (frames - 1) and ((links[:, 0] % 2) == (links[:, 1] % 2)).all())


def test_cells_passing_each_other_keep_their_tracks_when_motion_is_predicted():
    frames = 30
    coords = list(crossing_cells(frames))
    settings = {"cutoff": 20.0**2, "gap_closing_cutoff": False, "splitting_cutoff": False, "merging_cutoff": False,
                "track_start_cost": 20.0**2, "track_end_cost": 20.0**2}
    static = FastLapTrack(**settings).predict_edges(coords)
    assert not identities_kept(static, frames)  # linked by distance alone, the two swap where they meet
    tracker = FastLapTrack(**settings, motion_persistence=None)
    assert identities_kept(tracker.predict_edges(coords), frames)
    assert tracker.persistence_used == pytest.approx(1.0, abs=0.05)  # straight lines: every step repeats


def test_persistence_is_estimated_from_the_steps():
    rng = np.random.default_rng(3)
    # 40 cells, 30 frames; links follow each cell from frame to frame (node = frame * 40 + cell)
    cells, frames = 40, 30
    node = np.arange(cells * frames).reshape(frames, cells)
    links = np.column_stack([node[:-1].ravel(), node[1:].ravel()])
    velocity = rng.normal(0, 2, (cells, 2))
    straight = (np.arange(frames)[:, None, None] * velocity).reshape(-1, 2)
    assert step_persistence(straight, links) == pytest.approx(1.0)
    jitter = rng.normal(0, 1, (frames * cells, 2))  # cells that stay put: steps of centroid noise alternate
    assert step_persistence(jitter, links) == 0.0
    walk = np.cumsum(rng.normal(0, 1, (frames, cells, 2)), axis=0).reshape(-1, 2)  # memoryless steps
    assert step_persistence(walk, links) < 0.15
    assert step_persistence(straight, links[:10]) == 0.0  # too few step pairs to say
