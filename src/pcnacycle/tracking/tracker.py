"""Tracking nuclei through a movie: detections → tracks with divisions → CTC files.

The pipeline is three small steps, each table in, table out:

1. :func:`~pcnacycle.tracking.detections.frame_detections` /
   :func:`~pcnacycle.tracking.detections.detections_table` measure each frame's
   label image (one frame at a time, so a movie's masks never need to be in
   memory together) and attach the model's phase probabilities;
2. :func:`track` links the detections with laptrack (frame-to-frame linking,
   gap closing and division detection by the LAP framework of Jaqaman et al.
   2008), then :func:`pair_mitoses` keeps only divisions that look like
   mitoses;
3. :func:`relabel_masks` and :func:`write_ctc` turn detections back into
   masks labelled by track, in the Cell Tracking Challenge (CTC) layout.

Track ids follow the CTC convention: a cell keeps its id from birth (or the
movie start) to its division (or the movie end); each daughter gets a new id
and its ``parent`` is the mother's id (0 = no known mother). A track may miss
a few frames where gap closing bridged a missed detection; the ``track`` column
keeps one id across such gaps because the cell is the same (phase durations
need the whole cell), while :func:`ctc_tracks` and :func:`write_ctc` split a
gapped track into segments chained by parent links, as the CTC format requires
that a track's label be present in every frame from its first to its last.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from ..errors import PcnacycleError
from ..io import write_text, write_tiff
from .detections import COORDINATES, probability_column  # the columns of the tables it links

__all__ = [
    "COORDINATES",
    "ctc_tracks",
    "pair_mitoses",
    "probability_column",
    "relabel_masks",
    "track",
    "track_table",
    "write_ctc",
]


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`PcnacycleError` naming the columns of ``columns`` missing from ``table``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PcnacycleError(f"{what}: missing column(s) {missing}; it has {list(table.columns)}")


def _check_number(name: str, value, low: float, integer: bool = False, high: float = math.inf) -> None:
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if integer:
        valid = valid and isinstance(value, numbers.Integral)
    if not valid or value < low or value > high:
        kind = "an integer" if integer else "a number"
        where = f"between {low:g} and {high:g}" if math.isfinite(high) else f"≥ {low:g}"
        raise PcnacycleError(f"{name}={value!r}: must be {kind} {where}")


def division_evidence(log_area_change: np.ndarray, division_log_area=(-0.9, 0.5),
                      steady_log_area_sd: float = 0.2, limit: float = 8.0) -> np.ndarray:
    """Log-likelihood ratio of "divided" against "the same nucleus" for a log area change.

    Parameters
    ----------
    log_area_change : (n,) float
        log(area now / area before) of a nucleus (a daughter against her mother).
    division_log_area : (mean, sd)
        The change at a division (normal); ``steady_log_area_sd`` the sd of
        the change of one nucleus between frames (normal, mean 0).
    limit : float
        The ratio is clipped to ±limit: one frame's area never decides alone.

    Returns
    -------
    (n,) float64

    Notes
    -----
    With the division's spread wider than a steady nucleus's, the ratio of
    the two Gaussians turns back up beyond its lowest point (a little above
    no change): a nucleus growing threefold, a fragment seen whole again,
    would read as "divided". A division only shrinks nuclei, so beyond that
    point the ratio is held at its lowest.
    """
    change = np.asarray(log_area_change, np.float64)
    mean, sd = division_log_area
    if sd > steady_log_area_sd:
        lowest = -mean * steady_log_area_sd**2 / (sd**2 - steady_log_area_sd**2)
        change = np.minimum(change, max(lowest, 0.0))
    llr = (math.log(steady_log_area_sd / sd) - 0.5 * ((change - mean) / sd) ** 2
           + 0.5 * (change / steady_log_area_sd) ** 2)
    return np.clip(np.nan_to_num(llr), -limit, limit)


# ------------------------------------------------------------------ linking


def _laptrack_links(objects: pd.DataFrame, max_distance: float, max_gap: int,
                    division_distance: float, motion_persistence: float | None = 0.0) -> tuple[np.ndarray, float]:
    """Directed links between rows of ``objects`` found by laptrack, (E, 2) int64 (row from, row to), and the
    motion persistence they were found with.

    A row with two outgoing links is a division. The links are laptrack's
    (``LapTrack.predict``), found by :class:`pcnacycle.tracking.linking.FastLapTrack`,
    which builds laptrack's cost matrices without its per-segment loops: the
    same links in a twentieth of the time at 10⁵ nuclei. With
    ``motion_persistence`` other than 0 frame-to-frame links are measured from
    each nucleus' predicted position (see ``FastLapTrack``); the persistence
    used is returned with the links.
    """
    from .linking import FastLapTrack

    frames = objects["frame"].to_numpy()
    points = objects[COORDINATES].to_numpy(np.float64)
    order = np.argsort(frames, kind="stable")
    starts = np.searchsorted(frames[order], np.arange(frames.max() + 2))
    # laptrack wants one (n, 2) array per frame, frame 0 first; empty frames stay, as (0, 2)
    coords = [points[order[a:b]] for a, b in zip(starts[:-1], starts[1:])]
    tracker = FastLapTrack(
        metric="sqeuclidean", cutoff=max_distance**2,
        # laptrack counts the frame step (1 = adjacent frames), so max_gap missed frames means max_gap + 1
        gap_closing_cutoff=max_distance**2 if max_gap > 0 else False, gap_closing_max_frame_count=max_gap + 1,
        splitting_cutoff=division_distance**2 if division_distance > 0 else False, merging_cutoff=False,
        # Starting or ending a track costs as much as the longest allowed link, so every link within reach
        # is taken when the assignment allows; laptrack's default (a percentile of the observed costs)
        # leaves daughters a few pixels beyond the typical step unlinked. pair_mitoses vets the divisions.
        track_start_cost=max_distance**2, track_end_cost=max_distance**2,
        segment_start_cost=max(max_distance, division_distance) ** 2,
        segment_end_cost=max(max_distance, division_distance) ** 2,
        no_splitting_cost=max(division_distance**2, 1.0),
        motion_persistence=motion_persistence,
    )
    # node i of the links is the i-th detection in frame order: row order[i] of the table
    return order[tracker.predict_edges(coords)].reshape(-1, 2), tracker.persistence_used


def _segments_from_links(n_rows: int, links: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut the link graph at divisions into segments.

    Returns ``segment`` (n_rows,) int64, 0..S-1, and ``divisions`` (D, 2)
    int64: (mother row, daughter row) for each link leaving a row that has two.
    """
    out_degree = np.bincount(links[:, 0], minlength=n_rows)
    is_division = out_degree[links[:, 0]] > 1
    within = links[~is_division]
    graph = sparse.coo_matrix((np.ones(len(within)), (within[:, 0], within[:, 1])), shape=(n_rows, n_rows))
    _, segment = csgraph.connected_components(graph, directed=False)
    return segment.astype(np.int64), links[is_division]


