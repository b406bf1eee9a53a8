"""Memory and time of scoring a barely trained model's detections: RLEs instead of full-frame masks (issue 13).

A barely trained model fills every frame with ``TEST.DETECTIONS_PER_IMAGE``
(400 in the shipped configs) overlapping detections. Before issue 13 the
evaluation kept, per image, an (N, H, W) bool stack of the ground truth and
one of the predictions until all images were done; now each image's masks
are encoded as pycocotools RLEs as soon as they exist. The input here is
synthetic, no model: frames of DSB2018's largest size (1040 × 1388) with
60 true nuclei and 400 painted, overlapping predicted discs. Reported: the
bytes an image's masks take as full-frame bool stacks (what the old path
held) and as RLEs (what is held now), the seconds to encode one frame's
predictions, and the seconds and peak traced memory of scoring all frames
with :func:`pcnacycle.evaluation.coco.coco_metrics` and
:func:`pcnacycle.evaluation.matching.matching_scores` from the RLEs.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/eval_memory.py [--images 10]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from pcnacycle.evaluation.coco import coco_metrics
from pcnacycle.evaluation.matching import matching_scores
from pcnacycle.evaluation.rle import encode_label_image

SHAPE = (1040, 1388)


def painted_discs(count: int, rng: np.random.Generator) -> np.ndarray:
    """An (H, W) int32 label image of ``count`` discs (radius 6-20), later ones painted over earlier ones."""
    label_image = np.zeros(SHAPE, np.int32)
    for k in range(1, count + 1):
        cy, cx, r = rng.integers(20, SHAPE[0] - 20), rng.integers(20, SHAPE[1] - 20), rng.integers(6, 21)
        yy, xx = np.ogrid[-r: r + 1, -r: r + 1]
        window = label_image[cy - r: cy + r + 1, cx - r: cx + r + 1]
        window[yy ** 2 + xx ** 2 <= r * r] = k
    present = np.unique(label_image)[1:]  # renumber 1..n: a disc painted over entirely is gone
    lookup = np.zeros(count + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1)
    return lookup[label_image]


def rle_bytes(rles: list[dict]) -> int:
    return sum(len(rle["counts"]) for rle in rles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ground_truth, predictions, full_bytes, encode_seconds = [], [], 0, []
    for _ in range(args.images):
        truth, predicted = painted_discs(60, rng), painted_discs(400, rng)
        gt_count, pred_count = int(truth.max()), int(predicted.max())
        full_bytes += (gt_count + pred_count) * SHAPE[0] * SHAPE[1]
        start = time.perf_counter()
        pred_rles = encode_label_image(predicted, pred_count)
        encode_seconds.append(time.perf_counter() - start)
        ground_truth.append({"rles": encode_label_image(truth, gt_count), "shape": SHAPE,
                             "labels": np.ones(gt_count, np.int64)})
        predictions.append({"rles": pred_rles, "shape": SHAPE, "labels": np.ones(pred_count, np.int64),
                            "scores": rng.random(pred_count)})
    held = sum(rle_bytes(entry["rles"]) for entry in ground_truth + predictions)
    start = time.perf_counter()
    metrics = coco_metrics(ground_truth, predictions, ["nucleus"])
    matching_scores(ground_truth, predictions)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(f"{args.images} images of {SHAPE[1]}x{SHAPE[0]}, "
          f"{sum(len(p['rles']) for p in predictions) / args.images:.0f} predictions and "
          f"{sum(len(g['rles']) for g in ground_truth) / args.images:.0f} nuclei per image")
    print(f"masks as full-frame bool stacks (the old path): {full_bytes / 2**20:.0f} MiB")
    print(f"masks as RLEs (held now): {held / 2**20:.2f} MiB")
    print(f"encoding one frame's predictions: {np.median(encode_seconds):.2f} s (median)")
    print(f"coco_metrics + matching_scores from RLEs: {seconds:.1f} s; segm AP {metrics['segm']['AP']:.2f}")
    print(f"peak resident memory of the whole process: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
