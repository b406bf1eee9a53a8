"""Running a model over a dataset's records, and the evaluation hook the trainer calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tqdm import tqdm

from ..data.catalog import load_sample
from ..engine.predictor import Predictor
from ..engine.scale import predict_scaled
from .coco import _COCO_SUMMARY_KEYS, coco_metrics
from .rle import encode_label_image, encode_masks

log = logging.getLogger(__name__)


def predict_dataset(predictor: Predictor, records, progress: bool = False, scale: float | None = None,
                    scale_of: Callable[[dict], float | None] | None = None) -> tuple[list[dict], list[dict]]:
    """Ground truth and predictions for each record, predicted as ``pcnacycle run`` would.

    Frames go through :meth:`pcnacycle.engine.predictor.Predictor.predict` (tiled when large,
    overlaps resolved, at most ``TEST.DETECTIONS_PER_IMAGE`` detections per tile scoring over
    ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``), resized by ``scale`` as
    :func:`pcnacycle.engine.scale.predict_scaled` does (None: as the model takes them), or by
    ``scale_of(sample)`` when given (each image its own factor, from the sample :func:`load_sample`
    gives); predictions come back at the images' own pixels. Each image's masks are encoded as RLEs as
    soon as they are read or predicted, so memory grows with the outlines, not with
    images × instances × pixels.

    Returns
    -------
    (ground_truth, predictions): lists aligned by record, in the RLE form of
    :mod:`pcnacycle.evaluation.checks`: ``{"rles", "shape", "labels"}`` and
    ``{"rles", "shape", "labels", "scores"}``.
    """
    ground_truth, predictions = [], []
    model, cfg = predictor.model, predictor.cfg
    was_training = model.training
    model.eval()
    for record in tqdm(records, desc="evaluate", unit="image", disable=not progress, leave=False):
        sample = load_sample(cfg, record)
        result = predict_scaled(predictor, sample["channels"], scale if scale_of is None else scale_of(sample))
        shape = tuple(sample["masks"].shape[1:])
        ground_truth.append({"rles": encode_masks(sample["masks"]), "shape": shape, "labels": sample["labels"]})
        predictions.append({"rles": encode_label_image(result["label_image"], len(result["scores"])),
                            "shape": shape, "labels": result["labels"], "scores": result["scores"]})
    model.train(was_training)
    return ground_truth, predictions


def flat_metrics(metrics: dict) -> dict[str, float]:
    """``{"bbox/AP": .., "segm/AP50": .., "segm/AP50/<class>": ..}`` for metrics.jsonl."""
    flat = {}
    for iou_type in ("bbox", "segm"):
        for key in _COCO_SUMMARY_KEYS:
            flat[f"{iou_type}/{key}"] = metrics[iou_type][key]
        if len(metrics[iou_type]["per_class"]) > 1:
            for name, values in metrics[iou_type]["per_class"].items():
                flat[f"{iou_type}/AP50/{name}"] = values["AP50"]
    return flat


def make_training_evaluator(cfg, records, progress: bool = False):
    """The ``evaluate(model, iteration)`` callback :func:`pcnacycle.engine.trainer.train` calls."""
    def evaluate_during_training(model, iteration: int) -> dict[str, float]:
        ground_truth, predictions = predict_dataset(Predictor.from_model(model, cfg), records, progress=progress)
        flat = flat_metrics(coco_metrics(ground_truth, predictions, cfg.MODEL.CLASS_NAMES))
        log.info("iteration %d, %d val images: segm AP50 %s, bbox AP50 %s", iteration, len(records),
                 _fmt(flat["segm/AP50"]), _fmt(flat["bbox/AP50"]))
        return flat

    return evaluate_during_training


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"
