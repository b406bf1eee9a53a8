"""How sure a model is of a movie's phases: read from finished runs' ``objects.csv``.

For each RUN folder: its nuclei, the share whose likeliest class has probability ≥ 0.9
(``run.json``'s ``confident_calls_share`` since 2026-11-30; older runs did not record it), the median of
that top probability, and the nuclei with a measured texture called S at ≥ 0.9 and not S at ≤ 0.1: the
calls the texture evidence was learnt from before ``RunSettings.texture_min_confidence``.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/call_confidence.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pcnacycle.tracking.evidence import CONFIDENT_CALL


def confidence(run: Path) -> dict:
    objects = pd.read_csv(run / "objects.csv")
    top = np.nanmax(objects.filter(regex="^p_").to_numpy(np.float64), axis=1)
    textured = objects["texture_pcna"] > 0
    return {"nuclei": len(objects), "confident_share": float(np.mean(top >= CONFIDENT_CALL)),
            "median_top": float(np.median(top)),
            "S_at_0.9": int((textured & (objects["p_S"] >= CONFIDENT_CALL)).sum()),
            "not_S_at_0.9": int((textured & (objects["p_S"] <= 1 - CONFIDENT_CALL)).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args(argv).runs:
        c = confidence(run)
        print(f"{run}: {c['nuclei']} nuclei, confident {c['confident_share']:.3f}, median top "
              f"{c['median_top']:.3f}, S at 0.9 {c['S_at_0.9']}, not S at 0.9 {c['not_S_at_0.9']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
