"""Synthetic PCNA time-lapse movies with exact ground truth.

No annotated PCNA movie is public, so the simulator provides both the training
data (``annotated/``) and the answer key for every pipeline stage
(``truth/``): segmentation, phase calls, tracks and phase durations.

Model
-----
Every cell is a state machine G1 → S → G2 → M → division. Phase durations are
drawn per cell (log-normal, minutes) and rounded to whole frames, at least one
frame each, so every phase a cell passes through is seen. Founder cells start
at a random point of their cycle; an optional fraction of them is arrested
(stays in G1, or stays in G2, for the whole movie).

Nuclei are slightly irregular ellipses: an elliptic norm divided by a smooth
radial modulation ``1 + Re(sum_k c_k exp(i k phi))`` (k = 2, 3, 4). They drift
(persistent random walk), turn, grow through interphase, and push each other
apart (soft pairwise repulsion) so that they touch but rarely overlap; any
residual overlap goes to the nucleus whose normalised radius is smaller there,
which keeps each nucleus's centre its own. Cells are kept inside the field of
view, so tracks end only at division or at the end of the movie.

Appearance (PCNA channel): G1 uniform and moderate with faint texture and dark
nucleoli; S with replication foci whose pattern evolves (early: many small foci
throughout, mid: along the rim and around nucleoli, late: few large clumps);
G2 uniform and brighter; M a dim, larger, rounded cell with a dark chromosome
plate that splits in anaphase; daughters start small and dim in G1. DIC: relief
shading of a cell height map on a textured background, mitotic cells round and
tall with a bright rim. Both channels go through a camera model: uneven
illumination, defocus blur, photobleaching (PCNA), Poisson shot noise,
Gaussian read noise and a camera offset, optional stage jitter.

Each cell is rendered only inside its bounding box, so the cost scales with the
number of cells, not with cells × frame size.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage import measure
from tqdm import tqdm

from .errors import PcnacycleError
from .io import MANIFEST_KEY, files_under, read_manifest, remove_outputs, write_json, write_text, write_tiff

__all__ = [
    "CLASSES",
    "PHASES",
    "PHASE_CLASS",
    "Movie",
    "SimulationParams",
    "simulate",
    "simulate_movie",
    "write_movie",
]

PHASES = ("G1", "S", "G2", "M")
#: The trainer's classes: G1 and G2 look alike in PCNA (uniform), so they are one class.
PHASE_CLASS = {"G1": "G1/G2", "S": "S", "G2": "G1/G2", "M": "M"}
CLASSES = ("G1/G2", "S", "M")

MIN_SIZE = 64
MAX_COVERAGE = 0.5
#: Written last, listing every file the simulation wrote: its presence marks a complete folder.
MARKER = "simulation.json"
#: What simulations wrote before the marker listed it (for --overwrite of such a folder).
_LEGACY_OUTPUTS = ("truth/**/*", "annotated/**/*", "pcna.tif", "dic.tif")
# fastest zlib level: several times quicker than the default, files only ~3% larger (noisy pixels)
_TIFF = {"compressionargs": {"level": 1}}
_G1, _S, _G2, _M = range(4)


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
    nucleolus_depth: float = 0.45  # relative dimming at a nucleolus centre
    cell_brightness_sd: float = 0.12  # relative, PCNA expression between cells
    cytoplasm_ratio: float = 0.05  # cytoplasmic PCNA / G1 brightness
    background_photons: float = 20.0

    camera_offset: float = 100.0  # ADU
    gain: float = 1.0  # ADU per photon
    read_noise: float = 2.0  # ADU, sd
    illumination_falloff: float = 0.3  # relative loss at the field corners
    bleach_per_frame: float = 0.002  # relative PCNA signal loss per exposure
    defocus: float = 1.0  # sd of the Gaussian blur, px

    dic_photons: float = 3000.0
    dic_contrast: float = 0.35  # relative DIC intensity at a unit height slope
    dic_rim: float = 0.4  # relative brightness of the rim of a mitotic cell

    def phase_minutes(self) -> tuple[tuple[float, float], ...]:
        """The ``(mean, sd)`` duration of G1, S, G2 and M, in that order."""
        return (self.g1_minutes, self.s_minutes, self.g2_minutes, self.m_minutes)

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
    """

    params: SimulationParams
    pcna: np.ndarray
    dic: np.ndarray
    labels: np.ndarray
    objects: pd.DataFrame
    tracks: pd.DataFrame
    durations: pd.DataFrame


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


# ------------------------------------------------------------------ cells


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


def _draw_nucleoli(rng: np.random.Generator, radius: float) -> np.ndarray:
    """1–4 nucleoli at normalised radius ≤ 0.6: (n, 3) = u, polar angle, sd px."""
    count = rng.integers(1, 5)
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
        nucleoli=_draw_nucleoli(rng, radius),
    )


def _founders(params: SimulationParams, rng: np.random.Generator) -> list[_Cell]:
    """The cells of the first frame at random points of their cycle, spread over the field."""
    n_arrested = round(params.arrested_fraction * params.cells)
    arrested = np.zeros(params.cells, bool)
    arrested[rng.choice(params.cells, n_arrested, replace=False)] = True
    cells = []
    for index in range(params.cells):
        radius = params.nucleus_radius * _lognormal(rng, 1.0, params.nucleus_radius_sd)
        brightness = _lognormal(rng, 1.0, params.cell_brightness_sd)
        cell = _new_cell(params, rng, index + 1, 0, 0, 0.0, 0.0, radius, brightness)
        if arrested[index]:
            cell.arrested = str(rng.choice(params.arrest_phases))
            cell.phase = PHASES.index(cell.arrested)
            cell.frames_in_phase = int(rng.integers(cell.durations[cell.phase]))
        else:
            elapsed = int(rng.integers(cell.durations.sum()))
            ends = np.cumsum(cell.durations)
            cell.phase = int(np.searchsorted(ends, elapsed, side="right"))
            cell.frames_in_phase = elapsed - int(ends[cell.phase] - cell.durations[cell.phase])
        cell.age = int(cell.durations[: cell.phase].sum()) + cell.frames_in_phase
        cell.cut_start = cell.age > 0
        cell.y, cell.x = _free_spot(cells, cell, params, rng)
        speed = params.speed / np.sqrt(2)
        cell.vy, cell.vx = rng.normal(0, speed, 2)
        cells.append(cell)
    return cells


