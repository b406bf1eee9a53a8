"""Cell-cycle phases of tracked cells: G1, S, G2, M per frame and per-cell durations.

The detector gives, per nucleus and frame, probabilities of three appearance
classes, "G1/G2", "S" and "M": G1 and G2 look alike in PCNA. A cell passes
G1 → S → G2 → M and divides, so along a track the class sequence tells them
apart (G1/G2 before S is G1, after S is G2). :func:`resolve_phases` finds, per
track, the most probable phase sequence of a hidden Markov model (Viterbi),
with the detector's probabilities as emissions:

* states G1, S, G2, M and "M-exit", the end of mitosis (telophase) seen in a
  daughter right after its birth; M-exit is reported as M;
* each state stays or moves to the next one. G1, S and G2 last, in most
  cells, at least ``1 - phase_duration_cv`` of their expected duration and
  any time beyond; in the other ``atypical_duration_share`` any time at all
  (:class:`~pcnacycle.tracking.hmm.StateSpace`): a chance run of a few wrong
  calls does not make a phase, sustained evidence does;
* **the cycle may restart inside a track** (G2 or M → G1 or M-exit): a
  division the tracker missed, when the track went on into one daughter. How
  likely a restart is at a frame depends on the evidence there: the change of
  nuclear area (a daughter is about half her mother; measured distributions in
  :class:`~pcnacycle.settings.RunSettings`) and a new parentless track
  starting beside the cell in that frame (the other daughter). The track is
  then split at the restart into mother and daughter with the parent link,
  the sister is linked too, and the phases are resolved again on the new
  lineage;
* a track may also jump to any state with a small probability (a wrong link),
  so a confident run of calls is overridden only by its own neighbours, never
  because the track's earlier history forces it forward;
* a daughter (a track with a parent) starts in M-exit or G1; a mother (a track
  with daughters) ends in G2 or M: M frames come only from M evidence, never
  from the track structure alone; other tracks may start and end anywhere;
* **a division may be false**: a mother whose evidence says G1 or S to her
  end (at the cost ``false_division``) loses her daughters, the nearer one
  going on as her track: the tracker took a nucleus appearing beside her for
  a daughter;
* frames missing inside a track (closed gaps) carry no evidence;
* **texture** is a second, independent look at S: PCNA gathers in
  replication foci in S, so S nuclei are grainy (``texture_pcna``, see
  :func:`~pcnacycle.tracking.detections.nuclear_texture`). How grainy S and
  non-S nuclei are differs between microscopes, so it is learnt from the
  movie itself (:mod:`~pcnacycle.tracking.evidence`): the log texture of the
  nuclei the detector calls S confidently against those it confidently calls
  something else (at probability 0.9, or 0.8 or 0.7 where the movie has too
  few such calls, as a model shown nuclei unlike its training movies does),
  one Gaussian each, every nucleus read against its own track's smooth calls
  (cells differ in grain more than frames do); S's admits smooth nuclei in
  the share of the S calls that are smooth (foci are faint as S begins and
  ends, so smoothness is weaker evidence against S than foci are for it).
  The resulting log-likelihood ratio,
  bounded, adds to the S emission of every nucleus, so a run of faint early-S
  foci the detector calls G1/G2 still reads as S along the track. A movie
  where texture does not separate the confident calls gets no texture term.

A user's corrections (``pcnacycle correct``) are hard constraints: rows with a
fixed phase allow only that phase's states (M: M or M-exit), and override the
rule on how a daughter starts or a mother ends where they fall on a track's
first or last row; tracks whose lineage the user set (frozen) are never split,
never taken as a missed sister, and restart the cycle inside only when their
fixed phases leave no other path (at the cost of a wrong link).

The expected durations are only a prior: with ``estimate_durations`` the
median durations of the phases the movie shows complete replace them and the
movie is resolved again, so the result does not depend on knowing the answer.

A track never seen in S or M cannot be placed by the sequence: its G1/G2
frames are G1 or G2 by PCNA brightness (G2 nuclei hold twice the DNA and are
brighter), compared with the typical G1 and G2 brightness of the cells that
the sequence does place. If such a track lasts long enough it is reported
as arrested in that phase.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar, Mapping

import numpy as np
import pandas as pd

from ..errors import PcnacycleError
from ..phases import CLASSES, PHASES
from ..settings import RunSettings
from .divisions import division_evidence_in_tracks, split_tracks, undo_divisions
from .evidence import confidence_levels, mitosis_log_ratio, texture_calls, texture_log_ratio
from .hmm import G1, G2, M_EXIT, M, S, StateSpace, viterbi
from .tracker import probability_column, require_columns

__all__ = ["estimate_phase_minutes", "phase_durations", "resolve_phases"]

_STATE_PHASE = np.array(["G1", "S", "G2", "M", "M"])
_CLASS_OF_STATE = [0, 1, 0, 2, 2]  # G1, S, G2, M, M-exit → columns G1/G2, S, M
_MAX_PASSES = 3
_PRIOR_PSEUDO_COUNT = 30.0


def check_frame_interval(frame_interval) -> None:
    """Raise :class:`PcnacycleError` unless ``frame_interval`` is a positive, finite number of minutes."""
    valid = isinstance(frame_interval, numbers.Real) and not isinstance(frame_interval, bool)
    if not valid or not math.isfinite(frame_interval) or frame_interval <= 0:
        raise PcnacycleError(f"frame_interval={frame_interval!r}: must be a positive number of minutes")


def resolve_phases(objects: pd.DataFrame, frame_interval: float, settings: RunSettings | None = None, *,
                   class_names=CLASSES, intensity_column: str = "mean_pcna",
                   fixed_phase_column: str | None = None, frozen_column: str | None = None,
                   **changes) -> pd.DataFrame:
    """Give every tracked nucleus a cell-cycle phase, G1, S, G2 or M, splitting tracks at missed divisions.

    Parameters
    ----------
    objects : DataFrame
        One row per nucleus and frame: ``frame``, ``track`` (≥ 1), ``parent``
        (0 = none) and the class probabilities ``p_G1/G2, p_S, p_M`` (names
        from ``class_names``). Optional: ``area`` (pixels) and ``centroid_y,
        centroid_x`` give the evidence of divisions inside a track;
        ``intensity_column`` decides G1 against G2 for tracks never seen in S or M.
    frame_interval : float
        Minutes between frames.
    settings : RunSettings, optional
        The resolver's priors (``phase_minutes``, ``estimate_durations``,
        ``min_probability``, ``mitosis_skip``, ``division_log_area``,
        ``steady_log_area_sd``, ``sister_evidence``, ``jump_probability``,
        ``min_arrest_frames``, and ``division_distance`` in pixels for the
        sister search); default :class:`RunSettings()`.
    class_names : three names
        The detector's classes for G1/G2, S and M, in that order.
    fixed_phase_column : str, optional
        Column of ``objects`` holding a phase the row must take (G1, S, G2
        or M) or "" for none: the user's corrections, as hard constraints.
    frozen_column : str, optional
        Boolean column of ``objects``: the rows of a track where any is True
        keep their track and parent (never split at a missed division, never
        linked as a missed sister).
    **changes
        Fields of :class:`RunSettings` to change, e.g. ``phase_minutes={"G1": 300}``.

    Returns
    -------
    DataFrame
        ``objects`` (same rows and index) with ``phase`` (str: G1, S, G2, M),
        ``arrested`` (str: "", "G1" or "G2", the same for every row of a
        track), and ``track`` / ``parent`` changed where a track was split at
        a division it had missed (new track ids follow the largest). The
        durations used as prior are in ``result.attrs["phase_minutes"]`` and
        the number of splits in ``result.attrs["divisions_inferred"]``.

    Raises
    ------
    PcnacycleError
        On a missing column, a non-positive ``frame_interval`` or bad settings.
    """
    check_frame_interval(frame_interval)
    settings = (settings or RunSettings()).replace(**changes) if changes else (settings or RunSettings())
    if len(class_names) != 3:
        raise PcnacycleError(f"class_names={list(class_names)!r}: give the three classes for G1/G2, S and M")
    prob_columns = [probability_column(c) for c in class_names]
    require_columns(objects, ["frame", "track", "parent", *prob_columns], "tracked table")

    constraints = _Constraints.of(objects, fixed_phase_column, frozen_column)
    minutes = dict(settings.phase_minutes)
    result = _resolve(objects, frame_interval, settings, minutes, prob_columns, intensity_column, constraints)
    if settings.estimate_durations and len(objects):
        for _ in range(_MAX_PASSES):
            estimate = estimate_phase_minutes(result, frame_interval, settings.phase_minutes,
                                              settings.min_phases_for_estimate)
            if all(abs(estimate[p] - minutes[p]) <= frame_interval / 2 for p in minutes):
                break
            minutes = estimate
            result = _resolve(objects, frame_interval, settings, minutes, prob_columns, intensity_column,
                              constraints)
    result.attrs["phase_minutes"] = {p: float(m) for p, m in minutes.items()}
    return result


def estimate_phase_minutes(resolved: pd.DataFrame, frame_interval: float, prior: Mapping[str, float],
                           min_count: int = 5) -> dict[str, float]:
    """Median minutes of each phase over the tracks that show it complete; the prior where too few do.

    M keeps its prior: mitosis spans a mother and her daughters, and its
    evidence is sparse. An estimate stays within a factor 3 of the prior.
    """
    durations = phase_durations(resolved, frame_interval)
    estimate = dict(prior)
    for phase in ("G1", "S", "G2"):
        complete = durations[(durations[f"{phase}_frames"] > 0) & ~durations[f"{phase}_cut"].astype(bool)]
        if len(complete) >= min_count:
            median = float(complete[f"{phase}_minutes"].median())
            estimate[phase] = float(np.clip(median, prior[phase] / 3, prior[phase] * 3))
    return estimate


class _Constraints:
    """The user's corrections per row of the table: allowed states and frozen lineage.

    Attributes
    ----------
    clamp : (n_rows, 5) float
        0 for the states a row may take, -inf for the others (all 0 where no phase is fixed).
    fixed : (n_rows,) bool
        The row's phase is fixed.
    frozen : (n_rows,) bool
        The row's track keeps its track id and parent.
    """

    #: The states of each phase a user may fix.
    PHASE_STATES: ClassVar[dict] = {"G1": [G1], "S": [S], "G2": [G2], "M": [M, M_EXIT]}

    def __init__(self, clamp: np.ndarray, frozen: np.ndarray):
        self.clamp = clamp
        self.fixed = np.isinf(clamp).any(axis=1)
        self.frozen = frozen

    @classmethod
    def of(cls, objects: pd.DataFrame, fixed_phase_column: str | None, frozen_column: str | None) -> _Constraints:
        clamp = np.zeros((len(objects), 5))
        if fixed_phase_column is not None:
            require_columns(objects, [fixed_phase_column], "tracked table")
            fixed = objects[fixed_phase_column].fillna("").astype(str).to_numpy()
            unknown = sorted(set(fixed) - {"", *cls.PHASE_STATES})
            if unknown:
                raise PcnacycleError(f"column {fixed_phase_column!r}: unknown phase(s) {unknown}; use G1, S, G2, M "
                                     "or leave empty")
            for phase, states in cls.PHASE_STATES.items():
                clamp[np.ix_(fixed == phase, [s for s in range(5) if s not in states])] = -np.inf
        frozen = np.zeros(len(objects), bool)
        if frozen_column is not None:
            require_columns(objects, [frozen_column], "tracked table")
            frozen = objects[frozen_column].fillna(False).astype(bool).to_numpy()
        return cls(clamp, frozen)


def _resolve(objects: pd.DataFrame, frame_interval: float, settings: RunSettings, minutes: Mapping[str, float],
             prob_columns: list[str], intensity_column: str, constraints: _Constraints) -> pd.DataFrame:
    """One resolution with fixed priors: Viterbi, undo false divisions and split at restarts, again until
    the lineage stays as it is."""
    result = objects.copy()
    result.attrs["divisions_inferred"] = result.attrs["divisions_undone"] = 0
    if len(objects) == 0:
        result["phase"] = pd.Series(dtype=object)
        result["arrested"] = pd.Series(dtype=object)
        return result
    space = StateSpace(frame_interval, minutes, settings)
    features = np.zeros((len(result), 5))  # log-likelihood ratios per row and state, besides the detector's
    texture_from, mitosis_learnt = None, False  # what the second looks were learnt from, for run.json
    if settings.texture_evidence and "texture_pcna" in result.columns:
        texture = result["texture_pcna"].to_numpy(np.float64)
        p_s = result[prob_columns[1]].to_numpy(np.float64)
        levels = confidence_levels(settings.texture_min_confidence)
        llr = texture_log_ratio(texture, p_s, result["track"].to_numpy(), confident=levels)
        features[:, S] += settings.texture_evidence * llr
        if llr.any():
            texture_from = texture_calls(texture, p_s, levels)[2]  # the level of the calls it was learnt from
    if settings.mitosis_evidence and prob_columns[2] in result.columns:
        onset = mitosis_log_ratio(result[prob_columns[2]].to_numpy(np.float64), result["track"].to_numpy(),
                                  result["frame"].to_numpy(), settings.min_probability)
        # not M-exit: a daughter's first frames have no level of her own to rise from
        features[:, M] += settings.mitosis_evidence * onset
        mitosis_learnt = bool(onset.any())
    splits = undone = 0
    for attempt in range(_MAX_PASSES):
        grid = _TrackGrid(result)
        states, restart_rows, false_mothers = _best_states(result, grid, space, settings, prob_columns,
                                                           constraints, features)
        if not (len(restart_rows) or len(false_mothers)) or attempt == _MAX_PASSES - 1:
            break  # the last pass's changes are not made, so that states match the table
        splits += len(restart_rows)
        undone += len(false_mothers)
        result = undo_divisions(result, false_mothers)
        result = split_tracks(result, restart_rows, settings, constraints.frozen)
    result.attrs["divisions_inferred"] = splits
    result.attrs["divisions_undone"] = undone
    result.attrs["texture_evidence_from"] = texture_from
    result.attrs["mitosis_evidence_learnt"] = mitosis_learnt

    # tracks the order cannot place: all G1/G2, no parent, no daughters → G1 or G2 by brightness
    seen = np.zeros((grid.count, 5), bool)
    seen[grid.index, states] = True
    unplaced = ~seen[:, [S, M, M_EXIT]].any(axis=1) & ~grid.has_parent & ~grid.has_daughters
    unplaced &= np.bincount(grid.index, weights=constraints.fixed, minlength=grid.count) == 0  # the user placed it
    unplaced_rows = unplaced[grid.index]
    if unplaced.any() and intensity_column in result.columns:
        states[unplaced_rows] = _g1_or_g2(result[intensity_column].to_numpy(np.float64), states,
                                          grid.index, unplaced)[unplaced_rows]
    movie_frames = int(grid.frames.max() - grid.frames.min() + 1)
    min_arrest_frames = movie_frames if settings.min_arrest_frames is None else settings.min_arrest_frames
    track_phase = _STATE_PHASE[pd.Series(states).groupby(grid.index).first().to_numpy()]
    arrested = np.where(unplaced & (grid.lengths >= min_arrest_frames), track_phase, "")
    result["phase"] = _STATE_PHASE[states]
    result["arrested"] = arrested[grid.index]
    return result


class _TrackGrid:
    """Where each row sits on its track's frame grid: track index, step, lengths, lineage flags."""

    def __init__(self, table: pd.DataFrame):
        self.frames = table["frame"].to_numpy(np.int64)
        self.tracks, self.index = np.unique(table["track"].to_numpy(np.int64), return_inverse=True)
        self.count = len(self.tracks)
        self.first = np.full(self.count, np.iinfo(np.int64).max)
        last = np.full(self.count, -1)
        np.minimum.at(self.first, self.index, self.frames)
        np.maximum.at(last, self.index, self.frames)
        self.lengths = last - self.first + 1
        self.step = self.frames - self.first[self.index]
        self.parents = pd.Series(table["parent"].to_numpy(np.int64)).groupby(self.index).first().to_numpy()
        self.has_parent = self.parents > 0
        self.has_daughters = np.isin(self.tracks, self.parents)


