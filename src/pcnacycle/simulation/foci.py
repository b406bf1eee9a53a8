"""PCNA replication foci of S phase: early many small, mid rim and nucleoli, late few large."""

from __future__ import annotations

import math

import numpy as np

from .cells import _S, _Cell
from .geometry import _equivalent_radius
from .params import SimulationParams

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


def _draw_foci(cell: _Cell, count: int, stage: int, rng: np.random.Generator, size: float = 1.0) -> np.ndarray:
    """New foci for an S-phase stage, ``size`` times the stage's sd: (count, 4) = u, polar angle, amplitude, sd px."""
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
    amplitude = rng.uniform(*_FOCI_AMPLITUDE[stage], count)  # drawn before the sd, as movies always were
    return np.column_stack([u, phi, amplitude, rng.uniform(*_FOCI_SD[stage], count) * size])


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
    # scaled texture: a nucleus k times larger has k times larger foci, as many of them
    scale = params.texture_scale()
    target = rng.poisson(_FOCI_DENSITY[stage] * (params.foci_density / scale**2) * area / 100)
    size = params.foci_size * scale
    cell.foci = np.vstack([foci, _draw_foci(cell, max(0, target - len(foci)), stage, rng, size)])
