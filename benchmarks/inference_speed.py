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


def seconds_in_turns(calls: dict, repeats: int) -> dict[str, dict]:
    """Median wall and CPU seconds of each call (CPU: all threads of this process), the calls timed in turns so
    that load on the machine hits all alike."""
    times = {name: {"wall": [], "cpu": []} for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started, cpu = time.perf_counter(), time.process_time()
            call()
            times[name]["wall"].append(time.perf_counter() - started)
            times[name]["cpu"].append(time.process_time() - cpu)
    return {name: {"seconds": round(float(np.median(t["wall"])), 2),
                   "cpu_seconds": round(float(np.median(t["cpu"])), 2),
                   "all_seconds": [round(x, 2) for x in t["wall"]]}
            for name, t in times.items()}


def same_detections(reference: dict, found: dict) -> dict:
    """Two predictions of one frame compared: objects matched one-to-one by decreasing mask IoU (every
    overlapping pair considered), their lowest IoU and largest score and class-probability differences."""
    matched = match_frame(reference["label_image"], found["label_image"], threshold=0.0)
    truth, pred = matched["truth"] - 1, matched["pred"] - 1
    return {"objects": [len(reference["scores"]), len(found["scores"])], "matched": len(matched),
            "min_mask_iou": round(float(matched["iou"].min()), 4) if len(matched) else None,
            "max_score_difference": float(np.abs(reference["scores"][truth] - found["scores"][pred]).max(initial=0)),
            "max_prob_difference": float(np.abs(reference["probs"][truth] - found["probs"][pred]).max(initial=0))}


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
            results[f"{name} against {reference}"] = same_detections(found[reference], found[name])
        seconds = seconds_in_turns({name: (lambda p=predictor: p.predict(channels))
                                    for name, predictor in predictors.items()}, args.repeats)
    for name, timed in seconds.items():
        results[name] = {**timed, f"speed-up against {reference}": round(seconds[reference]["seconds"]
                                                                         / timed["seconds"], 2)}
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
