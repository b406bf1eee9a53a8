"""How much of S a simulated movie hides: S frames whose replication foci are below half contrast (issue 14).

The simulator fades foci in over the first 8 % of S and out over its last 8 %
(``simulation.render.foci_contrast``), so the first and last frames of S look like
G1 or G2 to any method that reads the image. For every complete S phase of a simulated movie's truth
(G1 before it, G2 after it in the same cell), this counts the frames where the foci are
at less than half their contrast, and reports their mean in minutes: the S bias a
method would show that calls S exactly from half-contrast foci on.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/s_visibility.py bench-out/phase_durations_rs/movies/* [--below 0.2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pcnacycle.simulation.render import foci_contrast


def s_contrast(s_frames: int) -> np.ndarray:
    """(s_frames,) foci contrast of each frame of an S phase of ``s_frames`` frames, at its centre in S."""
    return foci_contrast((np.arange(s_frames) + 0.5) / s_frames)  # cells.py: phase_progress


def hidden_frames(s_frames: int, below: float = 0.5) -> int:
    """Frames of an S phase of ``s_frames`` frames whose foci are below ``below`` of their contrast."""
    return int((s_contrast(s_frames) < below).sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("movies", nargs="+", type=Path, help="pcnacycle simulate folders")
    parser.add_argument("--below", type=float, default=0.5, help="foci contrast counted as hidden (default 0.5)")
    args = parser.parse_args(argv)
    for movie in args.movies:
        phases = pd.read_csv(movie / "truth" / "phases.csv")
        interval = json.loads((movie / "simulation.json").read_text())["frame_interval"]
        complete = phases[(phases.S_frames > 0) & (phases.G1_frames > 0) & (phases.G2_frames > 0)]
        hidden = np.array([hidden_frames(int(n), args.below) for n in complete.S_frames])
        print(f"{movie.name}: {len(complete)} complete S phases, mean {complete.S_minutes.mean():.0f} min; "
              f"foci below {args.below:g} of their contrast on {hidden.mean():.2f} frames = "
              f"{hidden.mean() * interval:.0f} min of each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
