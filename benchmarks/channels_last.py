"""Channels-last against the default memory format: same model, same frame, same detections? (issue 10, item 3)

One simulated PCNA frame (768×768, 120 cells) goes through two copies of the
same :class:`pcnacycle.Predictor`: one as ``Predictor`` loads it on a CPU
(channels-last), one converted back to the default contiguous layout. The
objects are matched by mask overlap and compared (mask IoU, class
probabilities), then both are timed in turns (median of ``--repeats``), so
that load on the machine hits both alike.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/channels_last.py --weights demo-output/train \\
        [--threads 1] [--repeats 4]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np
import torch

from pcnacycle.engine.predictor import Predictor
from pcnacycle.evaluation.tracks import match_frame
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    movie = simulate_movie(SimulationParams(frames=1, size=(768, 768), cells=120, seed=7))
    channels = {"pcna": movie.pcna[0], "dic": movie.dic[0]}
    fast = Predictor(args.weights)
    plain = Predictor.from_model(copy.deepcopy(fast.model).to(memory_format=torch.contiguous_format), fast.cfg)
    found_fast, found_plain = fast.predict(channels), plain.predict(channels)
    # one-to-one by decreasing IoU, every overlapping pair considered
    matched = match_frame(found_plain["label_image"], found_fast["label_image"], threshold=0.0)
    probs = [float(np.abs(found_plain["probs"][x - 1] - found_fast["probs"][y - 1]).max())
             for x, y in zip(matched["truth"], matched["pred"])]
    times = {"channels_last": [], "contiguous": []}
    for _ in range(args.repeats):
        for name, predictor in (("contiguous", plain), ("channels_last", fast)):
            started = time.perf_counter()
            predictor.predict(channels)
            times[name].append(time.perf_counter() - started)
    seconds = {name: round(float(np.median(t)), 2) for name, t in times.items()}
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "weights": args.weights, "threads": args.threads, "torch": torch.__version__,
        "objects": {"contiguous": len(found_plain["scores"]), "channels_last": len(found_fast["scores"])},
        "matched": len(matched), "min_mask_iou": round(float(matched["iou"].min()), 4) if len(matched) else None,
        "max_prob_difference": max(probs, default=float("nan")),
        "seconds": seconds, "speed_up": round(seconds["contiguous"] / seconds["channels_last"], 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
