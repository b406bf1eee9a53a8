"""Cell-cycle phases of tracked cells: G1, S, G2, M per frame and per-cell durations.

The detector gives, per nucleus and frame, probabilities of three appearance
classes, "G1/G2", "S" and "M": G1 and G2 look alike in PCNA. A cell passes
G1 → S → G2 → M and divides, so along a track the class sequence tells them
apart (G1/G2 before S is G1, after S is G2) and single-frame mistakes show up
as steps backwards. :func:`resolve_phases` finds, per track, the most
probable phase sequence of a hidden Markov model that only moves forward in
the cycle (Viterbi), with the detector's probabilities as emissions:

* states G1, S, G2, M and "M-exit", the end of mitosis (telophase) seen in a
  daughter right after its birth; M-exit is reported as M;
* each state either stays or moves to the next one, with the probability of
  leaving set by the phase's expected duration and the frame interval;
* a daughter (a track with a parent) starts in M-exit or G1; a mother (a
  track with daughters) ends in M; other tracks may start and end anywhere,
  since the movie start or end, or a lost link, cuts them;
* frames missing inside a track (closed gaps) carry no evidence and take the
  phase the path passes through there.

A track never seen in S or M cannot be placed by the sequence: its G1/G2
frames are G1 or G2 by PCNA brightness (G2 nuclei hold twice the DNA and are
brighter), compared with the typical G1 and G2 brightness of the cells that
the sequence does place. If such a track lasts long enough it is reported
as arrested in that phase.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping

import numpy as np
import pandas as pd

from .errors import PcnacycleError
from .simulate import PHASES
from .track import probability_column, require_columns

__all__ = ["DEFAULT_PHASE_MINUTES", "phase_durations", "resolve_phases"]

#: Typical durations (minutes) of a human cell line's phases; they only set how reluctant the model is to move on.
DEFAULT_PHASE_MINUTES = {"G1": 540.0, "S": 420.0, "G2": 210.0, "M": 52.0}

_G1, _S, _G2, _M, _M_EXIT = range(5)
_STATE_PHASE = np.array(["G1", "S", "G2", "M", "M"])
_NEXT_STATE = (_S, _G2, _M, None, _G1)  # M ends the track (division); M-exit leads into G1


def _check_frame_interval(frame_interval) -> None:
    valid = isinstance(frame_interval, numbers.Real) and not isinstance(frame_interval, bool)
    if not valid or not math.isfinite(frame_interval) or frame_interval <= 0:
        raise PcnacycleError(f"frame_interval={frame_interval!r}: must be a positive number of minutes")


def _log_transitions(frame_interval: float, phase_minutes: Mapping[str, float]) -> np.ndarray:
    """(5, 5) log transition matrix: stay, or move to the next state; -inf elsewhere.

    With a constant chance to leave per frame a phase lasts ``1 / chance``
    frames on average, so that chance is ``frame_interval / duration``
    (capped at one half, so that staying is never the less likely choice).
    """
    minutes = [phase_minutes["G1"], phase_minutes["S"], phase_minutes["G2"], phase_minutes["M"], phase_minutes["M"]]
    log_a = np.full((5, 5), -np.inf)
    for state, following in enumerate(_NEXT_STATE):
        leave = min(frame_interval / minutes[state], 0.5)
        if following is None:
            log_a[state, state] = 0.0
        else:
            log_a[state, state] = math.log1p(-leave)
            log_a[state, following] = math.log(leave)
    return log_a


def _viterbi(log_emissions: np.ndarray, lengths: np.ndarray, log_start: np.ndarray, log_end: np.ndarray,
             log_transitions: np.ndarray) -> np.ndarray:
    """Most probable state paths of many tracks at once.

    Parameters
    ----------
    log_emissions : (n, L, S) float
        Per track and time step; steps past a track's length are ignored.
    lengths : (n,) int ≥ 1
    log_start, log_end : (n, S) float
        Log prior of the first and last state (-inf forbids it).
    log_transitions : (S, S) float

    Returns
    -------
    (n, L) int64
        The state of each step (steps past a track's length repeat its last state).
    """
    n, steps, states = log_emissions.shape
    score = log_start + log_emissions[:, 0]
    back = np.zeros((n, steps, states), np.int64)
    back[:, 0] = np.arange(states)
    stay = np.arange(states)
    for t in range(1, steps):
        candidates = score[:, :, None] + log_transitions[None]  # (n, from, to)
        best = candidates.argmax(axis=1)
        alive = t < lengths
        score = np.where(alive[:, None], np.take_along_axis(candidates, best[:, None], 1)[:, 0] + log_emissions[:, t],
                         score)
        back[:, t] = np.where(alive[:, None], best, stay)
    path = np.empty((n, steps), np.int64)
    path[:, -1] = (score + log_end).argmax(axis=1)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = np.take_along_axis(back[:, t], path[:, t, None], 1)[:, 0]
    return path


def resolve_phases(objects: pd.DataFrame, frame_interval: float, *, class_names=("G1/G2", "S", "M"),
                   phase_minutes: Mapping[str, float] | None = None, min_probability: float = 1e-3,
                   min_arrest_frames: int | None = None, intensity_column: str = "mean_pcna") -> pd.DataFrame:
    """Give every tracked nucleus a cell-cycle phase, G1, S, G2 or M.

    Parameters
    ----------
    objects : DataFrame
        One row per nucleus and frame: ``frame``, ``track`` (≥ 1), ``parent``
        (0 = none) and the class probabilities ``p_G1/G2, p_S, p_M`` (names
        from ``class_names``); ``intensity_column`` when present decides G1
        against G2 for tracks never seen in S or M.
    frame_interval : float
        Minutes between frames.
    class_names : three names
        The detector's classes for G1/G2, S and M, in that order.
    phase_minutes : mapping, optional
        Expected duration of G1, S, G2 and M in minutes (default
        :data:`DEFAULT_PHASE_MINUTES`); only shapes how readily the model
        changes phase, so rough values do.
    min_probability : float
        Probabilities are raised to at least this before taking logs, so one
        confident wrong call costs a bounded amount instead of forbidding a path.
    min_arrest_frames : int, optional
        A track never seen in S or M, without parent or daughters, is
        arrested when it spans at least this many frames (default: the whole movie).

    Returns
    -------
    DataFrame
        ``objects`` (same rows and index) with ``phase`` (str: G1, S, G2, M)
        and ``arrested`` (str: "", "G1" or "G2", the same for every row of a track).

    Raises
    ------
    PcnacycleError
        On a missing column, a non-positive ``frame_interval`` or bad parameters.
    """
    _check_frame_interval(frame_interval)
    if len(class_names) != 3:
        raise PcnacycleError(f"class_names={list(class_names)!r}: give the three classes for G1/G2, S and M")
    prob_columns = [probability_column(c) for c in class_names]
    require_columns(objects, ["frame", "track", "parent", *prob_columns], "tracked table")
    phase_minutes = {**DEFAULT_PHASE_MINUTES, **(phase_minutes or {})}
    for phase, minutes in phase_minutes.items():
        if not isinstance(minutes, numbers.Real) or not minutes > 0:
            raise PcnacycleError(f"phase_minutes[{phase!r}]={minutes!r}: must be a positive number of minutes")
    if not 0 < min_probability < 1:
        raise PcnacycleError(f"min_probability={min_probability!r}: must be between 0 and 1")
    if min_arrest_frames is not None and (not isinstance(min_arrest_frames, numbers.Integral) or min_arrest_frames < 1):
        raise PcnacycleError(f"min_arrest_frames={min_arrest_frames!r}: must be an integer ≥ 1")

    result = objects.copy()
    if len(objects) == 0:
        result["phase"] = pd.Series(dtype=object)
        result["arrested"] = pd.Series(dtype=object)
        return result

    frames = objects["frame"].to_numpy(np.int64)
    tracks, track_index = np.unique(objects["track"].to_numpy(np.int64), return_inverse=True)
    first = np.full(len(tracks), np.iinfo(np.int64).max)
    last = np.full(len(tracks), -1)
    np.minimum.at(first, track_index, frames)
    np.maximum.at(last, track_index, frames)
    lengths = last - first + 1
    parents = pd.Series(objects["parent"].to_numpy(np.int64)).groupby(track_index).first().to_numpy()
    has_parent = parents > 0
    has_daughters = np.isin(tracks, parents)

    # emissions on each track's frame grid; frames missing in a gap keep log 1 = no evidence
    class_of_state = [0, 1, 0, 2, 2]  # G1, S, G2, M, M-exit → columns G1/G2, S, M
    log_p = np.log(np.clip(objects[prob_columns].to_numpy(np.float64), min_probability, 1.0))
    log_emissions = np.zeros((len(tracks), int(lengths.max()), 5))
    log_emissions[track_index, frames - first[track_index]] = log_p[:, class_of_state]

    log_start = np.zeros((len(tracks), 5))
    log_start[has_parent] = -np.inf
    log_start[np.ix_(has_parent, [_G1, _M_EXIT])] = 0.0
    log_end = np.zeros((len(tracks), 5))
    log_end[has_daughters] = -np.inf
    log_end[has_daughters, _M] = 0.0
    paths = _viterbi(log_emissions, lengths, log_start, log_end, _log_transitions(frame_interval, phase_minutes))
    states = paths[track_index, frames - first[track_index]]

    # tracks the order cannot place: all G1/G2, no parent, no daughters → G1 or G2 by brightness
    seen = np.zeros((len(tracks), 5), bool)
    seen[track_index, states] = True
    unplaced = ~seen[:, [_S, _M, _M_EXIT]].any(axis=1) & ~has_parent & ~has_daughters
    unplaced_rows = unplaced[track_index]
    if unplaced.any() and intensity_column in objects.columns:
        states[unplaced_rows] = _g1_or_g2(objects[intensity_column].to_numpy(np.float64), states,
                                          track_index, unplaced)[unplaced_rows]
    movie_frames = int(frames.max() - frames.min() + 1)
    min_arrest_frames = movie_frames if min_arrest_frames is None else min_arrest_frames
    track_phase = _STATE_PHASE[pd.Series(states).groupby(track_index).first().to_numpy()]
    arrested = np.where(unplaced & (lengths >= min_arrest_frames), track_phase, "")
    result["phase"] = _STATE_PHASE[states]
    result["arrested"] = arrested[track_index]
    return result


def _g1_or_g2(intensity: np.ndarray, states: np.ndarray, track_index: np.ndarray, unplaced: np.ndarray) -> np.ndarray:
    """States (G1 or G2 for the rows of ``unplaced`` tracks) by brightness; other rows unchanged.

    A track's median brightness is compared, on a log scale, with the median
    brightness of the G1 and of the G2 frames of the placed tracks; without
    both references the track stays G1.
    """
    placed = ~unplaced[track_index]
    g1 = intensity[placed & (states == _G1)]
    g2 = intensity[placed & (states == _G2)]
    if len(g1) == 0 or len(g2) == 0:
        return states
    threshold = math.sqrt(np.median(g1) * np.median(g2))  # midway on a log scale
    track_brightness = pd.Series(intensity).groupby(track_index).median().to_numpy()
    in_g2 = unplaced & (track_brightness > threshold)
    return np.where(in_g2[track_index], _G2, np.where(unplaced[track_index], _G1, states))


def phase_durations(resolved: pd.DataFrame, frame_interval: float) -> pd.DataFrame:
    """Per track, frames and minutes spent in each phase, and whether a cut shortens them.

    Parameters
    ----------
    resolved : DataFrame
        :func:`resolve_phases` output: ``frame, track, parent, phase, arrested``.
    frame_interval : float
        Minutes between frames.

    Returns
    -------
    DataFrame
        One row per track, sorted by track, with the columns of the
        simulator's ``durations`` table first:

        ``track, parent`` (int64); ``G1_frames, S_frames, G2_frames,
        M_frames`` (int64: frames from entering to leaving the phase, a
        closed gap counted in the phase before it); ``G1_minutes, ...,
        M_minutes`` (float64, frames × ``frame_interval``); ``cut_start``
        (bool: the track did not start with an observed birth, so its first
        phase may have begun earlier); ``cut_end`` (bool: the track did not end
        with an observed division, so its last phase may last longer);
        ``arrested`` (str: "", "G1", "G2");

        then ``lineage`` (int64, the founder's track id), and ``G1_cut, S_cut,
        G2_cut, M_cut`` (bool: that phase's duration is a lower bound because
        it is the first phase of a ``cut_start`` track or the last of a
        ``cut_end`` one). A daughter's M frames are the end of mitosis seen
        after the division.
    """
    _check_frame_interval(frame_interval)
    require_columns(resolved, ["frame", "track", "parent", "phase", "arrested"], "resolved table")
    columns = (["track", "parent"] + [f"{p}_frames" for p in PHASES] + [f"{p}_minutes" for p in PHASES]
               + ["cut_start", "cut_end", "arrested", "lineage"] + [f"{p}_cut" for p in PHASES])
    if len(resolved) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})

    rows = resolved.sort_values(["track", "frame"])
    frames = rows["frame"].to_numpy(np.int64)
    tracks = rows["track"].to_numpy(np.int64)
    same_track_next = np.r_[tracks[1:] == tracks[:-1], False]
    # each row stands for itself and for the missing frames up to the track's next row
    weight = np.where(same_track_next, np.r_[np.diff(frames), 1], 1)
    counts = (pd.DataFrame({"track": tracks, "phase": rows["phase"].to_numpy(), "weight": weight})
              .pivot_table(index="track", columns="phase", values="weight", aggfunc="sum", fill_value=0)
              .reindex(columns=list(PHASES), fill_value=0))
    per_track = rows.groupby("track", sort=True)
    parent = per_track["parent"].first()
    table = pd.DataFrame({"track": parent.index.to_numpy(np.int64), "parent": parent.to_numpy(np.int64)})
    for phase in PHASES:
        table[f"{phase}_frames"] = counts[phase].to_numpy(np.int64)
    for phase in PHASES:
        table[f"{phase}_minutes"] = table[f"{phase}_frames"] * float(frame_interval)
    table["cut_start"] = table["parent"].to_numpy() == 0
    table["cut_end"] = ~np.isin(table["track"], table["parent"])
    table["arrested"] = per_track["arrested"].first().to_numpy()
    table["lineage"] = _founders(table["track"].to_numpy(), table["parent"].to_numpy())
    first_phase = per_track["phase"].first().to_numpy()
    last_phase = per_track["phase"].last().to_numpy()
    for phase in PHASES:
        table[f"{phase}_cut"] = ((table["cut_start"] & (first_phase == phase))
                                 | (table["cut_end"] & (last_phase == phase)))
    return table[columns]


def _founders(tracks: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """The root ancestor of each track, following parents present in ``tracks``: (n,) int64."""
    parent_of = dict(zip(tracks.tolist(), parents.tolist()))
    root = {}
    for track in tracks.tolist():
        chain = [track]
        while parent_of.get(chain[-1], 0) in parent_of and chain[-1] not in root:
            chain.append(parent_of[chain[-1]])
        top = root.get(chain[-1], chain[-1])
        for member in chain:
            root[member] = top
    return np.array([root[t] for t in tracks.tolist()], np.int64)