def _free_spot(cells: list[_Cell], cell: _Cell, params: SimulationParams, rng) -> tuple[float, float]:
    """A random position away from the placed cells (the best of 50 tries if crowded)."""
    height, width = params.size
    margin = _margin(cell, params)
    if not cells:
        return rng.uniform(margin, height - 1 - margin), rng.uniform(margin, width - 1 - margin)
    placed = np.array([(c.y, c.x) for c in cells])
    reach = np.array([_equivalent_radius(c, params) for c in cells]) + _equivalent_radius(cell, params)
    candidates = np.column_stack([rng.uniform(margin, height - 1 - margin, 50),
                                  rng.uniform(margin, width - 1 - margin, 50)])
    distance = np.hypot(*(candidates[:, None, :] - placed[None]).transpose(2, 0, 1))
    clearance = (distance / reach).min(axis=1)
    best = candidates[np.argmax(clearance)]
    return float(best[0]), float(best[1])


def _margin(cell: _Cell, params: SimulationParams) -> float:
    """Closest distance of a centre to the border: half a nucleus stays visible even under jitter."""
    return 0.5 * _equivalent_radius(cell, params) + 3 * params.jitter + 1


# ------------------------------------------------------------------ cell geometry


def _smoothstep(x):
    """0 below 0, 1 above 1, a smooth S-curve between (scalar or array)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _newborn(cell: _Cell, params: SimulationParams, start: float) -> float:
    """Relaxes from ``start`` (at birth) to 1 with the daughters' recovery time constant."""
    return 1 - (1 - start) * math.exp(-cell.age * params.frame_interval / params.recovery_minutes)


def _equivalent_radius(cell: _Cell, params: SimulationParams) -> float:
    """Radius of the disc with the nucleus's area at this frame (the rounded cell in M)."""
    g2_radius = cell.radius * math.sqrt(1 + params.growth)
    if cell.phase == _M:
        return g2_radius * (1 + (params.mitotic_spread - 1) * float(_smoothstep(3 * cell.phase_progress())))
    grown = cell.radius * math.sqrt(1 + params.growth * cell.interphase_progress())
    return grown * _newborn(cell, params, params.daughter_size)


def _semi_axes(cell: _Cell, params: SimulationParams) -> tuple[float, float, np.ndarray]:
    """Semi-axes ``a ≥ b`` and shape harmonics at this frame.

    A mitotic cell rounds up (aspect → 1, harmonics → 0) in its first third and
    elongates along the division axis in anaphase (last 40%).
    """
    radius = _equivalent_radius(cell, params)
    aspect, harmonics = cell.aspect, cell.harmonics
    if cell.phase == _M:
        progress = cell.phase_progress()
        rounding = float(_smoothstep(3 * progress))
        aspect = aspect + (1 - aspect) * rounding - 0.3 * float(_smoothstep((progress - 0.6) / 0.4))
        harmonics = harmonics * (1 - rounding)
    return radius / math.sqrt(aspect), radius * math.sqrt(aspect), harmonics


def _ellipse_radius(a, b, phi):
    """Distance from the centre to an ellipse's edge in direction ``phi`` from its major axis."""
    return a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)


def _to_offsets(u, phi, a, b, angle):
    """Pixel offsets (dy, dx) of points at normalised radius ``u`` and polar angle ``phi``."""
    along, across = u * a * np.cos(phi), u * b * np.sin(phi)
    cos, sin = math.cos(angle), math.sin(angle)
    return along * sin + across * cos, along * cos - across * sin


@dataclass
class _Patch:
    """A cell's bounding box and its pixel coordinates relative to the cell centre."""

    rows: slice
    cols: slice
    dy: np.ndarray  # (h, 1) float
    dx: np.ndarray  # (1, w) float


def _patch(cy: float, cx: float, extent: float, shape: tuple[int, int]) -> _Patch:
    """The box of half-width ``extent`` around (cy, cx), clipped to the frame."""
    r0, r1 = max(0, int(cy - extent)), min(shape[0], int(math.ceil(cy + extent)) + 1)
    c0, c1 = max(0, int(cx - extent)), min(shape[1], int(math.ceil(cx + extent)) + 1)
    return _Patch(slice(r0, r1), slice(c0, c1),
                  (np.arange(r0, r1, dtype=np.float32) - cy)[:, None],
                  (np.arange(c0, c1, dtype=np.float32) - cx)[None, :])


