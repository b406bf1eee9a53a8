"""What ``pcnacycle run`` decides after detection, in one validated object.

:class:`RunSettings` holds every parameter of the stages after the detector:
which detections count, how they are linked into tracks, which proposed
divisions are accepted, and the phase resolver's priors. It is validated when
made, saved in ``run.json`` and read back from YAML or JSON, so a run can be
repeated with ``pcnacycle run --settings run.json``.

Distances are given in nucleus diameters (the movie's median equivalent
diameter, measured on the detections) so one set of defaults serves nuclei of
20 and of 70 pixels; ``max_distance`` / ``division_distance`` in pixels
override them. The division defaults come from ground truth
(``benchmarks/division_geometry.py``, BENCHMARKS.md): daughters appear 0.1–1.3
diameters from their mother, one frame after her last, with their midpoint
within 0.51 × their separation of her.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import PcnacycleError
from .io import read_yaml
from .phases import DEFAULT_PHASE_MINUTES

__all__ = ["RunSettings", "load_settings"]


def _default_phase_minutes() -> dict[str, float]:
    return dict(DEFAULT_PHASE_MINUTES)


@dataclass(frozen=True)
class RunSettings:
    """Parameters of filtering, tracking, division vetting and phase resolving.

    Attributes
    ----------
    nucleus_diameter : float or None
        The movie's nucleus diameter in pixels; None: measured on the model's
        detections. Frames are resized so nuclei look the size the model was
        trained on (its ``INPUT.NUCLEUS_DIAMETER``).
    rescale : bool
        False keeps frames at their own size whatever the nuclei measure.
    score_threshold, min_area, exclude_border
        Detections below this score or area (pixels), or touching the frame
        edge when ``exclude_border``, are dropped. 0.7: the matching F1 of
        simulated, DSB2018, GOWT1 and real PCNA frames rises with the threshold
        up to 0.7, and on movies tracked end to end it leaves fewer spurious
        divisions (BENCHMARKS.md, "The score threshold end to end"); lower it
        for a movie of very dim nuclei.
    min_area_share : float
        Detections under this share of a typical nucleus' area (the
        area-weighted median of the movie's detections) are dropped before
        tracking: specks, micronuclei and pieces of nuclei, which are no cells
        to follow (:func:`pcnacycle.pipeline.drop_specks`; 0.25 is half the
        diameter, the line the nucleus-size estimate draws). Kept: nuclei cut
        by the frame's edge, and a nucleus outlined small for a frame or two
        inside its own track. 0 keeps them all.
    link_reach : float
        Largest step of a nucleus between the frames it is seen in, in nucleus
        diameters (ground truth: 95 % of steps under 0.27).
    max_distance : float or None
        The same in pixels; overrides ``link_reach``.
    max_gap : int
        Most consecutive frames a nucleus may go undetected and keep its track.
    merge_frames : int
        Most frames two touching nuclei may be outlined as one and still be told
        apart: a division whose two daughters are, in size and place, the two
        nuclei that met in the mother's last frames is undone
        (:func:`pcnacycle.tracking.merges.separate_merged_neighbours`;
        BENCHMARKS.md, "Neighbours outlined as one"). 0 turns it off.
    motion_persistence : float or None
        How much of its last step a nucleus is expected to take again (0 to
        1): it is linked from ``position + persistence × last step``, so two
        cells passing each other keep their tracks. None: estimated from the
        movie's own steps. 0 (the default) links from the last position alone:
        on simulated movies prediction undid one swapped pair of crossing
        cells but, at 30-minute frames, cost division precision (BENCHMARKS.md,
        "Motion prediction").
    division_reach : float
        Largest distance from a mother's last centroid to a daughter's first,
        in nucleus diameters (ground truth: at most 1.3).
    division_distance : float or None
        The same in pixels; overrides ``division_reach``; 0 disables divisions.
    mitosis_window : int
        Detections at the end of a mother and the start of a daughter searched for M.
    min_mitosis_probability : float
        A proposed division with this much M probability in that window is accepted.
    symmetry_tolerance : float
        Without M evidence, a division is accepted when both daughters appear
        in the next frame and the mother's last centroid lies within this
        fraction of the daughters' separation from their midpoint.
    phase_minutes : {phase: minutes}
        Expected G1, S, G2 and M durations: the resolver's prior.
    estimate_durations : bool
        Re-estimate ``phase_minutes`` from the movie's own complete phases
        (median, from ``min_phases_for_estimate`` cells on) and resolve again.
    min_phases_for_estimate : int
    min_probability : float
        Class probabilities are raised to at least this before taking logs.
    emission_temperature : float
        The resolver reads ``log p / T``: above 1 it trusts the detector's
        confidence less and its ranking more (a detector whose S probability of
        0.2 is rare in G1 nuclei still says "S" with it).
    class_prior_correction : bool
        Divide the detector's probabilities by each class's mean probability
        over the movie (hybrid HMM/network "scaled likelihoods"): the
        detector's probabilities already hold its belief that most nuclei are
        G1/G2, which the model's transitions would otherwise count twice.
    texture_evidence : float
        Weight of the texture evidence for S (grainy PCNA foci, learnt from the
        movie's confident calls; :func:`pcnacycle.tracking.evidence.texture_log_ratio`); 0 turns it off.
    texture_min_confidence : float
        The least probability of the detector's calls the texture evidence
        is learnt from: 0.9 where the movie has enough calls so sure (20 of
        S and of not S), else 0.8, and so on down to this. A model shown
        nuclei unlike its training movies is seldom sure, yet its surer calls
        are still mostly right; 0.9 learns from sure calls only.
    mitosis_evidence : float
        Weight of the detector's M probability read against the cell's own
        frames (:func:`pcnacycle.tracking.evidence.mitosis_log_ratio`): a cell
        entering M lifts its p_M far above its own interphase level before
        the detector calls it M. 0 turns it off.
    phase_duration_cv : float
        How much a phase's duration varies between cells (sd / mean). The
        resolver lets G1, S and G2 last at least ``1 - cv`` of their expected
        duration in most cells (any length beyond, memoryless), so a phase of
        a frame or two, which a short run of wrong calls would make, is as
        unlikely as it is in cells. 1 gives the memoryless (geometric)
        durations of a plain HMM.
    atypical_duration_share : float
        Share of cells whose phase may last any time (memoryless, same mean):
        a phase much shorter than expected costs ``log`` of it, so that
        sustained evidence still wins over the expected duration.
    mitosis_skip : float
        Chance that a cell divides without a frame the detector calls M (M
        shorter than a frame, or missed).
    missed_division : float
        Prior chance that the tracker went on through a division instead of
        ending the track there: a restart inside a track needs evidence
        (area, a sister) to beat it.
    false_division : float
        Prior chance that a division the tracker made is not one (a nucleus
        appearing beside a cell, taken for her daughter). A mother whose
        evidence says G1 or S to her last frame, where a cell divides only
        after G2, then loses her daughters: the nearer goes on as her track.
    division_log_area : (mean, sd)
        log(daughter area / mother's last area) at a division (ground truth:
        mean −0.64 to −1.5, sd 0.1–0.5).
    steady_log_area_sd : float
        sd of the log area change of one nucleus between frames (ground truth 0.05–0.24).
    sister_evidence : float
        Log-likelihood bonus for a cycle restart inside a track when a new
        track without a parent starts beside it in that frame (the missed sister).
    jump_probability : float
        Chance per frame that a track jumps to another cell (a wrong link):
        lets sustained contrary evidence override the cycle order.
    min_arrest_frames : int or None
        A track never seen in S or M is reported arrested when it spans this
        many frames (default: the whole movie).
    """

    nucleus_diameter: float | None = None
    rescale: bool = True
    score_threshold: float = 0.7
    min_area: int = 20
    min_area_share: float = 0.25
    exclude_border: bool = False
    link_reach: float = 1.0
    max_distance: float | None = None
    max_gap: int = 2
    merge_frames: int = 3
    motion_persistence: float | None = 0.0
    division_reach: float = 1.5
    division_distance: float | None = None
    mitosis_window: int = 2
    min_mitosis_probability: float = 0.5
    symmetry_tolerance: float = 0.6
    phase_minutes: dict = field(default_factory=_default_phase_minutes)
    estimate_durations: bool = True
    min_phases_for_estimate: int = 5
    min_probability: float = 1e-3
    emission_temperature: float = 1.0
    class_prior_correction: float = 0.5
    texture_evidence: float = 1.0
    texture_min_confidence: float = 0.7
    mitosis_evidence: float = 1.0
    phase_duration_cv: float = 0.7
    atypical_duration_share: float = 0.05
    mitosis_skip: float = 0.3
    missed_division: float = 0.2
    false_division: float = 0.01
    division_log_area: tuple = (-0.9, 0.5)
    steady_log_area_sd: float = 0.2
    sister_evidence: float = 3.0
    jump_probability: float = 1e-5
    min_arrest_frames: int | None = None

    def __post_init__(self):
        if not isinstance(self.phase_minutes, Mapping):
            raise PcnacycleError(f"phase_minutes={self.phase_minutes!r}: give a mapping such as {{G1: 600, S: 480}}")
        unknown = set(self.phase_minutes) - set(DEFAULT_PHASE_MINUTES)
        if unknown:
            raise PcnacycleError(f"phase_minutes: unknown phase(s) {sorted(unknown)}; use G1, S, G2, M")
        minutes = {**DEFAULT_PHASE_MINUTES, **dict(self.phase_minutes)}
        object.__setattr__(self, "phase_minutes", {p: minutes[p] for p in DEFAULT_PHASE_MINUTES})
        object.__setattr__(self, "division_log_area", tuple(self.division_log_area))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`PcnacycleError` naming the first impossible value."""
        for phase, minutes in self.phase_minutes.items():
            _number(f"phase_minutes.{phase}", minutes, positive=True)
        for name in ("link_reach", "division_reach", "symmetry_tolerance", "steady_log_area_sd",
                     "emission_temperature"):
            _number(name, getattr(self, name), positive=True)
        for name in ("max_distance", "nucleus_diameter"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), positive=True)
        if self.division_distance is not None:
            _number("division_distance", self.division_distance, low=0.0)
        if self.motion_persistence is not None:
            _number("motion_persistence", self.motion_persistence, low=0.0, high=1.0)
        _number("sister_evidence", self.sister_evidence, low=0.0)
        _number("texture_evidence", self.texture_evidence, low=0.0)
        _number("mitosis_evidence", self.mitosis_evidence, low=0.0)
        _number("texture_min_confidence", self.texture_min_confidence, low=0.5, high=1.0, open_interval=True)
        _number("phase_duration_cv", self.phase_duration_cv, low=0.05, high=1.0)
        for name in ("score_threshold", "min_mitosis_probability"):
            _number(name, getattr(self, name), low=0.0, high=1.0)
        for name in ("min_probability", "mitosis_skip", "missed_division", "jump_probability",
                     "atypical_duration_share", "false_division"):
            _number(name, getattr(self, name), low=0.0, high=1.0, open_interval=True)
        _integer("min_area", self.min_area, 0)
        _integer("max_gap", self.max_gap, 0)
        _integer("merge_frames", self.merge_frames, 0)
        _integer("mitosis_window", self.mitosis_window, 1)
        _integer("min_phases_for_estimate", self.min_phases_for_estimate, 1)
        if self.min_arrest_frames is not None:
            _integer("min_arrest_frames", self.min_arrest_frames, 1)
        _number("class_prior_correction", self.class_prior_correction, low=0.0, high=1.0)
        _number("min_area_share", self.min_area_share, low=0.0, high=1.0)
        for name in ("exclude_border", "estimate_durations", "rescale"):
            if not isinstance(getattr(self, name), bool):
                raise PcnacycleError(f"{name}={getattr(self, name)!r}: must be true or false")
        if len(self.division_log_area) != 2:
            raise PcnacycleError(f"division_log_area={list(self.division_log_area)!r}: give [mean, sd]")
        _number("division_log_area[0]", self.division_log_area[0])
        _number("division_log_area[1]", self.division_log_area[1], positive=True)

    def replace(self, **changes) -> "RunSettings":
        """A copy with ``changes`` (field names) applied and validated."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise PcnacycleError(f"unknown run setting(s) {sorted(unknown)}; known: "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        if "phase_minutes" in changes:
            changes["phase_minutes"] = {**self.phase_minutes, **dict(changes["phase_minutes"] or {})}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for ``run.json`` and YAML."""
        values = dataclasses.asdict(self)
        values["division_log_area"] = list(self.division_log_area)
        return values

    def distances(self, diameter: float | None) -> tuple[float, float]:
        """``(max_distance, division_distance)`` in pixels for nuclei of ``diameter`` pixels.

        Explicit pixel values win; otherwise the reaches times the diameter.
        """
        if (self.max_distance is None or self.division_distance is None) and not diameter:
            raise PcnacycleError("no nucleus diameter to scale the tracking reach by: give max_distance and "
                                 "division_distance in pixels")
        link = self.max_distance if self.max_distance is not None else self.link_reach * diameter
        division = self.division_distance if self.division_distance is not None else self.division_reach * diameter
        return float(link), float(division)


