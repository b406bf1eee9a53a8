"""Divisions inside tracks: the evidence that one happened, and the lineage changes the resolver makes.

A tracker can go on through a division into one daughter (a missed
division): :func:`division_evidence_in_tracks` scores each frame for one, and
:func:`split_tracks` cuts a track where the resolver restarts the cycle. It can
also take a nucleus appearing beside a cell for her daughter (a false
division): :func:`undo_divisions` gives the daughters back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..settings import RunSettings
from .tracker import COORDINATES, division_evidence

__all__ = ["division_evidence_in_tracks", "split_tracks", "undo_divisions"]

#: Detections on each side of a frame whose medians decide whether a change of size lasts; a sister must be
#: seen this often (or until the movie ends) to count.
_EVIDENCE_WINDOW = 3


def division_evidence_in_tracks(table: pd.DataFrame, settings: RunSettings) -> np.ndarray:
    """(n_rows,) log-likelihood ratio of a division between a row and the previous row of its track.

    From the log area ratio (a division's distribution against a steady
    nucleus's) and a parentless track starting beside the cell in this frame.
    The first row of a track gets -inf; without ``area`` the area term is 0.
    """
    order = np.lexsort((table["frame"].to_numpy(), table["track"].to_numpy()))
    tracks = table["track"].to_numpy(np.int64)[order]
    first_of_track = np.r_[True, tracks[1:] != tracks[:-1]]
    evidence = np.zeros(len(table))
    if "area" in table.columns:
        log_area = np.log(np.maximum(table["area"].to_numpy(np.float64)[order], 1.0))
        change = _sustained_change(log_area, tracks)
        evidence += division_evidence(change, settings.division_log_area, settings.steady_log_area_sd)
    if settings.sister_evidence and set(COORDINATES) <= set(table.columns):
        evidence += settings.sister_evidence * _sister_appears(table, order, tracks, first_of_track, settings)
    evidence[first_of_track] = -np.inf
    result = np.empty(len(table))
    result[order] = evidence
    return result


def _sustained_change(values: np.ndarray, tracks: np.ndarray, window: int = _EVIDENCE_WINDOW) -> np.ndarray:
    """Per row: the change from the rows before that happens at this row and lasts.

    Rows are sorted by track, then frame; only rows of the same track count.
    Two changes are measured: this row's step from the row before, and the
    median of the next ``window`` rows (this one first) against the median of
    the ``window`` before. A daughter stays small, while a nucleus cut in two
    by the detector for a frame is whole again in the next: only a change
    that lasts counts. And a division is one step: the lasting change alone
    is as large a row early (the two rows after the division outvote the
    mother's last one) or a row late (a daughter that shrinks on), and only
    the row of the step itself makes a large step. The smaller of the two
    is taken, 0 where they disagree in sign.
    """
    by_track = pd.Series(values).groupby(tracks)
    before = by_track.transform(lambda v: v.shift(1).rolling(window, min_periods=1).median()).to_numpy()
    after = by_track.transform(lambda v: v[::-1].rolling(window, min_periods=1).median()[::-1]).to_numpy()
    step, lasting = values - by_track.shift(1).to_numpy(), after - before
    change = np.where(np.sign(step) == np.sign(lasting), np.sign(step) * np.minimum(np.abs(step), np.abs(lasting)), 0.0)
    return np.nan_to_num(change)  # a track's first row has nothing before: 0


def _sister_appears(table: pd.DataFrame, order: np.ndarray, tracks: np.ndarray, first_of_track: np.ndarray,
                    settings: RunSettings) -> np.ndarray:
    """(n_rows,) in ``order``: a lasting parentless track starts in this row's frame within reach of the previous row.

    ``tracks`` and ``first_of_track`` are per row in ``order`` (by track, then frame).
    """
    if settings.division_distance is None or settings.division_distance <= 0:
        return np.zeros(len(order), bool)
    frames = table["frame"].to_numpy(np.int64)[order]
    points = table[COORDINATES].to_numpy(np.float64)[order]
    by_track = pd.Series(frames).groupby(tracks)
    lasting = ((by_track.transform("size") >= _EVIDENCE_WINDOW)  # a fragment of a frame or two is no sister
               | (by_track.transform("max") == frames.max())).to_numpy()
    starts = np.flatnonzero(first_of_track & (table["parent"].to_numpy(np.int64)[order] == 0) & lasting)
    previous = np.r_[points[:1], points[:-1]]  # the row before, of the same track for every non-first row
    candidates = np.flatnonzero(~first_of_track & np.isin(frames, frames[starts]))
    found = np.zeros(len(order), bool)
    for frame, rows in pd.Series(candidates).groupby(frames[candidates]):
        rows, sisters = rows.to_numpy(), starts[frames[starts] == frame]
        distance = np.linalg.norm(previous[rows, None] - points[None, sisters], axis=2)
        other = tracks[rows, None] != tracks[None, sisters]
        found[rows] = ((distance <= settings.division_distance) & other).any(axis=1)
    return found


def split_tracks(table: pd.DataFrame, restart_rows: np.ndarray, settings: RunSettings,
                  frozen: np.ndarray) -> pd.DataFrame:
    """Cut tracks at restart rows into mother and daughter, and link the daughter's sister.

    The rows of a track from a restart row on become a new track (ids after
    the largest) whose parent is the part before; the mother's daughters move
    to the new part. A parentless track starting in the daughter's first
    frame, within ``division_distance`` of the mother's last centroid, becomes
    the second daughter. Rows where ``frozen`` is True are never a sister.
    """
    table = table.copy()
    tracks = table["track"].to_numpy(np.int64).copy()
    parents = table["parent"].to_numpy(np.int64).copy()
    frames = table["frame"].to_numpy(np.int64)
    next_id = int(tracks.max()) + 1
    has_points = set(COORDINATES) <= set(table.columns)
    points = table[COORDINATES].to_numpy(np.float64) if has_points else None
    # first row of every track; a split never moves one (a restart is never a track's first row)
    first_rows = pd.Series(frames).groupby(tracks).idxmin().to_numpy()
    first_rows = first_rows[~frozen[first_rows]]  # a track whose lineage the user set is nobody's missed sister
    for row in sorted(restart_rows, key=lambda r: frames[r]):
        track, frame = tracks[row], frames[row]
        later = (tracks == track) & (frames >= frame)
        mother_rows = np.flatnonzero((tracks == track) & (frames < frame))
        daughter = next_id
        next_id += 1
        parents[parents == track] = daughter  # the mother's former daughters are the daughter's now
        tracks[later] = daughter
        parents[later] = track
        if has_points and settings.division_distance:
            _link_sister(tracks, parents, frames, points, first_rows, mother_rows, daughter,
                         settings.division_distance)
    table["track"] = tracks
    table["parent"] = parents
    return table


def undo_divisions(table: pd.DataFrame, mothers: np.ndarray) -> pd.DataFrame:
    """Take the daughters from ``mothers``: the nearest goes on as the mother's track, the others have no parent.

    The nearest daughter is the one whose first centroid lies closest to the
    mother's last (the first by id without centroids); her own daughters
    become the mother's.
    """
    if not len(mothers):
        return table
    table = table.copy()
    tracks = table["track"].to_numpy(np.int64).copy()
    parents = table["parent"].to_numpy(np.int64).copy()
    frames = table["frame"].to_numpy(np.int64)
    points = table[COORDINATES].to_numpy(np.float64) if set(COORDINATES) <= set(table.columns) else None
    for mother in mothers:
        rows = np.flatnonzero(tracks == mother)
        daughters = np.unique(tracks[parents == mother])
        if not len(rows) or not len(daughters):
            continue  # taken in by her own false mother above; the next pass looks at her again
        last = rows[np.argmax(frames[rows])]
        firsts = [np.flatnonzero(tracks == d)[np.argmin(frames[tracks == d])] for d in daughters]
        nearest = 0 if points is None else int(np.argmin(np.linalg.norm(points[firsts] - points[last], axis=1)))
        for daughter in daughters:
            parents[tracks == daughter] = 0
        heir = daughters[nearest]
        parents[parents == heir] = mother
        parents[tracks == heir] = parents[last]
        tracks[tracks == heir] = mother
    table["track"] = tracks
    table["parent"] = parents
    return table


def _link_sister(tracks, parents, frames, points, first_rows, mother_rows, daughter, reach) -> None:
    """Give the mother the nearest parentless track starting with ``daughter``, within ``reach`` (in place)."""
    if not len(mother_rows):
        return
    last = mother_rows[np.argmax(frames[mother_rows])]
    mother = tracks[last]
    birth = frames[tracks == daughter].min()
    candidates = first_rows[(frames[first_rows] == birth) & (parents[first_rows] == 0)
                            & (tracks[first_rows] != mother) & (tracks[first_rows] != daughter)]
    if not len(candidates):
        return
    distance = np.linalg.norm(points[candidates] - points[last], axis=1)
    if distance.min() <= reach:
        sister = tracks[candidates[int(np.argmin(distance))]]
        parents[tracks == sister] = mother