def _shape_coordinates(patch: _Patch, a: float, b: float, angle: float, harmonics: np.ndarray):
    """Normalised radius (< 1 inside the shape) and the axis coordinates of each pixel.

    Returns ``score, along, across``, each (h, w) float32: ``score`` is the
    elliptic norm divided by the radial modulation; ``along``/``across`` are
    the offsets along the major/minor axis in px.
    """
    cos, sin = math.cos(angle), math.sin(angle)
    along = patch.dx * cos + patch.dy * sin
    across = patch.dy * cos - patch.dx * sin
    # cos(k phi), sin(k phi) by the angle-addition formulas: much cheaper than arctan2 and exp
    radius = np.maximum(np.sqrt(along**2 + across**2), np.float32(1e-6))
    cos1, sin1 = along / radius, across / radius
    cos2, sin2 = cos1 * cos1 - sin1 * sin1, 2 * cos1 * sin1
    cos3, sin3 = cos2 * cos1 - sin2 * sin1, sin2 * cos1 + cos2 * sin1
    cos4, sin4 = cos2 * cos2 - sin2 * sin2, 2 * cos2 * sin2
    modulation = 1 + sum(np.float32(h.real) * c - np.float32(h.imag) * s
                         for h, c, s in zip(harmonics, (cos2, cos3, cos4), (sin2, sin3, sin4)))
    score = np.sqrt((along / np.float32(a)) ** 2 + (across / np.float32(b)) ** 2) / modulation
    return score, along, across


def _gaussian_spots(patch: _Patch, dy, dx, amplitude, sd) -> np.ndarray:
    """Sum of isotropic Gaussians at offsets (dy, dx) from the centre: (h, w) float32.

    Separable: each spot is an outer product of a row and a column profile.
    """
    if len(dy) == 0:
        return np.zeros((patch.dy.shape[0], patch.dx.shape[1]), np.float32)
    rows = np.exp(-((patch.dy[:, 0][None, :] - np.asarray(dy)[:, None]) ** 2) / (2 * sd[:, None] ** 2))
    cols = np.exp(-((patch.dx[0][None, :] - np.asarray(dx)[:, None]) ** 2) / (2 * sd[:, None] ** 2))
    return ((amplitude[:, None] * rows).T @ cols).astype(np.float32)


# ------------------------------------------------------------------ replication foci

# S-phase stages by progress: early (many small foci throughout), mid (rim and
# around nucleoli), late (few large clumps). Count per 100 px² of nucleus, sd in px.
_FOCI_STAGE_ENDS = (0.35, 0.7)
_FOCI_DENSITY = (10.0, 5.0, 1.2)
_FOCI_SD = ((0.7, 1.0), (1.0, 1.5), (1.8, 3.0))
_FOCI_AMPLITUDE = ((0.5, 0.8), (0.8, 1.2), (1.0, 1.5))
_FOCUS_LIFETIME_MINUTES = 40.0


def _foci_stage(progress: float) -> int:
    """0 (early), 1 (mid) or 2 (late) S for a fraction of S elapsed."""
    return int(np.searchsorted(_FOCI_STAGE_ENDS, progress))


def _draw_foci(cell: _Cell, count: int, stage: int, rng: np.random.Generator) -> np.ndarray:
    """New foci for an S-phase stage: (count, 4) = u, polar angle, amplitude, sd px."""
    phi = rng.uniform(0, 2 * np.pi, count)
    if stage == 0:
        u = 0.9 * np.sqrt(rng.uniform(size=count))
    elif stage == 1:
        u = np.clip(rng.normal(0.85, 0.04, count), 0, 0.95)
        # about 40% hug a nucleolus instead of the rim
        around = rng.uniform(size=count) < 0.4
        if around.any() and len(cell.nucleoli):
            which = cell.nucleoli[rng.integers(len(cell.nucleoli), size=around.sum())]
            ring = rng.uniform(0, 2 * np.pi, around.sum())
            ring_u = 2.2 * which[:, 2] / cell.radius  # just outside the nucleolus
            y = which[:, 0] * np.sin(which[:, 1]) + ring_u * np.sin(ring)
            x = which[:, 0] * np.cos(which[:, 1]) + ring_u * np.cos(ring)
            u[around], phi[around] = np.clip(np.hypot(y, x), 0, 0.9), np.arctan2(y, x)
    else:
        u = 0.75 * np.sqrt(rng.uniform(size=count))
    return np.column_stack([u, phi, rng.uniform(*_FOCI_AMPLITUDE[stage], count), rng.uniform(*_FOCI_SD[stage], count)])


def _update_foci(cell: _Cell, params: SimulationParams, rng: np.random.Generator) -> None:
    """Let foci wander, die with their lifetime, and be replaced from the current S stage."""
    if cell.phase != _S:
        cell.foci = np.zeros((0, 4))
        return
    progress = cell.phase_progress()
    stage = _foci_stage(progress + rng.normal(0, 0.05))
    foci = cell.foci
    survive = math.exp(-params.frame_interval / _FOCUS_LIFETIME_MINUTES)
    foci = foci[rng.uniform(size=len(foci)) < survive]
    foci[:, 0] = np.clip(foci[:, 0] + rng.normal(0, 0.03, len(foci)), 0, 0.95)
    foci[:, 1] += rng.normal(0, 0.05, len(foci))
    area = math.pi * _equivalent_radius(cell, params) ** 2
    target = rng.poisson(_FOCI_DENSITY[stage] * area / 100)
    cell.foci = np.vstack([foci, _draw_foci(cell, max(0, target - len(foci)), stage, rng)])


# ------------------------------------------------------------------ motion


def _move(cells: list[_Cell], params: SimulationParams, rng: np.random.Generator) -> None:
    """One frame of persistent random walk, turning and shape drift (Ornstein–Uhlenbeck)."""
    dt = params.frame_interval
    keep = math.exp(-dt / params.persistence_minutes)
    kick = math.sqrt(1 - keep**2)
    shape_keep = math.exp(-dt / (2 * params.persistence_minutes))
    shape_kick = math.sqrt(1 - shape_keep**2)
    for cell in cells:
        calm = 0.3 if cell.phase == _M else 1.0  # mitotic cells round up and barely move
        cell.vy = keep * cell.vy + kick * rng.normal(0, params.speed / math.sqrt(2))
        cell.vx = keep * cell.vx + kick * rng.normal(0, params.speed / math.sqrt(2))
        cell.spin = keep * cell.spin + kick * rng.normal(0, params.turning)
        cell.y += calm * cell.vy * dt
        cell.x += calm * cell.vx * dt
        cell.angle += calm * cell.spin * dt
        cell.harmonics = shape_keep * cell.harmonics + shape_kick * _draw_harmonics(params.irregularity, rng)
        cell.body_harmonics = shape_keep * cell.body_harmonics + shape_kick * _draw_harmonics(3 * params.irregularity, rng)


