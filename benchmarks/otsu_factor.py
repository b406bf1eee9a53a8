"""Choose INPUT.OTSU_FACTOR: the lowered-Otsu mask must capture every true nucleus (M included).

For each factor, over simulated PCNA frames: the share of nuclei (per phase) with at least half their
pixels inside the mask, and the share of background pixels wrongly inside it.

Usage: .venv/bin/python benchmarks/otsu_factor.py [--movies 3] [--frames 40]
"""

import argparse
import time

import numpy as np
import pandas as pd

from pcnacycle.data.dataset import lowered_otsu_mask
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    factors = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    rows = []
    for seed in range(args.movies):
        movie = simulate_movie(SimulationParams(frames=args.frames, size=(384, 384), cells=45, seed=100 + seed))
        phase_of = movie.objects.set_index(["frame", "track"])["phase"]
        for t in range(0, args.frames, 4):
            labels = movie.labels[t]
            ids, areas = np.unique(labels, return_counts=True)
            for factor in factors:
                mask = lowered_otsu_mask(movie.pcna[t], factor) > 0
                covered = np.bincount(labels[mask].ravel(), minlength=ids.max() + 1)[ids]
                for track_id, area, inside in zip(ids[1:], areas[1:], covered[1:]):
                    rows.append({"factor": factor, "phase": phase_of[(t, int(track_id))],
                                 "captured": inside / area >= 0.5})
                rows.append({"factor": factor, "phase": "background",
                             "captured": mask[labels == 0].mean()})
    table = pd.DataFrame(rows).groupby(["factor", "phase"])["captured"].mean().unstack()
    print(f"# {time.strftime('%Y-%m-%d')}; nuclei with >=50% of their pixels in the mask, and the fraction of "
          "background pixels in it")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
