"""Parameters of a simulated movie, checked; the movie in memory."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import PcnacycleError

MIN_SIZE = 64
MAX_COVERAGE = 0.5
#: Nucleus radius (px) at which the texture lengths are given.
REFERENCE_RADIUS = 11.0


@dataclass
class SimulationParams:
    """Everything that defines a simulated movie; lengths in pixels, times in minutes.

    Phase durations are ``(mean, sd)`` in minutes of a log-normal distribution;
    brightnesses are expected photons per pixel before illumination and
    bleaching.
    """

    frames: int = 60
    size: tuple[int, int] = (512, 512)
    cells: int = 40
    seed: int = 0
    frame_interval: float = 10.0
    jitter: float = 0.0  # sd of the stage offset of each frame, px
    arrested_fraction: float = 0.0  # of the founder cells
    arrest_phases: tuple[str, ...] = ("G1", "G2")  # an arrested cell stays in one of these

    g1_minutes: tuple[float, float] = (540.0, 45.0)
    s_minutes: tuple[float, float] = (420.0, 40.0)
    g2_minutes: tuple[float, float] = (210.0, 20.0)
    m_minutes: tuple[float, float] = (52.0, 5.0)

    nucleus_radius: float = 11.0  # equivalent radius of a full-size G1 nucleus
    nucleus_radius_sd: float = 0.1  # relative, between cells
    aspect_range: tuple[float, float] = (0.65, 0.95)  # minor/major axis ratio
    irregularity: float = 0.035  # sd of the shape harmonics
    growth: float = 0.8  # relative nuclear area gain from G1 start to G2 end
    mitotic_spread: float = 1.3  # radius of the rounded mitotic cell / G2 nucleus
    daughter_size: float = 0.8  # radius of a newborn daughter / full-size G1
    daughter_brightness: float = 0.6  # brightness of a newborn daughter / G1
    recovery_minutes: float = 60.0  # time constant of a daughter reaching full size
    body_scale: float = 1.8  # cell body radius / nucleus radius (DIC)

    speed: float = 0.25  # rms speed, px/min
    persistence_minutes: float = 60.0
    turning: float = 0.004  # rms angular speed, rad/min
    contact: float = 0.95  # nuclei are pushed apart to this fraction of touching

    g1_photons: float = 300.0
    g2_ratio: float = 1.6  # G2 / G1 brightness
    s_ratio: float = 0.9  # nucleoplasm in S / G1
    m_ratio: float = 0.45  # mitotic cell / G2 brightness
    foci_ratio: float = 1.6  # peak of a replication focus / G1 brightness
    texture: float = 0.05  # relative sd of the faint nuclear texture
    texture_grain: float = 1.2  # sd of the texture's smoothing, px of an 11-px-radius nucleus
    nucleolus_depth: float = 0.45  # relative dimming at a nucleolus centre
    nucleoli_count: tuple[int, int] = (1, 4)  # fewest and most nucleoli per nucleus
    foci_density: float = 1.0  # replication foci per nucleus / the default's
    foci_size: float = 1.0  # sd of a replication focus / the default's
    # texture follows nucleus_radius: foci and grain sizes scale with it and the number of
    # foci per nucleus stays put, as under a different objective (lengths above are then
    # those of an 11-px-radius nucleus); off, they stay in px, as in movies made before
    scale_texture: bool = False
    m_cytoplasm: float = 0.0  # fraction of a mitotic cell's PCNA spread diffusely over the cell body
    cell_brightness_sd: float = 0.12  # relative, PCNA expression between cells
    cytoplasm_ratio: float = 0.05  # cytoplasmic PCNA / G1 brightness
    background_photons: float = 20.0

    camera_offset: float = 100.0  # ADU
    gain: float = 1.0  # ADU per photon
    read_noise: float = 2.0  # ADU, sd
    illumination_falloff: float = 0.3  # relative loss at the field corners
    bleach_per_frame: float = 0.002  # relative PCNA signal loss per exposure
    defocus: float = 1.0  # sd of the Gaussian blur, px
    bit_depth: int = 16  # the camera clips counts at 2**bit_depth - 1 (files stay uint16)
    debris: float = 0.0  # bright unlabelled specks in the PCNA channel per 100 000 px

    dic_photons: float = 3000.0
    dic_contrast: float = 0.35  # relative DIC intensity at a unit height slope
    dic_rim: float = 0.4  # relative brightness of the rim of a mitotic cell

    def phase_minutes(self) -> tuple[tuple[float, float], ...]:
        """The ``(mean, sd)`` duration of G1, S, G2 and M, in that order."""
        return (self.g1_minutes, self.s_minutes, self.g2_minutes, self.m_minutes)

    def texture_scale(self) -> float:
        """Length scale of foci and grain relative to the default nucleus (1 unless ``scale_texture``)."""
        return self.nucleus_radius / REFERENCE_RADIUS if self.scale_texture else 1.0

    def mean_nuclear_area(self) -> float:
        """Nuclear area in px averaged over interphase (growth is linear in area)."""
        return math.pi * self.nucleus_radius**2 * (1 + self.growth / 2)

    def validate(self) -> None:
        """Raise :class:`PcnacycleError` naming the first impossible parameter."""
        _check_size(self.size)
        _check_int("frames", self.frames, 1)
        _check_int("cells", self.cells, 1)
        _check_int("seed", self.seed, 0)
        _check_positive("frame_interval", self.frame_interval)
        for name, spec in zip(("g1_minutes", "s_minutes", "g2_minutes", "m_minutes"), self.phase_minutes()):
            _check_duration(name, spec)
        _check_range("arrested_fraction", self.arrested_fraction, 0.0, 1.0)
        if not self.arrest_phases or set(self.arrest_phases) - {"G1", "G2"}:
            raise PcnacycleError(f"arrest_phases={self.arrest_phases!r}: give one or both of 'G1', 'G2'")
        _check_positive("nucleus_radius", self.nucleus_radius)
        _check_range("jitter", self.jitter, 0.0, min(self.size) / 16)
        for name in ("persistence_minutes", "recovery_minutes", "g1_photons", "gain"):
            _check_positive(name, getattr(self, name))
        for name in ("speed", "turning", "read_noise", "background_photons", "defocus", "camera_offset"):
            _check_range(name, getattr(self, name), 0.0, math.inf)
        _check_range("bleach_per_frame", self.bleach_per_frame, 0.0, 0.999)
        for name in ("texture_grain", "foci_density", "foci_size"):
            _check_positive(name, getattr(self, name))
        for name in ("texture", "debris", "cytoplasm_ratio"):
            _check_range(name, getattr(self, name), 0.0, math.inf)
        for name in ("nucleolus_depth", "m_cytoplasm", "m_ratio"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        count = self.nucleoli_count
        if not (isinstance(count, (tuple, list)) and len(count) == 2 and all(_is_int(c) for c in count)
                and 0 <= count[0] <= count[1] <= 20):
            raise PcnacycleError(f"nucleoli_count={count!r}: must be (fewest, most), integers 0 ≤ fewest ≤ most ≤ 20")
        if self.bit_depth not in (8, 10, 12, 14, 16):
            raise PcnacycleError(f"bit_depth={self.bit_depth!r}: must be one of 8, 10, 12, 14, 16")
        if not isinstance(self.scale_texture, bool):
            raise PcnacycleError(f"scale_texture={self.scale_texture!r}: must be true or false")
        height, width = self.size
        coverage = self.cells * self.mean_nuclear_area() / (height * width)
        if coverage > MAX_COVERAGE:
            fit = int(MAX_COVERAGE * height * width / self.mean_nuclear_area())
            raise PcnacycleError(
                f"cells={self.cells} do not fit in a {height}x{width} field: nuclei of mean area "
                f"{self.mean_nuclear_area():.0f} px would cover {coverage:.0%} of it; "
                f"use at most {fit} cells (50% coverage) or a larger size"
            )


@dataclass
class Movie:
    """A simulated movie in memory.

    Attributes
    ----------
    pcna, dic : (T, H, W) uint16
        The two channels as a camera records them.
    labels : (T, H, W) uint16
        Nucleus masks, label = track id, 0 = background.
    objects : DataFrame
        One row per nucleus per frame: ``frame, track, parent, phase, class,
        centroid_y, centroid_x, area, mean_pcna``.
    tracks : DataFrame
        ``track, first_frame, last_frame, parent`` (parent 0 = none).
    durations : DataFrame
        One row per track: frames and minutes seen in each phase, whether the
        movie start or end cuts the first or last phase, arrest.
    randomisation : dict or None
        ``{"ranges": ..., "drawn": ...}`` of a movie drawn by
        :func:`~pcnacycle.simulation.randomise.draw_params`.
    """

    params: SimulationParams
    pcna: np.ndarray
    dic: np.ndarray
    labels: np.ndarray
    objects: pd.DataFrame
    tracks: pd.DataFrame
    durations: pd.DataFrame
    randomisation: dict | None = None  # ranges and drawn values of a randomised movie


# ------------------------------------------------------------------ validation


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(name: str, value, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise PcnacycleError(f"{name}={value!r}: must be an integer ≥ {minimum}")


def _check_positive(name: str, value) -> None:
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise PcnacycleError(f"{name}={value!r}: must be a positive number")


def _check_range(name: str, value, low: float, high: float) -> None:
    if not isinstance(value, numbers.Real) or not low <= value <= high:
        raise PcnacycleError(f"{name}={value!r}: must be a number between {low:g} and {high:g}")


def _check_size(size) -> None:
    valid = isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) for s in size)
    if not valid or min(size) < MIN_SIZE:
        raise PcnacycleError(f"size={size!r}: must be two integers (height, width), each ≥ {MIN_SIZE} px")


def _check_duration(name: str, spec) -> None:
    valid = isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(v, numbers.Real) for v in spec)
    if not valid or not (math.isfinite(spec[0]) and spec[0] > 0 and math.isfinite(spec[1]) and spec[1] >= 0):
        raise PcnacycleError(f"{name}={spec!r}: must be (mean, sd) in minutes with mean > 0 and sd ≥ 0")


def _check_annotated_frames(annotated_frames, frames: int) -> None:
    if not _is_int(annotated_frames) or not 0 <= annotated_frames <= frames:
        raise PcnacycleError(f"annotated_frames={annotated_frames!r}: must be an integer from 0 to frames={frames}")