def _separate(cells: list[_Cell], params: SimulationParams, rng: np.random.Generator,
              iterations: int = 8, min_distance: float = 3.0) -> None:
    """Push overlapping nuclei apart and keep centres inside the field.

    Each pair closer than ``contact`` × the sum of their elliptic radii along
    the line joining them moves apart by half the overlap each, a few
    relaxation sweeps per frame: nuclei touch but rarely overlap. Centres are
    also pushed ``min_distance`` apart, so that even in a crowd each nucleus
    keeps its centre pixel in the label image.
    """
    height, width = params.size
    position = np.array([(c.y, c.x) for c in cells])
    axes = np.array([_semi_axes(c, params)[:2] for c in cells])
    angle = np.array([c.angle for c in cells])
    margin = np.array([_margin(c, params) for c in cells])
    low, high = margin[:, None], np.array([height - 1.0, width - 1.0])[None, :] - margin[:, None]
    a, b = axes[:, 0], axes[:, 1]
    position = np.clip(position, low, high)
    for _ in range(iterations):
        offset = position[None, :, :] - position[:, None, :]  # [i, j] = j - i
        distance = np.hypot(offset[..., 0], offset[..., 1])
        direction = np.arctan2(offset[..., 0], offset[..., 1])
        reach = (_ellipse_radius(a[:, None], b[:, None], direction - angle[:, None])
                 + _ellipse_radius(a[None, :], b[None, :], direction - angle[None, :]))
        overlap = np.maximum(np.maximum(params.contact * reach, min_distance) - distance, 0)
        np.fill_diagonal(overlap, 0)
        if not overlap.any():
            break
        coincident = distance == 0
        np.fill_diagonal(coincident, False)
        if coincident.any():  # no direction to push along: pick one at random
            turn = rng.uniform(0, 2 * np.pi, coincident.sum())
            offset[coincident] = np.column_stack([np.sin(turn), np.cos(turn)])
            distance[coincident] = 1.0
        unit = offset / np.maximum(distance, 1e-9)[..., None]
        position -= 0.5 * (overlap[..., None] * unit).sum(axis=1)
        position = np.clip(position, low, high)
    for cell, (y, x) in zip(cells, position):
        cell.y, cell.x = float(y), float(x)


# ------------------------------------------------------------------ cell cycle


def _advance(cells: list[_Cell], frame: int, next_track: int, params: SimulationParams,
             rng: np.random.Generator) -> tuple[list[_Cell], list[_Cell], int]:
    """Step every cell's cycle by one frame; mothers at the end of M divide.

    Returns the cells of the next frame, the mothers whose track ended at
    ``frame`` and the next free track id.
    """
    alive, ended = [], []
    for cell in cells:
        if cell.phase == _M and cell.frames_in_phase + 1 >= cell.durations[_M]:
            cell.last_frame = frame
            ended.append(cell)
            alive += _daughters(cell, frame + 1, (next_track, next_track + 1), params, rng)
            next_track += 2
            continue
        cell.frames_in_phase += 1
        cell.age += 1
        if cell.advances() and cell.frames_in_phase >= cell.durations[cell.phase]:
            cell.phase += 1
            cell.frames_in_phase = 0
        alive.append(cell)
    return alive, ended, next_track


def _daughters(mother: _Cell, frame: int, tracks: tuple[int, int], params: SimulationParams,
               rng: np.random.Generator) -> list[_Cell]:
    """Two newborn cells in G1 at ``frame``, side by side along the mother's division axis.

    They inherit the mother's size and PCNA expression (with a little noise)
    and her velocity; their nuclei lie across the division axis, as in telophase.
    """
    a = _semi_axes(mother, params)[0]
    daughters = []
    for track, side in zip(tracks, (-1.0, 1.0)):
        dy, dx = _to_offsets(side * 0.55, 0.0, a, a, mother.angle)
        radius = mother.radius * _lognormal(rng, 1.0, 0.05)
        brightness = mother.brightness * _lognormal(rng, 1.0, 0.05)
        daughter = _new_cell(params, rng, track, mother.track, frame, mother.y + dy, mother.x + dx, radius, brightness)
        daughter.angle = mother.angle + np.pi / 2 + rng.normal(0, 0.3)
        daughter.vy, daughter.vx = mother.vy, mother.vx
        daughters.append(daughter)
    return daughters


# ------------------------------------------------------------------ rendering


