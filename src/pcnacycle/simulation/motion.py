"""Cell motion: persistent random walk, turning, and pushing neighbours apart."""

from __future__ import annotations

import math

import numpy as np

from .cells import _M, _Cell, _draw_harmonics
from .geometry import _ellipse_radius, _margin, _semi_axes
from .params import SimulationParams


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
        body_kick = _draw_harmonics(3 * params.irregularity, rng)
        cell.body_harmonics = shape_keep * cell.body_harmonics + shape_kick * body_kick


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
