"""COCO box and mask AP of instance predictions, computed by pycocotools."""

from __future__ import annotations

import contextlib
from io import StringIO
from typing import Sequence

import numpy as np
import pandas as pd

from .checks import _check_class_names, _check_dataset, _Instances

_COCO_SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# Index of each COCO area range in ``params.areaRng``: all, small, medium, large.
_AREA_INDEX = {"AP": 0, "AP50": 0, "AP75": 0, "APs": 1, "APm": 2, "APl": 3}
_IOU_OF_KEY = {"AP50": 0.5, "AP75": 0.75}


def _coco_annotations(instances: _Instances, image_id: int, first_id: int) -> list[dict]:
    """COCO annotation dicts of one image; ids run from ``first_id``.

    Each holds the RLE ``segmentation``, ``bbox`` (``[x, y, w, h]`` in
    pixel-edge units, as ``pycocotools.mask.toBbox`` gives: a mask covering
    columns ``x0..x1`` has ``w = x1 - x0 + 1``; all zeros for an empty mask),
    the mask pixel count as ``mask_area``, the box area as ``box_area``,
    ``score`` and ``iscrowd=0``.
    """
    from pycocotools import mask as mask_utils

    rles = instances.rles
    if not rles:
        return []
    boxes = mask_utils.toBbox(rles)
    # pycocotools' area() overflows a uint8 count (numpy >= 2) when given over 255 RLEs at once
    mask_areas = np.concatenate([mask_utils.area(rles[i:i + 255]) for i in range(0, len(rles), 255)])
    return [
        {
            "id": first_id + i,
            "image_id": image_id,
            "category_id": int(instances.labels[i]),
            "segmentation": rles[i],
            "bbox": boxes[i].tolist(),
            "mask_area": float(mask_areas[i]),
            "box_area": float(boxes[i, 2] * boxes[i, 3]),
            "score": float(instances.scores[i]),
            "iscrowd": 0,
        }
        for i in range(len(rles))
    ]