def pair_mitoses(objects: pd.DataFrame, segment: np.ndarray, divisions: np.ndarray, *,
                 mitosis_column: str = "p_M", mitosis_window: int = 2, min_mitosis_probability: float = 0.5,
                 symmetry_tolerance: float = 0.6, division_log_area=(-0.9, 0.5),
                 steady_log_area_sd: float = 0.2, min_daughter_detections: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Decide which proposed divisions are mitoses; merge the rejected ones back into one cell.

    A division proposed by the linker (a mother row linked to two daughter
    rows) is kept when the cell shows M: the largest ``mitosis_column``
    probability over the mother segment's last ``mitosis_window`` detections
    and each daughter segment's first ``mitosis_window`` detections reaches
    ``min_mitosis_probability``. Without M evidence it is still kept when the
    geometry is unambiguous: both daughters appear in the frame right after
    the mother and the mother's last centroid lies within
    ``symmetry_tolerance`` × (daughter separation) of their midpoint, as
    after a real division, and (when ``objects`` has ``area``) the
    daughters' sizes say "divided" rather than "a nucleus and a newcomer":
    :func:`division_evidence` of each daughter's area against the mother's
    is positive, and each daughter is seen at least ``min_daughter_detections``
    times (or until the movie ends). A rejected division is most likely a spurious
    detection next to a cell, so the mother continues as the daughter nearer
    to her and the other daughter starts a new track without a parent.

    Parameters
    ----------
    objects : DataFrame
        ``frame, centroid_y, centroid_x`` and ``mitosis_column``, one row per detection.
    segment : (n_rows,) int
        Segment id of each row (a segment runs between divisions).
    divisions : (D, 2) int
        (mother row, daughter row) pairs; a mother row appears twice.

    Returns
    -------
    segment : (n_rows,) int64
        Segment ids with every rejected mother merged with her nearer daughter.
    parent_of : (S,) int64
        For each segment id, its mother's segment id, or -1.
    """
    frames = objects["frame"].to_numpy()
    points = objects[COORDINATES].to_numpy(np.float64)
    p_mitosis = objects[mitosis_column].to_numpy(np.float64)
    log_area = np.log(np.maximum(objects["area"].to_numpy(np.float64), 1.0)) if "area" in objects else None
    n_segments = int(segment.max()) + 1 if len(segment) else 0

    # how far each row is from its segment's first and last detection, to take the windows at both ends
    order = np.lexsort((frames, segment))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.searchsorted(segment[order], segment[order])
    from_end = np.bincount(segment, minlength=n_segments)[segment] - 1 - rank
    best_start = np.zeros(n_segments)
    best_end = np.zeros(n_segments)
    with np.errstate(invalid="ignore"):  # NaN (a model without an M class) stays NaN: no M evidence, no warning
        np.maximum.at(best_start, segment[rank < mitosis_window], p_mitosis[rank < mitosis_window])
        np.maximum.at(best_end, segment[from_end < mitosis_window], p_mitosis[from_end < mitosis_window])

    segment_size = np.bincount(segment, minlength=n_segments)
    segment_end = np.full(n_segments, -1)
    np.maximum.at(segment_end, segment, frames)
    parent_of = np.full(n_segments, -1, np.int64)
    merged_into = np.arange(n_segments)
    mothers = pd.DataFrame({"mother": divisions[:, 0], "daughter": divisions[:, 1]}).groupby("mother")["daughter"]
    for mother_row, daughter_rows in mothers:
        mother = segment[mother_row]
        starts = daughter_rows.to_numpy()  # a division links the mother to each daughter's first detection
        daughters = segment[starts]
        evidence = max(best_end[mother], best_start[daughters].max())
        midpoint = points[starts].mean(axis=0)
        separation = np.linalg.norm(points[starts[0]] - points[starts[-1]])
        # a daughter seen for a frame or two is a fragment of a nucleus, unless the movie ends
        lasting = ((segment_size[daughters] >= min_daughter_detections)
                   | (segment_end[daughters] == frames.max())).all()
        symmetric = (len(daughters) == 2 and lasting and (frames[starts] == frames[mother_row] + 1).all()
                     and np.linalg.norm(points[mother_row] - midpoint) <= symmetry_tolerance * separation)
        if symmetric and log_area is not None:
            change = log_area[starts] - log_area[mother_row]
            symmetric = division_evidence(change, division_log_area, steady_log_area_sd).min() > 0
        if evidence >= min_mitosis_probability or symmetric:
            parent_of[daughters] = mother
            continue
        nearer = daughters[np.argmin(np.linalg.norm(points[starts] - points[mother_row], axis=1))]
        merged_into[nearer] = mother
    # a merged daughter may itself have been merged onward: follow the chain to its first segment
    while True:
        onward = merged_into[merged_into]
        if (onward == merged_into).all():
            break
        merged_into = onward
    parent_of = np.where(parent_of >= 0, merged_into[np.maximum(parent_of, 0)], -1)
    return merged_into[segment], parent_of


def track(objects: pd.DataFrame, max_distance: float = 20.0, max_gap: int = 2, *,
          division_distance: float | None = None, mitosis_column: str = "p_M", mitosis_window: int = 2,
          min_mitosis_probability: float = 0.5, symmetry_tolerance: float = 0.6, division_log_area=(-0.9, 0.5),
          steady_log_area_sd: float = 0.2, motion_persistence: float | None = 0.0) -> pd.DataFrame:
    """Link detections into cell tracks with divisions.

    Parameters
    ----------
    objects : DataFrame
        One row per nucleus: ``frame`` (int ≥ 0), ``centroid_y``,
        ``centroid_x`` (pixels) and ``mitosis_column``; other columns are kept.
    max_distance : float
        Largest distance (pixels) a nucleus moves between the frames it is
        seen in; also the largest jump bridged by gap closing.
    max_gap : int
        Most consecutive frames a nucleus may go undetected and keep its track (0: no gap closing).
    division_distance : float, optional
        Largest distance from a mother's last centroid to a daughter's first
        (default ``max_distance``; 0 disables division detection).
    mitosis_column, mitosis_window, min_mitosis_probability, symmetry_tolerance, division_log_area,
    steady_log_area_sd
        How proposed divisions are accepted; see :func:`pair_mitoses`.
    motion_persistence : float in [0, 1] or None
        0: link each nucleus from where it is. Above 0: from where its last
        step predicts it, ``position + persistence × last step`` (cells that
        migrate keep going). None: the persistence is estimated from the
        movie (:func:`pcnacycle.tracking.linking.step_persistence` of a static
        linking). The value used is in ``result.attrs["motion_persistence"]``.

    Returns
    -------
    DataFrame
        ``objects`` (same row order and index) with ``track`` (int64 ≥ 1)
        and ``parent`` (int64, the mother's track, 0 = none). Tracks are
        numbered by first frame, then by first row; see the module notes on gaps.

    Raises
    ------
    PcnacycleError
        On missing columns, negative or non-integer frames, non-finite
        coordinates or an impossible parameter.
    """
    require_columns(objects, ["frame", *COORDINATES, mitosis_column], "detections table")
    _check_number("max_distance", max_distance, 0.0)
    if max_distance == 0:
        raise PcnacycleError("max_distance=0: must be a positive number of pixels")
    _check_number("max_gap", max_gap, 0, integer=True)
    division_distance = max_distance if division_distance is None else division_distance
    _check_number("division_distance", division_distance, 0.0)
    _check_number("mitosis_window", mitosis_window, 1, integer=True)
    if motion_persistence is not None:
        _check_number("motion_persistence", motion_persistence, 0.0, high=1.0)
    frames = objects["frame"].to_numpy()
    if len(frames) and (not np.issubdtype(frames.dtype, np.integer) or frames.min() < 0):
        raise PcnacycleError(f"detections table: column 'frame' must hold integers ≥ 0, got {frames.dtype} "
                             f"from {frames.min()} to {frames.max()}")
    if not np.isfinite(objects[COORDINATES].to_numpy(np.float64)).all():
        raise PcnacycleError(f"detections table: columns {COORDINATES} must be finite numbers")

    result = objects.copy()
    if len(objects) == 0:
        result["track"] = pd.Series(dtype=np.int64)
        result["parent"] = pd.Series(dtype=np.int64)
        result.attrs["motion_persistence"] = 0.0
        return result
    table = objects.reset_index(drop=True)
    links, persistence = _laptrack_links(table, max_distance, max_gap, division_distance, motion_persistence)
    segment, divisions = _segments_from_links(len(table), links)
    segment, parent_of = pair_mitoses(table, segment, divisions, mitosis_column=mitosis_column,
                                      mitosis_window=mitosis_window,
                                      min_mitosis_probability=min_mitosis_probability,
                                      symmetry_tolerance=symmetry_tolerance, division_log_area=division_log_area,
                                      steady_log_area_sd=steady_log_area_sd)
    # number tracks 1..N by first appearance (rows are visited by frame, then by row order)
    visit = np.lexsort((np.arange(len(table)), frames))
    _, first_visit = np.unique(segment[visit], return_index=True)
    track_of = np.zeros(len(parent_of), np.int64)
    track_of[segment[visit][np.sort(first_visit)]] = np.arange(1, len(first_visit) + 1)
    parent_track = np.where(parent_of >= 0, track_of[np.maximum(parent_of, 0)], 0)
    result["track"] = track_of[segment]
    result["parent"] = parent_track[segment]
    result.attrs["motion_persistence"] = persistence
    return result


# ------------------------------------------------------------------ tables and CTC output


def track_table(tracked: pd.DataFrame) -> pd.DataFrame:
    """One row per track: ``track, first_frame, last_frame, parent`` (int64), sorted by track.

    ``tracked`` is :func:`track`'s output (``frame, track, parent``).
    """
    require_columns(tracked, ["frame", "track", "parent"], "tracked table")
    grouped = tracked.groupby("track", sort=True)
    table = pd.DataFrame({
        "first_frame": grouped["frame"].min(), "last_frame": grouped["frame"].max(),
        "parent": grouped["parent"].first(),
    }).reset_index()
    return table[["track", "first_frame", "last_frame", "parent"]].astype(np.int64)


def ctc_tracks(tracked: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """CTC labels of the rows and the ``res_track.txt`` table, gaps split off as new tracks.

    A track stays one CTC track while it is seen in consecutive frames. After
    a gap the rest of it becomes a new CTC track (ids after the largest
    track id) whose parent is the part before the gap, which is how the CTC
    format records a gap; daughters' parent is their mother's last part.

    Returns
    -------
    labels : (n_rows,) int64
        CTC label of each row of ``tracked``, in its row order.
    table : DataFrame
        ``track, first_frame, last_frame, parent`` (int64), one row per CTC track, sorted by track.
    """
    require_columns(tracked, ["frame", "track", "parent"], "tracked table")
    if tracked.empty:
        columns = ["track", "first_frame", "last_frame", "parent"]
        return np.zeros(0, np.int64), pd.DataFrame({c: pd.Series(dtype=np.int64) for c in columns})
    frames = tracked["frame"].to_numpy(np.int64)
    tracks = tracked["track"].to_numpy(np.int64)
    order = np.lexsort((frames, tracks))
    sorted_frames, sorted_tracks = frames[order], tracks[order]
    new_track = np.r_[True, sorted_tracks[1:] != sorted_tracks[:-1]]
    new_part = new_track | np.r_[False, np.diff(sorted_frames) > 1]
    starts = np.flatnonzero(new_part)
    first_part = new_track[starts]
    part_track = sorted_tracks[starts]
    next_id = int(tracks.max()) + 1 if len(tracks) else 1
    part_label = np.where(first_part, part_track, next_id + np.cumsum(~first_part) - 1)

    labels = np.empty(len(order), np.int64)
    labels[order] = np.repeat(part_label, np.diff(np.r_[starts, len(order)]))
    # parent of a part: the previous part of the same track, else the mother's last part
    last_part = pd.Series(part_label).groupby(part_track).last()
    mother = tracked.groupby("track")["parent"].first()
    mother_last = mother.map(last_part).fillna(0).astype(np.int64)
    previous = np.r_[0, part_label[:-1]]
    parent = np.where(first_part, mother_last.reindex(part_track).to_numpy(), previous)
    table = pd.DataFrame({
        "track": part_label, "first_frame": sorted_frames[starts],
        "last_frame": sorted_frames[np.r_[starts[1:], len(order)] - 1], "parent": parent,
    })
    return labels, table.sort_values("track", ignore_index=True).astype(np.int64)


def relabel_masks(label_image: np.ndarray, frame_objects: pd.DataFrame, column: str = "track") -> np.ndarray:
    """One frame's label image with each nucleus renamed by ``column``.

    Parameters
    ----------
    label_image : (H, W) int
        The frame's detections, as in ``frame_objects["label"]``.
    frame_objects : DataFrame
        ``label`` and ``column`` for the nuclei of this frame; labels not
        listed (e.g. dropped detections) become background.

    Returns
    -------
    (H, W) uint16
        0 background, else the nucleus' ``column`` value.
    """
    require_columns(frame_objects, ["label", column], "frame objects")
    label_image = np.asarray(label_image)
    old_ids = frame_objects["label"].to_numpy(np.int64)
    new_ids = frame_objects[column].to_numpy(np.int64)
    if len(new_ids) and (new_ids.max() > np.iinfo(np.uint16).max or new_ids.min() < 1):
        raise PcnacycleError(f"column {column!r}: ids must be 1..65535 to be stored as uint16, "
                             f"got {new_ids.min()}..{new_ids.max()}")
    lookup = np.zeros(max(int(label_image.max(initial=0)), int(old_ids.max(initial=0))) + 1, np.uint16)
    lookup[old_ids] = new_ids
    return lookup[label_image]


def write_ctc(tracked: pd.DataFrame, label_images: Iterable[np.ndarray], folder: str | os.PathLike,
              frames: int | None = None) -> Path:
    """Write a CTC result folder: ``res_track.txt`` and ``maskNNN.tif``, each atomically.

    Parameters
    ----------
    tracked : DataFrame
        :func:`track`'s output, with ``frame, label, track, parent``.
    label_images : iterable of (H, W) int
        Each frame's detections (the ``label`` ids), frame 0 first, read one at a time.
    folder : path
        Created if needed. Mask names have 3 digits, 4 when the movie is
        longer than 1000 frames (CTC).
    frames : int, optional
        Number of frames, to choose the name width before the iterable is
        consumed; by default ``len(label_images)``.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    require_columns(tracked, ["frame", "label", "track", "parent"], "tracked table")
    folder = Path(folder)
    frames = len(label_images) if frames is None else frames
    width = 4 if frames > 1000 else 3
    labels, table = ctc_tracks(tracked)
    objects = pd.DataFrame({"frame": tracked["frame"].to_numpy(), "label": tracked["label"].to_numpy(),
                            "ctc": labels})
    by_frame = dict(tuple(objects.groupby("frame")))
    empty = objects.iloc[:0]
    for t, label_image in enumerate(label_images):
        write_tiff(folder / f"mask{t:0{width}d}.tif", relabel_masks(label_image, by_frame.get(t, empty), "ctc"))
    lines = "".join(f"{r.track} {r.first_frame} {r.last_frame} {r.parent}\n" for r in table.itertuples())
    write_text(folder / "res_track.txt", lines)
    return folder
