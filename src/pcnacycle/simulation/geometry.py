"""Nuclear shape and size through the cycle; the pixel patches cells are drawn in."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cells import _M, _Cell
from .params import SimulationParams


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