def _coco_object(images: list[dict], categories: list[dict], annotations: list[dict]):
    """A ``pycocotools.coco.COCO`` built in memory (no file, no prints)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(StringIO()):
        coco.createIndex()
    return coco


def _with_area(annotations: list[dict], key: str) -> list[dict]:
    return [dict(ann, area=ann[key]) for ann in annotations]


def _run_cocoeval(coco_gt, coco_dt, iou_type: str, max_detections: int):
    """Run COCOeval's evaluate and accumulate silently; return its ``eval``."""
    from pycocotools.cocoeval import COCOeval

    evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
    # COCO counts at most 100 detections per image; nuclei images hold more.
    evaluator.params.maxDets = [1, 10, max_detections]
    with contextlib.redirect_stdout(StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval


def _percent_mean(precision: np.ndarray) -> float | None:
    """Mean of the valid (> -1) precisions in percent; None if there are none."""
    valid = precision[precision > -1]
    return float(valid.mean() * 100.0) if valid.size else None


def _summary_from_precision(coco_eval: dict, class_names: list[str]) -> dict:
    """The six COCO AP numbers and per-class APs from ``eval["precision"]``.

    COCOeval.summarize looks up ``maxDets=100`` by value, so with a larger
    last maxDets it would report -1; this reads the same numbers at the
    largest maxDets instead. ``precision`` has shape (T IoU thresholds,
    R recall thresholds, K classes, A area ranges, M maxDets).
    """
    precision = coco_eval["precision"][..., -1]  # (T, R, K, A)
    iou_thresholds = coco_eval["params"].iouThrs

    def at_iou(iou: float) -> int:
        return int(np.flatnonzero(np.isclose(iou_thresholds, iou))[0])

    summary = {}
    for key in _COCO_SUMMARY_KEYS:
        selected = precision[..., _AREA_INDEX[key]]
        if key in _IOU_OF_KEY:
            selected = selected[at_iou(_IOU_OF_KEY[key])]
        summary[key] = _percent_mean(selected)
    # As detectron2's COCOEvaluator: area range "all", largest maxDets.
    summary["per_class"] = {
        name: {
            "AP": _percent_mean(precision[:, :, k, 0]),
            "AP50": _percent_mean(precision[at_iou(0.5), :, k, 0]),
            "AP75": _percent_mean(precision[at_iou(0.75), :, k, 0]),
        }
        for k, name in enumerate(class_names)
    }
    return summary


def coco_metrics(ground_truth, predictions, class_names: Sequence[str]) -> dict:
    """COCO box and mask average precision, computed by pycocotools.

    Boxes of both ground truth and predictions are derived from their masks
    (see :func:`_coco_annotations`). As in detectron2, the area that decides a
    detection's size range is its box area for box AP and its mask area for
    mask AP; ground truth always uses its mask area.

    Parameters
    ----------
    ground_truth : list of dict
        Per image ``{"masks": (N, H, W) bool, "labels": (N,) int64}``.
    predictions : list of dict
        Per image ``{"masks": (M, H, W) bool, "labels": (M,) int64,
        "scores": (M,) float32}``, aligned with ``ground_truth``.
    class_names : sequence of str
        K names; class id ``k`` is ``class_names[k - 1]``.

    Returns
    -------
    dict
        ``{"bbox": summary, "segm": summary}`` where each summary holds
        ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (percent, 0-100)
        and ``per_class``: ``{name: {"AP", "AP50", "AP75"}}``. A value is None
        where it is undefined: no ground truth of that class or size range.
        Up to ``max(100, most instances in any image)`` detections per image
        count (COCO's own limit is 100).

    Raises
    ------
    PcnacycleError
        On inconsistent input; the message names the entry at fault.
    """
    names = _check_class_names(class_names)
    pairs = _check_dataset(ground_truth, predictions, len(names))

    images, gt_annotations, dt_annotations = [], [], []
    for image_id, (gt, pred) in enumerate(pairs, start=1):
        height, width = gt.shape
        images.append({"id": image_id, "height": height, "width": width})
        # Annotation id 0 means "unmatched" inside COCOeval: ids start at 1.
        gt_annotations += _coco_annotations(gt, image_id, len(gt_annotations) + 1)
        dt_annotations += _coco_annotations(pred, image_id, len(dt_annotations) + 1)
    categories = [{"id": k, "name": name} for k, name in enumerate(names, start=1)]
    max_detections = max(
        [100] + [max(len(gt.rles), len(pred.rles)) for gt, pred in pairs]
    )

    coco_gt = _coco_object(images, categories, _with_area(gt_annotations, "mask_area"))
    metrics = {}
    for iou_type, dt_area in (("bbox", "box_area"), ("segm", "mask_area")):
        coco_dt = _coco_object(images, categories, _with_area(dt_annotations, dt_area))
        coco_eval = _run_cocoeval(coco_gt, coco_dt, iou_type, max_detections)
        metrics[iou_type] = _summary_from_precision(coco_eval, names)
    return metrics


def format_table(metrics: dict) -> str:
    """Plain-text table of a :func:`coco_metrics` result, for printing.

    One row each for ``bbox`` and ``segm`` (columns AP, AP50, AP75, APs,
    APm, APl), then one row per class with its bbox and segm AP50.
    Undefined values print as ``-``.
    """
    summary = pd.DataFrame(
        {key: [metrics[t][key] for t in ("bbox", "segm")] for key in _COCO_SUMMARY_KEYS},
        index=["bbox", "segm"],
        dtype=float,
    )
    per_class = pd.DataFrame(
        {
            f"{t} AP50": {name: ap["AP50"] for name, ap in metrics[t]["per_class"].items()}
            for t in ("bbox", "segm")
        },
        dtype=float,
    )
    style = {"float_format": "{:.1f}".format, "na_rep": "-"}
    return summary.to_string(**style) + "\n\n" + per_class.to_string(**style)
