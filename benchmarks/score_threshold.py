"""Matching F1 against the detection score threshold, on data other than a target movie.

``pcnacycle run`` keeps detections scoring ``RunSettings.score_threshold`` (0.5) or more. To know whether a
movie's missed dim nuclei call for a lower threshold without choosing it on that movie, this scores one
model's detections at several thresholds on three other datasets: randomised simulated test frames (one
factor for the set, as ``evaluate``), DSB2018 val (each image by its own annotated nuclei, as
``evaluate --scale-per-image``) and the fully outlined frames of CTC GOWT1 02 (at the factor ``run``
measured, read from a run's ``run.json``). Matching F1 at IoU 0.5, class-agnostic.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/score_threshold.py \\
        --model bench-out/transfer/stage3_with_nuclei_long \\
        --gowt1-run bench-out/transfer/eval/stage3_with_nuclei_long/gowt1_run --out bench-out/score_threshold.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile
from real_pcna import THRESHOLDS
from skimage.segmentation import relabel_sequential
from transfer_recipe import complete_seg_frames

from pcnacycle.config import load_config
from pcnacycle.data.catalog import read_records
from pcnacycle.data.dataset import read_split, select
from pcnacycle.engine.predictor import Predictor
from pcnacycle.engine.scale import predict_scaled
from pcnacycle.evaluation.evaluator import own_nucleus_scale
from pcnacycle.evaluation.loop import predict_dataset
from pcnacycle.evaluation.matching import matching_scores
from pcnacycle.evaluation.rle import encode_label_image


def f1_curve(ground_truth: list[dict], predictions: list[dict]) -> dict[float, float]:
    """Matching F1 at IoU 0.5 for each score threshold."""
    return {t: round(float(matching_scores(ground_truth, predictions, thresholds=[0.5], score_threshold=t)["f1"][0]), 3)
            for t in THRESHOLDS}


def predictor_on(model: Path, *opts) -> Predictor:
    return Predictor(model / "model_final.pt", load_config(str(model / "config.yaml"), list(opts)))


def simulated(model: Path, root: Path, scale: float) -> dict:
    predictor = predictor_on(model, "DATASETS.ROOT", str(root))
    return f1_curve(*predict_dataset(predictor, read_records(predictor.cfg), scale=scale))


def dsb2018_val(model: Path, root: Path, split_file: Path) -> dict:
    predictor = predictor_on(model, "DATASETS.FORMAT", "dsb2018", "DATASETS.ROOT", str(root))
    records = select(read_records(predictor.cfg), read_split(split_file)["val"], f"{split_file} (val)")
    scale_of, _ = own_nucleus_scale(predictor)
    return f1_curve(*predict_dataset(predictor, records, scale_of=scale_of))


def gowt1(model: Path, movie: Path, truth: Path, run: Path) -> dict:
    """GOWT1 02's frames whose SEG outlines every nucleus, at the scale ``run`` used (its ``run.json``)."""
    predictor = predictor_on(model)
    scale = json.loads((run / "run.json").read_text())["scale"]
    ground_truth, predictions = [], []
    for frame, seg, _ in complete_seg_frames(truth):
        seg = relabel_sequential(seg)[0]
        count = int(seg.max())
        ground_truth.append({"rles": encode_label_image(seg, count), "shape": seg.shape,
                             "labels": np.ones(count, np.int64)})
        image = tifffile.imread(movie, key=frame)
        result = predict_scaled(predictor, {"pcna": image, "gray": image}, scale)
        predictions.append({"rles": encode_label_image(result["label_image"], len(result["scores"])),
                            "shape": seg.shape, "labels": np.ones(len(result["scores"]), np.int64),
                            "scores": result["scores"]})
    return f1_curve(ground_truth, predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="training folder (config.yaml, model_final.pt)")
    parser.add_argument("--sim-test", type=Path, default=Path("bench-out/transfer/sim_random_test/annotated"))
    parser.add_argument("--sim-scale", type=float, default=None,
                        help="factor for the simulated frames (default: what evaluate recorded for them)")
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018/stage1_train"))
    parser.add_argument("--split-file", type=Path, default=Path("bench-out/stage1_cpu/split.json"))
    parser.add_argument("--gowt1-movie", type=Path, default=Path("bench-out/transfer/gowt1_02.tif"))
    parser.add_argument("--gowt1-truth", type=Path, default=Path("../shared/data/ctc/Fluo-N2DH-GOWT1/02_GT"))
    parser.add_argument("--gowt1-run", type=Path, required=True, help="a `pcnacycle run` of the model on GOWT1 02")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sim_scale = args.sim_scale
    if sim_scale is None:
        sim_scale = json.loads((args.model.parent / "eval" / args.model.name / "sim_random_test" / "eval.json")
                               .read_text())["scale"]
    results = {"model": str(args.model), "iou": 0.5}
    results["simulated"] = simulated(args.model, args.sim_test, sim_scale)
    print("simulated", results["simulated"], flush=True)
    results["dsb2018_val"] = dsb2018_val(args.model, args.dsb, args.split_file)
    print("dsb2018_val", results["dsb2018_val"], flush=True)
    results["gowt1_02"] = gowt1(args.model, args.gowt1_movie, args.gowt1_truth, args.gowt1_run)
    print("gowt1_02", results["gowt1_02"], flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
