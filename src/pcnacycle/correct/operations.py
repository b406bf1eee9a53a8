"""Each edit of ``pcnacycle correct`` applied to a run's table of nuclei and its mask frames.

The state is the run's table (one row per nucleus and frame: ``frame,
track, parent, label``, measurements, probabilities) and its (T, H, W) mask
frames, whose pixel values are the rows' ``label``. Edits apply in order;
each refers to track ids as the edits before it left them (a ``split`` gives
the later part the next free id: one above the largest id the run or an
earlier edit used). The ``label`` of a mask-level edit is the nucleus' value
in ``masks.tif`` at that frame, i.e. its track id there, again as the earlier
edits left it.

Two columns carry the corrections to the resolver
(:func:`pcnacycle.tracking.resolve.resolve_phases`): ``fixed_phase`` (the phase a
``phase`` edit fixed, "" elsewhere) and ``lineage_fixed`` (True on every row
of a track that a ``split``, ``join``, ``parent``, ``orphan`` or ``relabel``
edit named: the resolver keeps its id and mother). Both follow their rows
through later edits and are written to the corrected ``objects.csv``, so a
corrected run corrected again keeps them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PcnacycleError
from ..tracking.tracker import COORDINATES, probability_column
from .edits import edit_name

log = logging.getLogger(__name__)

FIXED_PHASE = "fixed_phase"
LINEAGE_FIXED = "lineage_fixed"


class RunState:
    """A run's nuclei and masks while edits are applied.

    Parameters
    ----------
    table : DataFrame
        One row per nucleus: ``frame, track, parent, label`` (int), other columns kept.
    labels : (T, H, W) uint16 array, or anything with ``len``, ``shape`` and frame get/set by index
        Mask frames; a row's nucleus is ``labels[frame] == label``. ``merge`` sets the frames it changes.
    class_names : the detector's classes (their ``p_<class>`` columns are averaged by ``merge``).
    phases_resolved : whether ``phase`` edits make sense (the run's classes are G1/G2, S, M).
    """

    def __init__(self, table: pd.DataFrame, labels, class_names, phases_resolved: bool = True):
        self.table = table.reset_index(drop=True)
        if FIXED_PHASE not in self.table:
            self.table[FIXED_PHASE] = ""
        if LINEAGE_FIXED not in self.table:
            self.table[LINEAGE_FIXED] = False
        self.labels = labels
        self.class_names = list(class_names)
        self.phases_resolved = phases_resolved
        self.next_id = int(self.table["track"].max()) + 1 if len(self.table) else 1

    # ---------------------------------------------------------------- queries

    def rows(self, track: int) -> np.ndarray:
        """Boolean (n_rows,): the rows of ``track``."""
        return self.table["track"].to_numpy() == track

    def span(self, track: int) -> tuple[int, int]:
        frames = self.table["frame"].to_numpy()[self.rows(track)]
        return int(frames.min()), int(frames.max())

    def mother(self, track: int) -> int:
        return int(self.table["parent"].to_numpy()[self.rows(track)][0])

    def daughters(self, track: int) -> list[int]:
        table = self.table
        return sorted(set(table.loc[table["parent"] == track, "track"].tolist()))

    def exists(self, track: int) -> bool:
        return bool(self.rows(track).any())

    def row_at(self, frame: int, label: int) -> int | None:
        """Position of the nucleus of track ``label`` in ``frame``, or None."""
        found = np.flatnonzero((self.table["frame"].to_numpy() == frame) & self.rows(label))
        return int(found[0]) if len(found) else None

    # ---------------------------------------------------------------- changes

    def freeze(self, *tracks: int) -> None:
        """The resolver keeps these tracks' ids and mothers."""
        self.table.loc[self.table["track"].isin(tracks), LINEAGE_FIXED] = True

    def drop_rows(self, rows: np.ndarray) -> None:
        """Remove rows; daughters of a track left without rows lose their mother."""
        touched = set(self.table.loc[rows, "track"].tolist())
        self.table = self.table.loc[~rows].reset_index(drop=True)
        self.forget([t for t in touched if not self.exists(t)])

    def forget(self, gone: list[int]) -> None:
        """The daughters of tracks that are gone lose their mother."""
        orphans = self.table["parent"].isin(gone)
        if orphans.any():
            log.info("tracks %s are gone: their daughters %s have no mother now", sorted(gone),
                     sorted(self.table.loc[orphans, "track"].unique().tolist()))
            self.table.loc[orphans, "parent"] = 0

    def spread_freeze(self) -> None:
        """A track with any frozen row is frozen in every row (rows move between tracks during edits)."""
        frozen = self.table.groupby("track")[LINEAGE_FIXED].transform("any")
        self.table[LINEAGE_FIXED] = frozen.astype(bool)


# -------------------------------------------------------------------- the edits


class _Refused(Exception):
    """An edit that cannot apply to this run; the message is completed with the edit's name."""


def _need_track(state: RunState, field: str, track: int) -> None:
    if not state.exists(track):
        raise _Refused(f"'{field}': track {track} is not in the run")


def _need_frames_in(state: RunState, track: int, first: int, last: int, fields: str) -> None:
    start, end = state.span(track)
    if first < start or last > end:
        shown = f"frame {first}" if first == last else f"frames {first}–{last}"
        raise _Refused(f"{fields}: {shown} outside track {track}, which spans frames {start}–{end}")


def _need_frame(state: RunState, frame: int) -> None:
    if frame >= len(state.labels):
        raise _Refused(f"'frame': frame {frame} is outside the movie (frames 0–{len(state.labels) - 1})")


def _split(state: RunState, track: int, frame: int) -> str:
    _need_track(state, "track", track)
    start, end = state.span(track)
    if not start < frame <= end:
        raise _Refused(f"'frame': frame {frame} must be after the first frame of track {track} and at most its "
                       f"last (it spans frames {start}–{end})")
    new = state.next_id
    state.next_id += 1
    table = state.table
    table.loc[table["parent"] == track, "parent"] = new  # her division now ends the later part
    later = state.rows(track) & (table["frame"].to_numpy() >= frame)
    table.loc[later, ["track", "parent"]] = [new, 0]
    state.freeze(track, new)
    return f"frames {frame}–{end} of track {track} are track {new} now"


def _join(state: RunState, track: int, onto: int) -> str:
    _need_track(state, "track", track)
    _need_track(state, "onto", onto)
    if track == onto:
        raise _Refused("'track' and 'onto' are the same track")
    frames = state.table["frame"].to_numpy()
    shared = np.intersect1d(frames[state.rows(track)], frames[state.rows(onto)])
    if len(shared):
        raise _Refused(f"'track', 'onto': tracks {track} and {onto} both have a nucleus in frame(s) "
                       f"{', '.join(map(str, shared[:5]))}{'…' if len(shared) > 5 else ''}; delete or relabel one "
                       "of them first")
    early, late = sorted((track, onto), key=lambda t: state.span(t)[0])
    if state.span(early)[1] > state.span(late)[0]:
        raise _Refused(f"'track', 'onto': tracks {track} and {onto} take turns over frames "
                       f"{state.span(late)[0]}–{state.span(early)[1]}; one must end before the other starts")
    others = [d for d in state.daughters(early) if d != late]
    if others:
        raise _Refused(f"'track', 'onto': track {early} divides into {others} before track {late} starts; "
                       "orphan them first")
    if state.mother(late) not in (0, early):
        raise _Refused(f"'track', 'onto': track {late} has mother {state.mother(late)} but would continue "
                       f"track {early}; orphan it first")
    table = state.table
    mother = state.mother(early)
    table.loc[state.rows(track) | state.rows(onto), ["track", "parent"]] = [onto, mother]
    table.loc[table["parent"] == track, "parent"] = onto
    state.freeze(onto)
    return f"track {track} continues track {onto}"


def _ancestors(state: RunState, track: int) -> list[int]:
    mothers = state.table.groupby("track")["parent"].first().to_dict()
    chain, seen = [], {track}
    while mothers.get(track, 0) and mothers[track] not in seen:
        track = mothers[track]
        chain.append(track)
        seen.add(track)
    return chain


def _parent(state: RunState, track: int, mother: int) -> str:
    _need_track(state, "track", track)
    _need_track(state, "mother", mother)
    if track == mother:
        raise _Refused("'track', 'mother': a track cannot be its own mother")
    if track in _ancestors(state, mother):
        raise _Refused(f"'mother': lineage cycle: track {track} is an ancestor of track {mother}")
    if state.span(mother)[1] >= state.span(track)[0]:
        raise _Refused(f"'track', 'mother': mother {mother} is seen until frame {state.span(mother)[1]}, daughter "
                       f"{track} from frame {state.span(track)[0]}; a daughter starts after her mother ends")
    others = [d for d in state.daughters(mother) if d != track]
    if len(others) >= 2:
        raise _Refused(f"'mother': track {mother} already has daughters {others[0]} and {others[1]}; a third "
                       "daughter is impossible (orphan one first)")
    state.table.loc[state.rows(track), "parent"] = mother
    state.freeze(track, mother)
    return f"track {track} is a daughter of track {mother}"


def _orphan(state: RunState, track: int) -> str:
    _need_track(state, "track", track)
    if state.mother(track) == 0:
        raise _Refused(f"'track': track {track} has no mother")
    mother = state.mother(track)
    state.table.loc[state.rows(track), "parent"] = 0
    state.freeze(track)
    return f"track {track} is no longer a daughter of track {mother}"


def _phase(state: RunState, track: int, first: int, last: int, phase: str) -> str:
    if not state.phases_resolved:
        raise _Refused(f"the run's classes {state.class_names} are not G1/G2, S, M: it has no phases to fix")
    _need_track(state, "track", track)
    _need_frames_in(state, track, first, last, "'first', 'last'")
    frames = state.table["frame"].to_numpy()
    rows = state.rows(track) & (frames >= first) & (frames <= last)
    state.table.loc[rows, FIXED_PHASE] = phase
    return f"track {track} is in {phase} in frames {first}–{last} ({int(rows.sum())} nuclei)"


def _delete(state: RunState, track: int, first: int | None = None, last: int | None = None) -> str:
    _need_track(state, "track", track)
    rows = state.rows(track)
    if first is not None:
        _need_frames_in(state, track, first, last, "'first', 'last'")
        frames = state.table["frame"].to_numpy()
        rows &= (frames >= first) & (frames <= last)
        if not rows.any():
            raise _Refused(f"'first', 'last': track {track} has no nucleus in frames {first}–{last} (a gap)")
    count = int(rows.sum())
    state.drop_rows(rows)
    return f"deleted {count} nuclei of track {track}"


def _need_nucleus(state: RunState, frame: int, label: int, field: str) -> int:
    row = state.row_at(frame, label)
    if row is None:
        raise _Refused(f"'{field}': no nucleus labelled {label} in frame {frame}")
    return row


def _merge(state: RunState, frame: int, labels: list[int]) -> str:
    _need_frame(state, frame)
    keep, other = (_need_nucleus(state, frame, label, "labels") for label in labels)
    table = state.table
    area = table.loc[[keep, other], "area"].to_numpy(np.float64) if "area" in table else np.ones(2)
    weights = area / area.sum()
    # texture too, by area: not the merged nucleus' own sd/mean, but near it when the halves look alike
    averaged = [c for c in (*COORDINATES, "mean_pcna", "texture_pcna", "mean_dic",
                            *map(probability_column, state.class_names)) if c in table]
    merged = {c: float(np.nansum(table.loc[[keep, other], c].to_numpy(np.float64) * weights)) for c in averaged}
    if "area" in table:
        merged["area"] = int(area.sum())
    if "score" in table:
        merged["score"] = float(table.loc[[keep, other], "score"].max())
    if "predicted_phase" in table:
        merged["predicted_phase"] = table.loc[[keep, other][int(np.argmax(area))], "predicted_phase"]
    for column, value in merged.items():
        table.loc[keep, column] = value
    mask = np.array(state.labels[frame])
    mask[mask == table.loc[other, "label"]] = table.loc[keep, "label"]
    state.labels[frame] = mask
    state.drop_rows(np.arange(len(table)) == other)
    return f"nuclei {labels[0]} and {labels[1]} of frame {frame} are one nucleus of track {labels[0]}"


def _relabel(state: RunState, frame: int, label: int, track: int) -> str:
    _need_frame(state, frame)
    row = _need_nucleus(state, frame, label, "label")
    _need_track(state, "track", track)
    if track == label:
        raise _Refused(f"'track': the nucleus is already in track {track}")
    if state.row_at(frame, track) is not None:
        raise _Refused(f"'track': track {track} already has a nucleus in frame {frame}; delete, merge or relabel "
                       "it first")
    mother = state.mother(track)
    if mother and state.exists(mother) and frame <= state.span(mother)[1]:
        raise _Refused(f"'frame', 'track': track {track}'s mother {mother} is seen until frame "
                       f"{state.span(mother)[1]}; her daughter cannot hold a nucleus in frame {frame}")
    early_daughters = [d for d in state.daughters(track) if state.span(d)[0] <= frame]
    if early_daughters:
        raise _Refused(f"'frame', 'track': track {track}'s daughter(s) {early_daughters} are seen by frame {frame}")
    state.table.loc[row, ["track", "parent"]] = [track, mother]
    if not state.exists(label):
        state.forget([label])
    state.freeze(track)
    return f"the nucleus labelled {label} in frame {frame} is in track {track} now"


_APPLY = {"split": _split, "join": _join, "parent": _parent, "orphan": _orphan, "phase": _phase,
          "delete": _delete, "merge": _merge, "relabel": _relabel}


def apply_edits(state: RunState, edits: list[dict[str, Any]], source: str = "") -> RunState:
    """Apply checked edits (:func:`~pcnacycle.correct.edits.check_edits`) to ``state`` in order, in place.

    Raises
    ------
    PcnacycleError
        At the first edit that cannot apply: ``<source>: edits[i] (op fields): <why>``.
    """
    prefix = f"{source}: " if source else ""
    for index, edit in enumerate(edits):
        fields = {k: v for k, v in edit.items() if k != "op"}
        try:
            done = _APPLY[edit["op"]](state, **fields)
        except _Refused as exc:
            raise PcnacycleError(f"{prefix}{edit_name(index, edit)}: {exc}") from None
        log.info("%s: %s", edit_name(index, edit), done)
    state.spread_freeze()
    return state
