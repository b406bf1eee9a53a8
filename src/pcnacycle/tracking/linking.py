"""laptrack's linking with its slow steps vectorised: the same cost matrices, the same assignments.

laptrack (0.16–0.17) builds the gap-closing and splitting candidates of its
segment-linking step one segment at a time through ``DataFrame.apply``, and
links frames with a dense distance matrix per frame pair: 95 % of tracking
time at 10⁵ detections. :class:`FastLapTrack` overrides those two steps.
Candidates come from KD-trees (only pairs within the cut-off), and every cost
matrix is built with the same entries, in the same order and the same float32
values, as laptrack's own code, then solved by laptrack's own
:func:`build_frame_cost_matrix` / :func:`build_segment_cost_matrix` and
:func:`lap_optimization`, so the links are the same as ``LapTrack``'s.

Only what :func:`pcnacycle.tracking.tracker.track` uses is taken over: the
``sqeuclidean`` metric, no merging, no known edges (``connected_edges``), the
serial backend. Anything else goes to laptrack's own code.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from laptrack import LapTrack
from laptrack._coo_matrix_builder import coo_matrix_builder
from laptrack._cost_matrix import build_frame_cost_matrix, build_segment_cost_matrix
from laptrack._optimization import lap_optimization
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree


def pairs_within(points_a: np.ndarray, points_b: np.ndarray,
                 cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j) with squared distance below ``cutoff``, sorted by i then j, and that squared distance.

    The distance is computed as ``scipy.spatial.distance.cdist(..., "sqeuclidean")``
    computes it (same operations, same float64 result), so a pair is kept
    exactly when laptrack keeps it.

    Parameters
    ----------
    points_a : (n, d) float64
    points_b : (m, d) float64
    cutoff : float, squared distance (strict upper bound)

    Returns
    -------
    rows : (k,) int64, cols : (k,) int64, squared_distance : (k,) float64
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if len(points_a) == 0 or len(points_b) == 0:
        return empty
    # a slightly larger radius so no pair is lost to rounding; the exact test follows
    radius = np.sqrt(cutoff) * (1 + 1e-9) + 1e-12
    candidates = cKDTree(points_a).sparse_distance_matrix(cKDTree(points_b), radius, output_type="ndarray")
    if len(candidates) == 0:
        return empty
    rows, cols = candidates["i"].astype(np.int64), candidates["j"].astype(np.int64)
    difference = points_a[rows] - points_b[cols]
    squared = (difference * difference).sum(axis=1)
    keep = squared < cutoff
    rows, cols, squared = rows[keep], cols[keep], squared[keep]
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], squared[order]


class FastLapTrack(LapTrack):
    """:class:`laptrack.LapTrack` whose :meth:`predict_edges` builds the same costs vectorised, without networkx.

    ``motion_persistence`` (0 by default: laptrack's own links) links each
    nucleus from where its last step predicts it, ``position + persistence ×
    last step``, instead of from where it is; ``None`` estimates the
    persistence from the movie (:func:`step_persistence` of a first, static
    linking). Only frame-to-frame links use it; gap closing and divisions
    measure from the last position.
    """

    motion_persistence: float | None = 0.0
    #: the persistence the last :meth:`predict_edges` linked with (the estimate when ``motion_persistence`` is None)
    persistence_used: float = 0.0

    def _fast(self) -> bool:
        plain = all(metric == "sqeuclidean" for metric in (self.metric, self.gap_closing_metric,
                                                            self.splitting_metric))
        return plain and not self.merging_cutoff and self.parallel_backend == "serial"

    def predict_edges(self, coords) -> np.ndarray:
        """Links between detections as :meth:`LapTrack.predict` finds them.

        Parameters
        ----------
        coords : list of (n_t, d) float arrays, one per frame (empty frames as (0, d))

        Returns
        -------
        (E, 2) int64
            (earlier node, later node); node ``offsets[t] + i`` is detection
            ``i`` of frame ``t``, ``offsets`` the cumulative counts of the frames
            before. A node with two later links is a division.
        """
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in coords])]).astype(np.int64)
        if not self._fast():  # laptrack's own code, its graph turned into node numbers
            graph = self.predict(coords)
            return np.array([(offsets[a[0]] + a[1], offsets[b[0]] + b[1]) for a, b in graph.edges()],
                            np.int64).reshape(-1, 2)
        dimensions = max((np.shape(c)[-1] for c in coords if len(c)), default=2)
        points = [np.asarray(c, np.float64).reshape(len(c), dimensions) for c in coords]
        persistence = self.motion_persistence
        links = self._frame_links(points, offsets, persistence or 0.0)
        if persistence is None:  # the static links measure how persistently the cells move
            persistence = step_persistence(np.concatenate(points), links)
            if persistence > 0:
                links = self._frame_links(points, offsets, persistence)
        self.persistence_used = float(persistence)
        first, last = segment_ends(offsets, links)
        return np.concatenate([links, self._segment_links(points, offsets, first, last)])

    def _frame_links(self, points: list[np.ndarray], offsets: np.ndarray, persistence: float = 0.0) -> np.ndarray:
        """laptrack's frame-to-frame step: one assignment per pair of frames. (E, 2) int64 node pairs.

        With ``persistence`` > 0 a nucleus linked from the frame before is
        looked for at ``position + persistence × (position - previous position)``.
        """
        links = []
        came_from = np.full(int(offsets[-1]), -1, np.int64)  # node each node was linked from
        all_points = np.concatenate(points) if persistence > 0 else None
        for frame, (before, after) in enumerate(pairwise(points)):
            if len(before) == 0 or len(after) == 0:
                continue
            if persistence > 0:
                previous = came_from[offsets[frame]:offsets[frame + 1]]
                step = np.where(previous[:, None] >= 0, before - all_points[np.maximum(previous, 0)], 0.0)
                before = before + persistence * step
            rows, cols, cost = pairs_within(before, after, self.cutoff)
            distances = coo_matrix_builder((len(before), len(after)), row=rows, col=cols, data=cost,
                                           dtype=np.float64)
            xs, _ = lap_optimization(build_frame_cost_matrix(distances, track_start_cost=self.track_start_cost,
                                                             track_end_cost=self.track_end_cost))
            linked = np.flatnonzero(xs[:len(before)] < len(after))
            links.append(np.column_stack([offsets[frame] + linked, offsets[frame + 1] + xs[linked]]))
            came_from[links[-1][:, 1]] = links[-1][:, 0]
        return np.concatenate(links).astype(np.int64) if links else np.zeros((0, 2), np.int64)

    def _segment_links(self, points, offsets, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """laptrack's gap-closing and splitting step over the segments. (E, 2) int64 node pairs."""
        if not (self.gap_closing_cutoff or self.splitting_cutoff) or len(first) == 0:
            return np.zeros((0, 2), np.int64)
        frame_of = np.repeat(np.arange(len(points)), np.diff(offsets))
        all_points = np.concatenate(points)
        n = len(first)
        gap = coo_matrix_builder((n, n), dtype=np.float32)
        if self.gap_closing_cutoff:
            rows, cols, cost = pairs_within(all_points[last], all_points[first], self.gap_closing_cutoff)
            step = frame_of[first[cols]] - frame_of[last[rows]]
            keep = (step >= 1) & (step <= self.gap_closing_max_frame_count)
            gap = coo_matrix_builder((n, n), row=rows[keep], col=cols[keep], data=cost[keep], dtype=np.float32)
        split, mothers = coo_matrix_builder((n, 0), dtype=np.float32), np.zeros(0, np.int64)
        if self.splitting_cutoff:
            split, mothers = self._splitting_candidates(points, offsets, frame_of[first], all_points[first])
        merge = coo_matrix_builder((n, 0), dtype=np.float32)  # merging is off
        cost_matrix = build_segment_cost_matrix(
            gap, split, merge, self.segment_start_cost, self.segment_end_cost, self.no_splitting_cost,
            self.no_merging_cost, self.alternative_cost_factor, self.alternative_cost_percentile,
            self.alternative_cost_percentile_interpolation)
        if cost_matrix is None:
            return np.zeros((0, 2), np.int64)
        xs, ys = lap_optimization(cost_matrix)
        closed = np.flatnonzero(xs[:n] < n)
        divided = np.flatnonzero((ys[:n] >= n) & (ys[:n] < n + len(mothers)))
        return np.concatenate([np.column_stack([last[closed], first[xs[closed]]]),
                               np.column_stack([mothers[ys[divided] - n], first[divided]])]).astype(np.int64)

    def _splitting_candidates(self, points, offsets, first_frame: np.ndarray, first_points: np.ndarray):
        """Mothers for each segment's first detection: any detection of the frame before, within the cut-off.

        Returns the (segments, mothers) cost matrix and the mothers' node
        numbers, numbered as laptrack's ``np.unique`` of (frame, index) numbers them.
        """
        rows, mothers, costs = [], [], []
        for frame in np.unique(first_frame):
            if frame == 0 or len(points[frame - 1]) == 0:
                continue
            segments = np.flatnonzero(first_frame == frame)
            seg_rows, mother, cost = pairs_within(first_points[segments], points[frame - 1], self.splitting_cutoff)
            rows.append(segments[seg_rows])
            mothers.append(offsets[frame - 1] + mother)
            costs.append(cost)
        n = len(first_frame)
        if not rows:
            return coo_matrix_builder((n, 0), dtype=np.float32), np.zeros(0, np.int64)
        rows, mothers, costs = (np.concatenate(x) for x in (rows, mothers, costs))
        # node numbers grow with (frame, index), so their order is laptrack's order of (frame, index) pairs
        candidates, column = np.unique(mothers, return_inverse=True)
        column = column.ravel()
        order = np.lexsort((column, rows))
        matrix = coo_matrix_builder((n, len(candidates)), row=rows[order], col=column[order], data=costs[order],
                                    dtype=np.float32)
        return matrix, candidates


def step_persistence(points: np.ndarray, links: np.ndarray, min_pairs: int = 50) -> float:
    """How much of a nucleus' last step it takes again: the least-squares ``a`` in next step ≈ a × last step.

    Cells migrate persistently (a step predicts the next) or not at all
    (random steps, or centroid jitter, which makes consecutive steps
    anti-correlated); the movie's own links say which.

    Parameters
    ----------
    points : (n, d) float64, every node's position
    links : (E, 2) int64, frame-to-frame links (earlier node, later node), one in and one out per node at most
    min_pairs : int, fewer consecutive step pairs than this give 0

    Returns
    -------
    float in [0, 1]
    """
    if len(links) == 0:
        return 0.0
    came_from = np.full(len(points), -1, np.int64)
    came_from[links[:, 1]] = links[:, 0]
    middle, last = links[:, 0], links[:, 1]
    keep = came_from[middle] >= 0
    if keep.sum() < min_pairs:
        return 0.0
    first, middle, last = came_from[middle[keep]], middle[keep], last[keep]
    before, after = points[middle] - points[first], points[last] - points[middle]
    squared = float((before * before).sum())
    return float(np.clip((before * after).sum() / squared, 0.0, 1.0)) if squared > 0 else 0.0


def segment_ends(offsets: np.ndarray, links: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last node of each segment (a chain of frame-to-frame links), in laptrack's segment order.

    laptrack numbers segments as ``networkx.connected_components`` yields
    them: in the order of their first node, i.e. by (first frame, first index).

    Parameters
    ----------
    offsets : (T + 1,) int64, node numbers where each frame starts
    links : (E, 2) int64 node pairs

    Returns
    -------
    first, last : (S,) int64 node numbers
    """
    nodes = int(offsets[-1])
    if nodes == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    graph = sparse.coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(nodes, nodes))
    count, component = csgraph.connected_components(graph, directed=False)
    # nodes are numbered frame by frame, so a segment's smallest node is its first and its largest its last
    first = np.full(count, nodes, np.int64)
    np.minimum.at(first, component, np.arange(nodes))
    last = np.zeros(count, np.int64)
    np.maximum.at(last, component, np.arange(nodes))
    order = np.argsort(first, kind="stable")
    return first[order], last[order]