def median_diameter(areas) -> float | None:
    """Median equivalent diameter (pixels) of objects of these ``areas`` (pixels); None for no object."""
    areas = np.asarray(areas, np.float64)
    areas = areas[areas > 0]
    return float(np.median(2 * np.sqrt(areas / np.pi))) if len(areas) else None


def load_settings(path: str | Path | None = None, **changes) -> RunSettings:
    """:class:`RunSettings` from a YAML/JSON file (a ``run.json`` works: its ``settings`` are used) and changes.

    Unknown keys and bad values raise :class:`PcnacycleError` naming the file and key.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        loaded = read_yaml(path, "run settings", "YAML or JSON")
        if isinstance(loaded, Mapping) and isinstance(loaded.get("settings"), Mapping):
            loaded = loaded["settings"]
        if not isinstance(loaded, Mapping):
            raise PcnacycleError(f"{path}: run settings must be a mapping of names to values")
        # YAML 1.1 reads 1e-5 (no dot) as a string; no setting is a string, so such numbers are numbers
        values = {k: _number_from_text(v) for k, v in loaded.items()}
    try:
        from_file = RunSettings().replace(**values)
    except PcnacycleError as exc:
        raise PcnacycleError(f"{path}: {exc}") from None
    except TypeError as exc:
        raise PcnacycleError(f"{path}: bad run settings ({exc})") from None
    return from_file.replace(**{k: v for k, v in changes.items() if v is not None})


def _number_from_text(value):
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_phase_minutes(text: str) -> dict[str, float]:
    """``"G1=600,S=480"`` → ``{"G1": 600.0, "S": 480.0}``; a clear error otherwise."""
    result = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            result[name.strip()] = float(value)
        except ValueError:
            raise PcnacycleError(f"--phase-minutes {text!r}: write PHASE=MINUTES pairs, e.g. G1=600,S=480") from None
    return result


def _number(name: str, value, low: float = -math.inf, high: float = math.inf, positive: bool = False,
            open_interval: bool = False) -> None:
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if valid:
        valid = (value > 0 if positive else True) and (low < value < high if open_interval else low <= value <= high)
    if not valid:
        where = "a positive number" if positive else (
            f"a number between {low:g} and {high:g}" + (" (exclusive)" if open_interval else "")
            if math.isfinite(high) else f"a number ≥ {low:g}" if math.isfinite(low) else "a finite number")
        raise PcnacycleError(f"{name}={value!r}: must be {where}")


def _integer(name: str, value, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise PcnacycleError(f"{name}={value!r}: must be an integer ≥ {low}")

