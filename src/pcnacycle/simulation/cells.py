"""The state of one simulated cell and the random draws that create one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..phases import PHASES
from .params import SimulationParams

_G1, _S, _G2, _M = range(4)


@dataclass
class _Cell:
    """State of one cell; positions in px of the stage (before jitter)."""

    track: int
    parent: int
    first_frame: int
    durations: np.ndarray  # (4,) int, frames in G1, S, G2, M
    phase: int
    frames_in_phase: int
    age: int  # frames since birth
    y: float
    x: float
    angle: float  # of the major axis, rad
    radius: float  # equivalent radius of the full-size G1 nucleus
    aspect: float
    harmonics: np.ndarray  # (3,) complex, shape modulation for k = 2, 3, 4
    body_harmonics: np.ndarray  # (3,) complex, same for the cell body
    brightness: float  # relative PCNA expression
    nucleoli: np.ndarray  # (n, 3): normalised radius, polar angle, sd in px
    arrested: str = ""
    cut_start: bool = False
    vy: float = 0.0
    vx: float = 0.0
    spin: float = 0.0
    foci: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # u, phi, amplitude, sd px
    phase_frames: np.ndarray = field(default_factory=lambda: np.zeros(4, int))
    last_frame: int = -1

    def advances(self) -> bool:
        """Whether the current phase can end (an arrested cell stays put)."""
        return self.arrested != PHASES[self.phase]

    def phase_progress(self) -> float:
        """Fraction of the current phase elapsed at this frame, in (0, 1]."""
        duration = self.durations[self.phase]
        return min(self.frames_in_phase + 0.5, duration) / duration

    def interphase_progress(self) -> float:
        """Fraction of G1 + S + G2 elapsed, 1 in M; drives nuclear growth."""
        if self.phase == _M:
            return 1.0
        elapsed = self.durations[: self.phase].sum() + self.phase_progress() * self.durations[self.phase]
        return float(elapsed / self.durations[:3].sum())


def _lognormal(rng: np.random.Generator, mean: float, sd: float) -> float:
    """A log-normal draw with the given mean and sd (sd 0 gives the mean)."""
    sigma2 = math.log1p((sd / mean) ** 2)
    return float(rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2)))


def _draw_durations(params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Frames spent in G1, S, G2 and M, each ≥ 1 so that no phase is skipped: (4,) int."""
    minutes = np.array([_lognormal(rng, *spec) for spec in params.phase_minutes()])
    return np.maximum(1, np.round(minutes / params.frame_interval)).astype(int)


def _draw_harmonics(scale: float, rng: np.random.Generator) -> np.ndarray:
    """Complex amplitudes of the k = 2, 3, 4 shape modes, decaying with k: (3,) complex."""
    return scale * (rng.normal(size=3) + 1j * rng.normal(size=3)) / np.sqrt(2) / np.array([1.0, 1.5, 2.0])


def _draw_nucleoli(rng: np.random.Generator, radius: float, counts: tuple[int, int]) -> np.ndarray:
    """``counts[0]``–``counts[1]`` nucleoli at normalised radius ≤ 0.6: (n, 3) = u, polar angle, sd px."""
    count = rng.integers(counts[0], counts[1] + 1)
    return np.column_stack([
        0.6 * np.sqrt(rng.uniform(size=count)),
        rng.uniform(0, 2 * np.pi, count),
        radius * rng.uniform(0.09, 0.15, count),
    ])


def _new_cell(params, rng, track, parent, first_frame, y, x, radius, brightness) -> _Cell:
    """A newborn cell at the start of G1."""
    return _Cell(
        track=track, parent=parent, first_frame=first_frame, durations=_draw_durations(params, rng),
        phase=_G1, frames_in_phase=0, age=0, y=y, x=x, angle=rng.uniform(0, np.pi), radius=radius,
        aspect=rng.uniform(*params.aspect_range), harmonics=_draw_harmonics(params.irregularity, rng),
        body_harmonics=_draw_harmonics(3 * params.irregularity, rng), brightness=brightness,
        nucleoli=_draw_nucleoli(rng, radius, params.nucleoli_count),
    )
