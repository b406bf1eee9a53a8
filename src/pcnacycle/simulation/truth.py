"""Ground-truth tables of a simulated movie: per-frame measurements, tracks, phase durations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..phases import PHASES
from .cells import _Cell
from .params import SimulationParams


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
