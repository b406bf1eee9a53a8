"""RoIAlign on a CPU: torchvision's kernel against pcnacycle's sparse matrix product, alone and in training.

Part 1 pools random RoIs from random P2-P5 maps of a batch of two 256-pixel
crops (the demo's training input), forward and backward, with both
implementations, and reports seconds per call and the largest differences.
Part 2 (``--train-iterations N``) trains the demo's model (the config the
demo saved, ``--config``) for N iterations with each pooler, from the same
seed, and reports seconds per iteration and the losses logged.

Usage (from the repository root)::

    .venv/bin/python benchmarks/roi_align_speed.py [--train-iterations 40] \\
        [--config demo-output/train/config.yaml] [--out bench-out/roi_align_speed]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

import pcnacycle.modeling.detectron2_layout as layout
from pcnacycle.modeling.roi_align import multiscale_roi_align

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def torchvision_pooled(features, rois, level, output, sampling_ratio):
    result = features[0].new_zeros((len(rois), features[0].shape[1], output, output))
    for index, feature in enumerate(features):
        chosen = torch.where(level == index)[0]
        result[chosen] = roi_align(feature, rois[chosen], output, SCALES[index], sampling_ratio, False)
    return result


def seconds_per_call(function, repeats: int = 10) -> float:
    function()  # first call: allocations
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def pooling(rois_count: int, output: int, channels: int = 128, crop: int = 256) -> dict:
    """Forward + backward of both poolers on the same random maps and RoIs (nuclei-sized boxes, P2 mostly)."""
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(2, channels, crop // s, crop // s, generator=generator, requires_grad=True)
                for s in (4, 8, 16, 32)]
    corner = torch.rand(rois_count, 2, generator=generator) * (crop - 40)
    rois = torch.cat([torch.randint(0, 2, (rois_count, 1), generator=generator).float(), corner,
                      corner + torch.rand(rois_count, 2, generator=generator) * 60 + 4], dim=1)
    sizes = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
    level = (torch.floor(4 + torch.log2(sizes.sqrt() / 224 + 1e-6)).clamp(2, 5) - 2).long()
    upstream = torch.randn(rois_count, channels, output, output, generator=generator)

    def ours():
        multiscale_roi_align(features, rois, level, SCALES, (output, output), 2, False).backward(upstream)

    def theirs():
        torchvision_pooled(features, rois, level, output, 2).backward(upstream)

    difference = (multiscale_roi_align(features, rois, level, SCALES, (output, output), 2, False)
                  - torchvision_pooled(features, rois, level, output, 2)).abs().max().item()
    return {"rois": rois_count, "output": output, "torchvision_s": round(seconds_per_call(theirs), 4),
            "sparse_s": round(seconds_per_call(ours), 4), "largest_difference": difference}


def training(pooler: str, config: Path, iterations: int, out: Path) -> dict:
    """Seconds per iteration and logged losses of ``iterations`` of the demo's training with one pooler."""
    from train_speed import short_training

    original = layout.LevelledRoIAlign
    if pooler == "torchvision":
        layout.LevelledRoIAlign = MultiScaleRoIAlign
    try:
        rows, seconds = short_training(config, ["SOLVER.MAX_ITER", iterations, "SOLVER.STEPS",
                                                f"[{int(iterations * 0.8)}]", "SOLVER.CHECKPOINT_PERIOD", iterations,
                                                "TEST.EVAL_PERIOD", 0], out / pooler)
    finally:
        layout.LevelledRoIAlign = original
    logged = [row for row in rows if "total_loss" in row]
    return {"pooler": pooler, "seconds": round(seconds, 1),
            "seconds_per_iteration": round(sum(r["time"] for r in logged) / len(logged), 3),
            "total_loss": [round(r["total_loss"], 4) for r in logged]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-iterations", type=int, default=0)
    parser.add_argument("--config", type=Path, default=Path("demo-output/train/config.yaml"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/roi_align_speed"))
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {"pooling": [pooling(256, 7), pooling(64, 14)]}
    for row in results["pooling"]:
        print(row)
    if args.train_iterations:
        results["training"] = [training(p, args.config, args.train_iterations, args.out)
                               for p in ("torchvision", "sparse")]
        for row in results["training"]:
            print(row)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
