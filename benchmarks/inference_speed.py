"""The inference levers on one of our own models: same frame, same detections? how fast? (issue 10, item 3)

One simulated PCNA frame (768×768, 120 cells by default) goes through
several copies of the same :class:`pcnacycle.Predictor`:

* ``contiguous``: the model in the default memory layout (before channels-last was adopted);
* ``channels_last``: as ``Predictor`` loads it on a CPU (channels-last, batch norms folded);
* ``compiled``: backbone, FPN and RPN head compiled by ``torch.compile`` (static shapes, weights frozen
  into the code) on the first frame: measured, not adopted (BENCHMARKS.md);
* ``onnx``: backbone, FPN and RPN head exported by ``export_onnx`` and run by ONNX Runtime (``run --onnx``).

Each one's objects are matched one-to-one by mask overlap to the first
variant's and compared (mask IoU, class probabilities); then all are timed in
turns (median wall and CPU seconds of ``--repeats``), so that load on the
machine hits them alike. The first frame (compilation, export excluded) is
reported apart.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/inference_speed.py --weights demo-output/train \\
        [--threads 2] [--repeats 5] [--variants contiguous channels_last compiled onnx] [--size 768] [--cells 120]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pcnacycle.engine.predictor import Predictor, export_onnx, load_weights_path
from pcnacycle.evaluation.tracks import match_frame
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie

VARIANTS = ("contiguous", "channels_last", "compiled", "onnx")


def compile_convolutions(predictor: Predictor) -> Predictor:
    """``predictor`` with its backbone, FPN and RPN head compiled by ``torch.compile`` on their first call."""
    for module in (predictor.model.backbone, predictor.model.rpn.head):
        module.compile(dynamic=False, options={"freezing": True})
    return predictor


def build(variant: str, weights: Path, tmp: Path) -> Predictor:
    if variant == "contiguous":
        loaded = Predictor(weights)
        return Predictor.from_model(copy.deepcopy(loaded.model).to(memory_format=torch.contiguous_format),
                                    loaded.cfg)
    if variant == "compiled":
        return compile_convolutions(Predictor(weights))
    if variant == "onnx":
        onnx = export_onnx(weights, tmp / "model.onnx")["output"]
        return Predictor(weights, onnx=onnx)
    return Predictor(weights)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--cells", type=int, default=120)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = load_weights_path(args.weights)
    movie = simulate_movie(SimulationParams(frames=1, size=(args.size, args.size), cells=args.cells, seed=7))
    channels = {"pcna": movie.pcna[0], "dic": movie.dic[0]}
    results = {"date": time.strftime("%Y-%m-%d"), "weights": str(weights), "threads": args.threads,
               "torch": torch.__version__, "frame": f"simulated {args.size}x{args.size}, {args.cells} cells"}
    with tempfile.TemporaryDirectory() as tmp:
        predictors = {name: build(name, weights, Path(tmp)) for name in args.variants}
        found = {}
        for name, predictor in predictors.items():
            started = time.perf_counter()
            found[name] = predictor.predict(channels)
            results[f"first frame, {name}"] = round(time.perf_counter() - started, 1)
        reference = args.variants[0]
        for name in args.variants[1:]:
            # one-to-one by decreasing IoU, every overlapping pair considered
            matched = match_frame(found[reference]["label_image"], found[name]["label_image"], threshold=0.0)
            results[f"{name} against {reference}"] = {
                "objects": [len(found[reference]["scores"]), len(found[name]["scores"])], "matched": len(matched),
                "min_mask_iou": round(float(matched["iou"].min()), 4) if len(matched) else None,
                "max_prob_difference": float(np.abs(found[reference]["probs"][matched["truth"] - 1]
                                                    - found[name]["probs"][matched["pred"] - 1]).max(initial=0)),
            }
        times = {name: {"wall": [], "cpu": []} for name in predictors}
        for _ in range(args.repeats):
            for name, predictor in predictors.items():
                started, cpu = time.perf_counter(), time.process_time()
                predictor.predict(channels)
                times[name]["wall"].append(time.perf_counter() - started)
                times[name]["cpu"].append(time.process_time() - cpu)
    for name, t in times.items():
        results[name] = {"seconds": round(float(np.median(t["wall"])), 2),
                         "cpu_seconds": round(float(np.median(t["cpu"])), 2),
                         f"speed-up against {reference}": round(float(np.median(times[reference]["wall"])
                                                                      / np.median(t["wall"])), 2)}
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
