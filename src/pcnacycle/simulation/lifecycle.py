"""The cell-cycle state machine: founders, phase steps, division into daughters."""

from __future__ import annotations

import numpy as np

from ..phases import PHASES
from .cells import _M, _Cell, _lognormal, _new_cell
from .geometry import _equivalent_radius, _margin, _semi_axes, _to_offsets
from .params import SimulationParams


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
