"""Neighbours outlined as one nucleus for a few frames, and taken for a mother and her daughters.

Two nuclei that touch can be outlined as one for a frame or two and then
apart again. The tracker sees one track end beside a large nucleus, and that
nucleus "divide" into two: a false division that restarts one cell's cycle
and ends the other's track. On simulated movies at 15-minute frames these
were the G1 phases found hours too short (BENCHMARKS.md, "Neighbours
outlined as one"). :func:`separate_merged_neighbours` finds them by what a
division never shows: the two nuclei that leave the large one are, in size,
the two that met in it (a mother's daughters are each about half her size),
and the large one holds both of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tracker import COORDINATES

__all__ = ["separate_merged_neighbours"]

#: Sizes within this many ``steady_log_area_sd`` of each other are the same nucleus's.
_SAME_SIZE_SDS = 2.0


def separate_merged_neighbours(tracked: pd.DataFrame, merge_frames: int, steady_log_area_sd: float) -> pd.DataFrame:
    """Undo divisions that are two neighbours outlined as one nucleus for up to ``merge_frames`` frames.

    A mother with two daughters is such a merge when another track (the
    partner), without daughters, ends at most ``merge_frames`` frames before
    the mother's last frame, its last nucleus touching the mother's nucleus of
    the frame after (centroids closer than the sum of their equivalent radii);
    when the mother's nuclei since then (the merged ones, median area) hold
    the mother's and the partner's last nuclei before it together; and when,
    each daughter paired with the nearer of those two nuclei, every daughter
    is her nucleus's size. "The same size" is within ``2 × steady_log_area_sd``
    in log area. Of several partners the one nearest the merged nucleus is taken.

    Each daughter goes on as the track of the nucleus she was paired with,
    her daughters with her. The merged nuclei become a track of their own (no
    parent, no daughters), so both cells miss those frames as across a gap;
    but when the partner is a speck beside a nucleus (the merged nuclei are
    the mother's own size) they stay the mother's.

    Parameters
    ----------
    tracked : DataFrame
        :func:`pcnacycle.tracking.tracker.track` output: ``frame, track, parent,
        centroid_y, centroid_x, area``; without ``area`` or coordinates it is
        returned as it is.
    merge_frames : int
        Most frames two nuclei stay outlined as one; 0 turns this off.
    steady_log_area_sd : float
        sd of one nucleus's log area from frame to frame
        (:class:`~pcnacycle.settings.RunSettings`).

    Returns
    -------
    DataFrame
        ``tracked`` (same rows, index and columns) with ``track`` and ``parent``
        changed (new track ids follow the largest); the number of merges undone
        in ``result.attrs["merges_undone"]``.
    """
    result = tracked.copy()
    result.attrs["merges_undone"] = 0
    if merge_frames == 0 or len(tracked) == 0 or not {"area", *COORDINATES} <= set(tracked.columns):
        return result
    lineage = _Lineage(tracked)
    margin = _SAME_SIZE_SDS * steady_log_area_sd
    pending = lineage.mothers()
    undone = 0
    while pending:
        mother = pending.pop(0)
        daughters = lineage.daughters.get(mother, [])
        if len(daughters) != 2:
            continue
        found = _merge(lineage, mother, daughters, merge_frames, margin)
        if found is None:
            continue
        partner, merged, heirs = found
        lineage.undo(mother, partner, merged, heirs)
        undone += 1
        # the heirs are gone; their own daughters are now the mother's or the partner's: look at those again
        pending = sorted({t for t in {*pending, mother, partner} if lineage.daughters.get(t) and t in lineage.rows},
                         key=lineage.end_frame)
    result["track"] = lineage.tracks
    result["parent"] = lineage.parents
    result.attrs["merges_undone"] = undone
    return result


class _Lineage:
    """Tracks as rows by frame, with parents and daughters, changed in place as merges are undone."""

    def __init__(self, tracked: pd.DataFrame):
        self.frames = tracked["frame"].to_numpy(np.int64)
        self.tracks = tracked["track"].to_numpy(np.int64).copy()
        self.parents = tracked["parent"].to_numpy(np.int64).copy()
        self.points = tracked[COORDINATES].to_numpy(np.float64)
        self.log_area = np.log(np.maximum(tracked["area"].to_numpy(np.float64), 1.0))
        self.radius = np.sqrt(np.exp(self.log_area) / np.pi)
        order = np.lexsort((self.frames, self.tracks))
        ids, starts = np.unique(self.tracks[order], return_index=True)
        self.rows = dict(zip(ids.tolist(), np.split(order, starts[1:])))  # each track's rows, by frame
        self.daughters: dict[int, list[int]] = {}
        for track, rows in self.rows.items():
            if self.parents[rows[0]] > 0:
                self.daughters.setdefault(int(self.parents[rows[0]]), []).append(track)
        self.next_id = int(ids.max()) + 1
        self._ends = None  # (track ids, last rows) of the tracks without daughters; None after a change

    def end_frame(self, track: int) -> int:
        return int(self.frames[self.rows[track][-1]])

    def mothers(self) -> list[int]:
        """Tracks with daughters, by their last frame."""
        return sorted((t for t in self.daughters if t in self.rows), key=self.end_frame)

    def childless_ends(self, before: int, since: int, other_than: int) -> np.ndarray:
        """Last rows of the tracks without daughters ending in frames ``since`` to ``before - 1``."""
        if self._ends is None:  # built once per lineage, not once per mother
            ids = [track for track in self.rows if not self.daughters.get(track)]
            self._ends = np.array(ids, np.int64), np.array([self.rows[t][-1] for t in ids], np.int64)
        ids, last = self._ends
        frames = self.frames[last]
        return last[(frames >= since) & (frames < before) & (ids != other_than)]

    def undo(self, mother: int, partner: int, merged: np.ndarray, heirs: tuple[int, int]) -> None:
        """``heirs`` go on as ``mother``'s and ``partner``'s tracks; ``merged`` rows (if any) become a track."""
        self._ends = None
        if len(merged):
            merged_track = self.next_id
            self.next_id += 1
            self.tracks[merged] = merged_track
            self.parents[merged] = 0
            self.rows[merged_track] = merged
            self.rows[mother] = self.rows[mother][~np.isin(self.rows[mother], merged)]
        self.daughters.pop(mother)
        for track, heir in zip((mother, partner), heirs):
            rows = self.rows.pop(heir)
            self.tracks[rows] = track
            self.parents[rows] = self.parents[self.rows[track][0]]
            self.rows[track] = np.concatenate([self.rows[track], rows])
            granddaughters = self.daughters.pop(heir, [])
            for daughter in granddaughters:
                self.parents[self.rows[daughter]] = track
            if granddaughters:
                self.daughters[track] = granddaughters


def _merge(lineage: _Lineage, mother: int, daughters: list[int], merge_frames: int, margin: float):
    """(partner, merged rows to take from the mother, heirs of the mother's and the partner's nucleus) or
    None; see the caller."""
    mother_rows = lineage.rows[mother]
    end = lineage.frames[mother_rows[-1]]
    firsts = np.array([lineage.rows[d][0] for d in daughters])
    frames, points, radius, log_area = lineage.frames, lineage.points, lineage.radius, lineage.log_area
    best, best_distance = None, np.inf
    for partner_end in lineage.childless_ends(end, end - merge_frames, mother):
        pre = mother_rows[frames[mother_rows] <= frames[partner_end]]
        merged = mother_rows[frames[mother_rows] > frames[partner_end]]
        if not len(pre):
            continue
        distance = np.linalg.norm(points[merged[0]] - points[partner_end])
        if distance > radius[merged[0]] + radius[partner_end] or distance >= best_distance:
            continue
        before = np.array([pre[-1], partner_end])
        if np.median(log_area[merged]) < np.logaddexp(*log_area[before]) - margin:
            continue  # too small to hold both
        straight = (np.linalg.norm(points[firsts] - points[before], axis=1).sum()
                    <= np.linalg.norm(points[firsts[::-1]] - points[before], axis=1).sum())
        paired = firsts if straight else firsts[::-1]
        if np.abs(log_area[paired] - log_area[before]).max() > margin:
            continue  # a daughter is not the size of the nucleus she would be
        heirs = tuple(daughters) if straight else tuple(daughters[::-1])
        if abs(np.median(log_area[merged]) - log_area[before[0]]) <= margin:
            merged = merged[:0]  # the mother's own nucleus beside a speck: nothing merged to take from her
        best, best_distance = (int(lineage.tracks[partner_end]), merged, heirs), distance
    return best