def _nucleus_intensity(cell: _Cell, params: SimulationParams, patch: _Patch, score, along, across,
                       a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """Expected PCNA photons of one nucleus inside its patch: (h, w) float32 (0 outside)."""
    radius = _equivalent_radius(cell, params)
    inside = np.clip(1 - score, 0, 1)
    # soft one-pixel edge and a thicker (brighter) middle, as in a widefield image
    profile = np.clip((1 - score) * radius + 0.5, 0, 1) * (0.8 + 0.2 * np.sqrt(inside * (2 - inside)))
    g1 = params.g1_photons * cell.brightness
    if cell.phase == _M:
        progress = cell.phase_progress()
        # condensed chromosomes exclude PCNA: one plate, then two separating in anaphase
        split = 0.5 * a * float(_smoothstep((progress - 0.6) / 0.4))
        width = 0.12 * a
        plate = np.exp(-((np.abs(along) - split) ** 2) / (2 * width**2)) * np.exp(-2 * (across / (0.6 * b)) ** 2)
        dimming = float(_smoothstep(3 * progress))
        level = g1 * params.g2_ratio * (1 - (1 - params.m_ratio) * dimming)
        return (level * profile * (1 - 0.5 * dimming * plate)).astype(np.float32)
    level = g1 * {_G1: 1.0 + 0.1 * cell.phase_progress(), _S: params.s_ratio, _G2: params.g2_ratio}[cell.phase]
    level *= _newborn(cell, params, params.daughter_brightness)
    texture = ndi.gaussian_filter(rng.standard_normal(score.shape).astype(np.float32), 1.2)
    texture *= params.texture / max(float(texture.std()), 1e-6)
    nucleoli = cell.nucleoli
    dy, dx = _to_offsets(nucleoli[:, 0], nucleoli[:, 1], a, b, cell.angle)
    dark = _gaussian_spots(patch, dy, dx, np.full(len(nucleoli), params.nucleolus_depth), nucleoli[:, 2])
    image = level * profile * (1 + texture) * np.clip(1 - dark, 0, 1)
    if len(cell.foci):
        foci = cell.foci
        dy, dx = _to_offsets(foci[:, 0], foci[:, 1], a, b, cell.angle)
        # foci emerge at the start of S and fade out at its end
        ramp = float(_smoothstep(cell.phase_progress() / 0.08) * _smoothstep((1 - cell.phase_progress()) / 0.08))
        spots = _gaussian_spots(patch, dy, dx, foci[:, 2] * params.foci_ratio * g1 * ramp, foci[:, 3])
        image += profile * spots
    return image.astype(np.float32)


# DIC heights in px: a spread interphase cell is a low dome with the nucleus bulging
# on it; a mitotic cell rounds up into a tall ball barely larger than its chromatin.
_BODY_HEIGHT, _NUCLEUS_HEIGHT, _MITOTIC_HEIGHT = 6.0, 2.0, 10.0
_MITOTIC_BODY_SCALE = 1.08


def _body_shape(cell: _Cell, params: SimulationParams) -> tuple[float, np.ndarray]:
    """Cell body size relative to the nucleus, and its shape harmonics."""
    if cell.phase == _M:
        return _MITOTIC_BODY_SCALE, np.zeros(3, complex)
    return params.body_scale, cell.body_harmonics


def _body_height(cell: _Cell, params: SimulationParams, patch: _Patch, a: float, b: float, harmonics):
    """Cell height (px), bright rim and body's normalised radius in a patch: three (h, w) float32."""
    scale, body_harmonics = _body_shape(cell, params)
    body, _, _ = _shape_coordinates(patch, a * scale, b * scale, cell.angle, body_harmonics)
    if cell.phase == _M:
        # the steep edge of a rounded cell scatters light into a bright rim
        height = _MITOTIC_HEIGHT * np.sqrt(np.clip(1 - body**2, 0, 1))
        rim = np.exp(-(((body - 1) * a * scale / 1.5) ** 2))
        return height, rim, body
    nucleus, _, _ = _shape_coordinates(patch, a, b, cell.angle, harmonics)
    height = _BODY_HEIGHT * np.clip(1 - body**2, 0, 1) + _NUCLEUS_HEIGHT * np.sqrt(np.clip(1 - nucleus**2, 0, 1))
    return height, np.zeros_like(height), body


@dataclass
class _Frame:
    """Noise-free ingredients of one frame."""

    labels: np.ndarray  # (H, W) uint16
    pcna: np.ndarray  # (H, W) float32, photons before illumination and blur
    cytoplasm: np.ndarray  # (H, W) float32
    height: np.ndarray  # (H, W) float32, px
    rim: np.ndarray  # (H, W) float32


def _render(cells: list[_Cell], params: SimulationParams, offset: np.ndarray, rng) -> _Frame:
    """Labels and noise-free signals of one frame, cell by cell inside bounding boxes.

    Two passes: the first assigns each pixel to the nucleus whose normalised
    radius is smallest there (a z-buffer that splits any overlap along the
    line where both shapes are equally deep), the second paints each nucleus
    only on its own pixels.
    """
    shape = params.size
    labels = np.zeros(shape, np.uint16)
    depth = np.full(shape, np.inf, np.float32)
    geometry = []
    for cell in cells:
        a, b, harmonics = _semi_axes(cell, params)
        cy, cx = cell.y + offset[0], cell.x + offset[1]
        patch = _patch(cy, cx, a * (1 + np.abs(harmonics).sum()) + 2, shape)
        score, along, across = _shape_coordinates(patch, a, b, cell.angle, harmonics)
        nearer = (score < 1) & (score < depth[patch.rows, patch.cols])
        depth[patch.rows, patch.cols][nearer] = score[nearer]
        labels[patch.rows, patch.cols][nearer] = cell.track
        geometry.append((cy, cx, a, b, harmonics, patch, score, along, across))
    pcna = np.zeros(shape, np.float32)
    cytoplasm = np.zeros(shape, np.float32)
    height = np.zeros(shape, np.float32)
    rim = np.zeros(shape, np.float32)
    for cell, (cy, cx, a, b, harmonics, patch, score, along, across) in zip(cells, geometry):
        own = labels[patch.rows, patch.cols] == cell.track
        intensity = _nucleus_intensity(cell, params, patch, score, along, across, a, b, rng)
        pcna[patch.rows, patch.cols] += intensity * own
        scale, body_harmonics = _body_shape(cell, params)
        body_patch = _patch(cy, cx, a * scale * (1 + np.abs(body_harmonics).sum()) + 3, shape)
        cell_height, cell_rim, body = _body_height(cell, params, body_patch, a, b, harmonics)
        region = (body_patch.rows, body_patch.cols)
        np.maximum(height[region], cell_height, out=height[region])
        np.maximum(rim[region], cell_rim, out=rim[region])
        cytoplasm[region] += (params.cytoplasm_ratio * params.g1_photons * cell.brightness
                              * np.clip(1 - body, 0, 1) ** 0.5)
    return _Frame(labels, pcna, cytoplasm, height, rim)


def _illumination(shape: tuple[int, int], falloff: float, rng: np.random.Generator) -> np.ndarray:
    """Uneven illumination: radial falloff around an off-centre peak plus a tilt; (H, W) float32, max 1."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * height**2 + 0.5 * width**2)
    tilt = rng.normal(0, 0.05, 2)
    light = (1 - falloff * radius2) * (1 + tilt[0] * (yy / height - 0.5) + tilt[1] * (xx / width - 0.5))
    return (light / light.max()).astype(np.float32)


def _background_height(shape: tuple[int, int], pad: int, rng: np.random.Generator) -> np.ndarray:
    """Substrate texture for DIC, padded by ``pad`` for stage jitter: (H+2p, W+2p) float32."""
    padded = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    fine = ndi.gaussian_filter(rng.standard_normal(padded).astype(np.float32), 2.0)
    coarse = ndi.gaussian_filter(rng.standard_normal(padded).astype(np.float32), 12.0)
    debris = ndi.gaussian_filter((rng.uniform(size=padded) < 2e-4).astype(np.float32), 1.5)
    return (0.15 * fine / fine.std() + 0.6 * coarse / coarse.std() + 40.0 * debris).astype(np.float32)


def _camera(photons: np.ndarray, params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Shot noise, gain, offset and read noise of expected photons: (H, W) uint16."""
    counts = rng.poisson(np.maximum(photons, 0)).astype(np.float32) * params.gain
    counts += params.camera_offset + rng.normal(0, params.read_noise, photons.shape).astype(np.float32)
    return np.clip(np.round(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _pcna_photons(frame: _Frame, params, illumination, frame_index: int) -> np.ndarray:
    """Expected PCNA photons: defocus blur, illumination, bleaching, autofluorescence."""
    signal = frame.pcna + frame.cytoplasm
    if params.defocus > 0:
        signal = ndi.gaussian_filter(signal, params.defocus)
    bleach = (1 - params.bleach_per_frame) ** frame_index
    return illumination * (signal * bleach + params.background_photons)


def _dic_photons(frame: _Frame, params, illumination, background: np.ndarray) -> np.ndarray:
    """Expected DIC photons: relief shading along the shear direction (45°) plus the mitotic rim."""
    height = ndi.gaussian_filter(background + frame.height, 1.0 + params.defocus)
    slope_y, slope_x = np.gradient(height)
    relief = np.tanh((slope_y + slope_x) / np.sqrt(2))  # saturates at steep mitotic edges
    return params.dic_photons * illumination * (1 + params.dic_contrast * relief + params.dic_rim * frame.rim)


# ------------------------------------------------------------------ truth tables


def _measure(labels: np.ndarray, pcna: np.ndarray, tracks: np.ndarray, grid) -> dict[str, np.ndarray]:
    """Area, centroid and mean PCNA of the given track ids in one frame, from the pixels."""
    flat = labels.ravel()
    size = int(tracks.max()) + 1
    area = np.bincount(flat, minlength=size)[tracks]
    if (area == 0).any():
        raise RuntimeError(f"simulator bug: tracks {tracks[area == 0].tolist()} have no pixel")
    return {
        "centroid_y": np.bincount(flat, weights=grid[0], minlength=size)[tracks] / area,
        "centroid_x": np.bincount(flat, weights=grid[1], minlength=size)[tracks] / area,
        "area": area,
        "mean_pcna": np.bincount(flat, weights=pcna.ravel(), minlength=size)[tracks] / area,
    }


def _track_tables(finished: list[_Cell], params: SimulationParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``tracks`` and ``durations`` tables of all cells, sorted by track id."""
    finished = sorted(finished, key=lambda c: c.track)
    tracks = pd.DataFrame({
        "track": [c.track for c in finished],
        "first_frame": [c.first_frame for c in finished],
        "last_frame": [c.last_frame for c in finished],
        "parent": [c.parent for c in finished],
    })
    rows = []
    for cell in finished:
        row = {"track": cell.track, "parent": cell.parent}
        row.update({f"{p}_frames": int(n) for p, n in zip(PHASES, cell.phase_frames)})
        row.update({f"{p}_minutes": float(n * params.frame_interval) for p, n in zip(PHASES, cell.phase_frames)})
        divided = cell.last_frame < params.frames - 1
        row["cut_start"] = cell.cut_start
        # the end cuts the last phase unless the cell divided or its phase ended exactly at the last frame
        row["cut_end"] = not divided and (not cell.advances() or cell.frames_in_phase + 1 < cell.durations[cell.phase])
        row["arrested"] = cell.arrested
        rows.append(row)
    return tracks, pd.DataFrame(rows, columns=list(rows[0]))


# ------------------------------------------------------------------ simulation


def simulate_movie(params: SimulationParams, *, progress: bool = False) -> Movie:
    """Simulate a movie in memory.

    Parameters
    ----------
    params : SimulationParams
        Checked first; an impossible value raises :class:`PcnacycleError`.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Movie
        Images ``(T, H, W)`` uint16 and the ground-truth tables.
    """
    params.validate()
    streams = np.random.SeedSequence(params.seed).spawn(4)
    cell_rng, render_rng, noise_rng, field_rng = (np.random.default_rng(s) for s in streams)
    frames, shape = params.frames, tuple(params.size)
    pad = int(math.ceil(3 * params.jitter)) + 1
    illumination = _illumination(shape, params.illumination_falloff, field_rng)
    dic_illumination = _illumination(shape, params.illumination_falloff / 3, field_rng)
    background = _background_height(shape, pad, field_rng)
    offsets = np.clip(field_rng.normal(0, params.jitter, (frames, 2)), -3 * params.jitter, 3 * params.jitter)
    grid = tuple(g.ravel().astype(np.float64) for g in np.indices(shape))

    pcna = np.empty((frames, *shape), np.uint16)
    dic = np.empty((frames, *shape), np.uint16)
    labels = np.empty((frames, *shape), np.uint16)
    objects = []
    cells = _founders(params, cell_rng)
    finished: list[_Cell] = []
    next_track = len(cells) + 1
    for t in tqdm(range(frames), desc="simulating", unit="frame", disable=not progress):
        if t > 0:
            cells, ended, next_track = _advance(cells, t - 1, next_track, params, cell_rng)
            finished += ended
            _move(cells, params, cell_rng)
        _separate(cells, params, cell_rng)
        for cell in cells:
            _update_foci(cell, params, cell_rng)
            cell.phase_frames[cell.phase] += 1
        frame = _render(cells, params, offsets[t], render_rng)
        labels[t] = frame.labels
        pcna[t] = _camera(_pcna_photons(frame, params, illumination, t), params, noise_rng)
        shift = np.round(offsets[t]).astype(int) + pad
        dic_background = background[shift[0]: shift[0] + shape[0], shift[1]: shift[1] + shape[1]]
        dic[t] = _camera(_dic_photons(frame, params, dic_illumination, dic_background), params, noise_rng)
        ids = np.array([c.track for c in cells])
        measured = _measure(labels[t], pcna[t], ids, grid)
        phases = [PHASES[c.phase] for c in cells]
        objects.append(pd.DataFrame({
            "frame": t, "track": ids, "parent": [c.parent for c in cells], "phase": phases,
            "class": [PHASE_CLASS[p] for p in phases], **measured,
        }))
    for cell in cells:
        cell.last_frame = frames - 1
    tracks, durations = _track_tables(finished + cells, params)
    objects = pd.concat(objects, ignore_index=True).sort_values(["frame", "track"], ignore_index=True)
    return Movie(params, pcna, dic, labels, objects, tracks, durations)


# ------------------------------------------------------------------ writing


def _check_output(output: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``overwrite``."""
    if output.exists() and not output.is_dir():
        raise PcnacycleError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise PcnacycleError(f"{output}: folder is not empty; pass overwrite=True (--overwrite) to replace it")


def _prepare_output(output: Path, overwrite: bool) -> set[str]:
    """Check the output folder, remove what an earlier simulation wrote there, create it.

    Returns the files left in the folder (the user's), so that the manifest
    lists only what this simulation writes.
    """
    _check_output(output, overwrite)
    if output.is_dir() and any(output.iterdir()):
        previous = read_manifest(output, MARKER, _LEGACY_OUTPUTS)
        # the marker of a complete folder goes first; stale frames of a longer
        # earlier movie would contradict the new truth
        (output / MARKER).unlink(missing_ok=True)
        remove_outputs(output, previous)
    output.mkdir(parents=True, exist_ok=True)
    return files_under(output)


def _frame_name(index: int, frames: int) -> str:
    """Three-digit frame index, four when the movie is longer than 1000 frames (CTC)."""
    return f"{index:0{4 if frames > 1000 else 3}d}"


def _mask_outline(mask: np.ndarray) -> np.ndarray:
    """Outline of a mask's largest part, a quarter pixel outside its edge pixels: (n, 2) float (row, col).

    At level 0.75 every vertex rounds to the centre of an edge pixel, so the
    integer polygon passes through the mask's outer pixels and rasterisers
    that include the boundary (skimage.draw.polygon, cv2.fillPoly) give the
    mask back exactly.
    """
    contours = measure.find_contours(np.pad(mask, 1).astype(np.float32), 0.75)
    return max(contours, key=len) - 1  # undo the padding that closes contours at the border


def _simplify(points: np.ndarray) -> np.ndarray:
    """Drop repeated points and points on a straight line between their neighbours: (m, 2)."""
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    before, after = points - np.roll(points, 1, axis=0), np.roll(points, -1, axis=0) - points
    turns = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] != 0
    return points[turns]


def _label_polygons(labels: np.ndarray) -> dict[int, tuple[list[int], list[int]]]:
    """Every labelled object's outline as a polygon: ``{label: (xs, ys)}``.

    Coordinates are integers inside the image (as VIA stores them), at least
    3 distinct points per polygon.
    """
    polygons = {}
    for index, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        # one pixel of margin lets the outline close around the object inside the crop
        rows = slice(max(box[0].start - 1, 0), box[0].stop + 1)
        cols = slice(max(box[1].start - 1, 0), box[1].stop + 1)
        outline = _mask_outline(labels[rows, cols] == index + 1) + (rows.start, cols.start)
        points = _simplify(np.clip(np.round(outline), 0, np.array(labels.shape) - 1).astype(int))
        if len(points) < 3:  # a one-pixel-wide sliver: the corners of its pixel box
            top, bottom, left, right = box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1
            points = np.array([[top, left], [top, right], [bottom, right], [bottom, left]])
        polygons[index + 1] = (points[:, 1].tolist(), points[:, 0].tolist())
    return polygons


def _write_ctc(movie: Movie, folder: Path) -> None:
    """Cell Tracking Challenge layout: raw frames, TRA and SEG masks, man_track.txt."""
    frames = movie.params.frames
    for t in range(frames):
        name = _frame_name(t, frames)
        write_tiff(folder / "01" / f"t{name}.tif", movie.pcna[t], **_TIFF)
        write_tiff(folder / "01_GT" / "TRA" / f"man_track{name}.tif", movie.labels[t], **_TIFF)
        write_tiff(folder / "01_GT" / "SEG" / f"man_seg{name}.tif", movie.labels[t], **_TIFF)
    lines = [f"{r.track} {r.first_frame} {r.last_frame} {r.parent}" for r in movie.tracks.itertuples()]
    write_text(folder / "01_GT" / "TRA" / "man_track.txt", "\n".join(lines) + "\n")


def _write_annotated(movie: Movie, folder: Path, annotated_frames: int) -> None:
    """Training frames: images, instance labels, classes.csv and VIA2 polygons."""
    frames = movie.params.frames
    chosen = np.unique(np.round(np.linspace(0, frames - 1, annotated_frames)).astype(int)) if annotated_frames else []
    classes, via = [], {}
    for t in chosen:
        name = f"frame_{_frame_name(int(t), frames)}"
        write_tiff(folder / "pcna" / f"{name}.tif", movie.pcna[t], **_TIFF)
        write_tiff(folder / "dic" / f"{name}.tif", movie.dic[t], **_TIFF)
        write_tiff(folder / "labels" / f"{name}.tif", movie.labels[t], **_TIFF)
        regions = []
        in_frame = movie.objects[movie.objects["frame"] == t]
        polygons = _label_polygons(movie.labels[t])
        for track, phase_class in zip(in_frame["track"].tolist(), in_frame["class"]):
            classes.append({"image": name, "label": track, "class": phase_class})
            xs, ys = polygons[track]
            regions.append({"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                            "region_attributes": {"phase": phase_class}})
        size = (folder / "pcna" / f"{name}.tif").stat().st_size
        via[f"{name}.tif{size}"] = {"filename": f"{name}.tif", "size": size, "regions": regions, "file_attributes": {}}
    table = pd.DataFrame(classes, columns=["image", "label", "class"])
    write_text(folder / "classes.csv", table.to_csv(index=False))
    write_json(folder / "via_region_data.json", via)


def _version() -> str:
    from . import __version__  # imported late: the package imports this module

    return __version__


def write_movie(movie: Movie, output, annotated_frames: int = 25, overwrite: bool = False) -> Path:
    """Write a movie and its ground truth to a folder; return the folder.

    Layout: ``pcna.tif``, ``dic.tif``, ``truth/`` (labels.tif, objects.csv,
    tracks.csv, phases.csv, ctc/), ``annotated/`` (``annotated_frames``
    frames spread evenly over the movie) and ``simulation.json``, written last
    so that its presence marks a complete folder.

    Raises
    ------
    PcnacycleError
        If ``output`` is a non-empty folder and not ``overwrite``, or
        ``annotated_frames`` is not between 0 and the number of frames.
    """
    output = Path(output)
    _check_annotated_frames(annotated_frames, movie.params.frames)
    users = _prepare_output(output, overwrite)
    truth = output / "truth"
    stack = {**_TIFF, "photometric": "minisblack", "metadata": {"axes": "TYX"}}
    write_tiff(truth / "labels.tif", movie.labels, **stack)
    # the movies carry their frame interval (ImageJ's finterval, seconds), which `pcnacycle run` reads
    movie_stack = {**_TIFF, "imagej": True,
                   "metadata": {"axes": "TYX", "finterval": movie.params.frame_interval * 60.0, "tunit": "sec"}}
    write_text(truth / "objects.csv", movie.objects.to_csv(index=False))
    write_text(truth / "tracks.csv", movie.tracks.to_csv(index=False))
    write_text(truth / "phases.csv", movie.durations.to_csv(index=False))
    _write_ctc(movie, truth / "ctc")
    _write_annotated(movie, output / "annotated", annotated_frames)
    write_tiff(output / "pcna.tif", movie.pcna, **movie_stack)
    write_tiff(output / "dic.tif", movie.dic, **movie_stack)
    write_json(output / MARKER, {**asdict(movie.params), "annotated_frames": annotated_frames,
                                 "pcnacycle_version": _version(),
                                 MANIFEST_KEY: sorted((files_under(output) - users) | {MARKER})})
    return output


def simulate(output, *, frames=60, size=(512, 512), cells=40, seed=0, frame_interval=10.0,
             annotated_frames=25, jitter=0.0, arrested_fraction=0.0, overwrite=False, progress=True,
             **params) -> Path:
    """Simulate a PCNA movie with ground truth and write it to ``output``.

    Parameters are those of :class:`SimulationParams` (any of its fields may
    be given, e.g. ``m_minutes=(104, 10)``; the others keep their defaults);
    ``annotated_frames`` frames go to ``annotated/`` for training. Every
    argument is checked, and the output folder too, before any work.

    Returns
    -------
    pathlib.Path
        The output folder.
    """
    known = {f.name for f in fields(SimulationParams)}
    if set(params) - known:
        raise PcnacycleError(f"unknown simulation parameter(s) {sorted(set(params) - known)}")
    params = SimulationParams(frames=frames, size=size, cells=cells,
                              seed=seed, frame_interval=frame_interval, jitter=jitter,
                              arrested_fraction=arrested_fraction, **params)
    params.validate()
    _check_annotated_frames(annotated_frames, frames)
    output = Path(output)
    _check_output(output, overwrite)
    movie = simulate_movie(params, progress=progress)
    return write_movie(movie, output, annotated_frames=annotated_frames, overwrite=overwrite)