def _best_states(table: pd.DataFrame, grid: _TrackGrid, space: StateSpace, settings: RunSettings,
                 prob_columns: list[str], constraints: _Constraints,
                 features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Viterbi phase state (``G1`` … ``M_EXIT``) of every row, the rows where the path restarts the cycle,
    and the tracks whose division is false (mothers that end in G1 or S).

    ``features`` (n_rows, 5) are log-likelihood ratios per state added to the detector's evidence.
    """
    probs = table[prob_columns].to_numpy(np.float64)
    log_p = np.log(np.clip(probs, settings.min_probability, 1.0))
    if settings.class_prior_correction:
        # The detector's probabilities are posteriors that hold its class prior (most nuclei are G1/G2);
        # the HMM brings its own prior through the transitions, so the emission is the scaled likelihood
        # p(class | image) / p(class), the prior taken as the movie's mean probability of each class.
        # (shrunk towards equal shares by _PRIOR_PSEUDO_COUNT detections, so that a handful of nuclei
        # does not make its own prior)
        counts = np.nansum(probs, axis=0) + _PRIOR_PSEUDO_COUNT / probs.shape[1]
        prior = counts / (np.isfinite(probs).all(axis=1).sum() + _PRIOR_PSEUDO_COUNT)
        log_p -= settings.class_prior_correction * np.log(np.clip(prior, settings.min_probability, 1.0))
    log_p /= settings.emission_temperature
    log_p = np.where(np.isnan(log_p), 0.0, log_p)  # a model without a class gives no evidence for it
    steps = int(grid.lengths.max())
    log_emissions = np.zeros((grid.count, steps, 5))  # frames missing in a gap keep log 1 = no evidence
    log_emissions[grid.index, grid.step] = log_p[:, _CLASS_OF_STATE] + features + constraints.clamp
    evidence = np.full((grid.count, steps), -np.inf)  # no restart where nothing is seen
    evidence[grid.index, grid.step] = division_evidence_in_tracks(table, settings)
    # a frozen track restarts only as a wrong link would: when its fixed phases leave no other path
    frozen = constraints.frozen & (grid.step > 0)
    evidence[grid.index[frozen], grid.step[frozen]] = space.log_jump - space.log_restart_max

    log_start = np.zeros((grid.count, len(space.phase)))
    born = np.isin(space.phase, [G1, M_EXIT])
    log_start[grid.has_parent] = np.where(born, space.log_entry, -np.inf)  # a daughter is born
    log_end = np.zeros((grid.count, len(space.phase)))
    log_end[grid.has_daughters] = -np.inf
    log_end[np.ix_(grid.has_daughters, np.r_[space.exits[G2], space.exits[M]])] = 0.0  # a mother divides
    # ... unless the division is false: the tracker took a nucleus appearing beside a cell in G1 or S for her
    # daughter. A mother whose evidence says G1 or S to the end may end there, and loses her daughters.
    last_row = grid.step == grid.lengths[grid.index] - 1
    lineage_set = np.bincount(grid.index, weights=constraints.frozen, minlength=grid.count) > 0
    lineage_set |= np.isin(grid.tracks, grid.parents[lineage_set])  # a daughter's lineage the user set
    may_be_false = grid.has_daughters & ~lineage_set
    log_end[np.ix_(may_be_false, np.isin(space.phase, [G1, S]))] = math.log(settings.false_division)
    # a phase the user fixed on a track's first or last row wins over how daughters start and mothers end
    log_start[grid.index[constraints.fixed & (grid.step == 0)]] = 0.0
    log_end[grid.index[constraints.fixed & last_row]] = 0.0
    paths, jumped = viterbi(log_emissions, grid.lengths, log_start, log_end, space, evidence)
    stages = paths[grid.index, grid.step]
    previous = paths[grid.index, np.maximum(grid.step - 1, 0)]
    restart = space.restarts[previous, stages] & (grid.step > 0) & ~constraints.frozen & ~jumped[grid.index, grid.step]
    states = space.phase[stages]
    ends_early = np.zeros(grid.count, bool)
    ends_early[grid.index[last_row & ~constraints.fixed]] = np.isin(states[last_row & ~constraints.fixed], [G1, S])
    return states, np.flatnonzero(restart), grid.tracks[ends_early & may_be_false]


def _g1_or_g2(intensity: np.ndarray, states: np.ndarray, track_index: np.ndarray, unplaced: np.ndarray) -> np.ndarray:
    """States (G1 or G2 for the rows of ``unplaced`` tracks) by brightness; other rows unchanged.

    A track's median brightness is compared, on a log scale, with the median
    brightness of the G1 and of the G2 frames of the placed tracks; without
    both references the track stays G1.
    """
    placed = ~unplaced[track_index]
    g1 = intensity[placed & (states == G1)]
    g2 = intensity[placed & (states == G2)]
    if len(g1) == 0 or len(g2) == 0:
        return states
    threshold = math.sqrt(np.median(g1) * np.median(g2))  # midway on a log scale
    track_brightness = pd.Series(intensity).groupby(track_index).median().to_numpy()
    in_g2 = unplaced & (track_brightness > threshold)
    return np.where(in_g2[track_index], G2, np.where(unplaced[track_index], G1, states))


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
    check_frame_interval(frame_interval)
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
