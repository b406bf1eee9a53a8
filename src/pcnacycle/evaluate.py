"""Metrics for nucleus segmentation and PCNA phase calls.

Everything here takes plain numpy data, one entry per image, with the lists
aligned by image:

* ground truth: ``{"masks": (N, H, W) bool, "labels": (N,) int64}``
* predictions: ``{"masks": (M, H, W) bool, "labels": (M,) int64,
  "scores": (M,) float32}``

Labels are class ids ``1..K``; class id ``k`` is named ``class_names[k - 1]``.

Three views of the same predictions are offered:

* :func:`coco_metrics` -- COCO box and mask AP, computed by pycocotools;
* :func:`phase_confusion` / :func:`classification_report` -- which phase each
  detected nucleus was given, after a one-to-one matching by mask IoU;
* :func:`matching_scores` -- the class-agnostic StarDist/Cellpose matching
  score over a range of IoU thresholds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from io import StringIO
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from tqdm import tqdm

from .data import compose_channels, load_sample, read_records, read_split, select
from .errors import PcnacycleError
from .io import atomic_write, write_json
from .predict import label_image_to_masks, load_model, load_weights_path, predict_image

log = logging.getLogger(__name__)

#: Row of :func:`phase_confusion` for predictions that match no nucleus.
SPURIOUS = "spurious"
#: Column of :func:`phase_confusion` for nuclei that no prediction matched.
MISSED = "missed"
#: Row of :func:`classification_report` for class-agnostic detection.
DETECTION = "detection"
#: Row of :func:`classification_report` for the phase accuracy of matched pairs.
PHASE_ACCURACY = "phase accuracy"

#: IoU thresholds of :func:`matching_scores`: 0.5, 0.55, ..., 0.9.
DEFAULT_MATCH_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))

_COCO_SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# Index of each COCO area range in ``params.areaRng``: all, small, medium, large.
_AREA_INDEX = {"AP": 0, "AP50": 0, "AP75": 0, "APs": 1, "APm": 2, "APl": 3}
_IOU_OF_KEY = {"AP50": 0.5, "AP75": 0.75}


class _Instances(NamedTuple):
    """The instances of one image, validated.

    masks: (N, H, W) bool; labels: (N,) int64; scores: (N,) float64
    (all ones for ground truth).
    """

    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    names = [str(name) for name in class_names]
    if not names:
        raise PcnacycleError("class_names is empty: give at least one class name")
    if len(set(names)) != len(names):
        raise PcnacycleError(f"class_names has duplicates: {names}")
    reserved = {SPURIOUS, MISSED, DETECTION, PHASE_ACCURACY} & set(names)
    if reserved:
        raise PcnacycleError(
            f"class_names may not use the reserved name(s) {sorted(reserved)}"
        )
    return names


def _as_mask_stack(masks, what: str) -> np.ndarray:
    """Return ``masks`` as an (N, H, W) bool array, or raise naming ``what``."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise PcnacycleError(
            f"{what} must be an (N, H, W) array, got shape {masks.shape}"
        )
    if masks.dtype == bool:
        return masks
    # Integer masks (0/1 or 0/255) are unambiguous; float masks are usually
    # un-thresholded probabilities, which must not silently become True.
    if np.issubdtype(masks.dtype, np.integer):
        return masks != 0
    raise PcnacycleError(
        f"{what} must be bool (or integer 0/1), got dtype {masks.dtype}; "
        "threshold mask probabilities first"
    )


def _as_vector(values, length: int, what: str, kind: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != length:
        raise PcnacycleError(
            f"{what} must have shape ({length},) to match its masks, "
            f"got shape {values.shape}"
        )
    if kind == "label":
        if len(values) and not np.issubdtype(values.dtype, np.integer):
            raise PcnacycleError(f"{what} must be integer class ids, got {values.dtype}")
        return values.astype(np.int64)
    if len(values) and not np.issubdtype(values.dtype, np.number):
        raise PcnacycleError(f"{what} must be numbers, got {values.dtype}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise PcnacycleError(f"{what} holds NaN or infinite scores")
    return values


def _check_instances(
    entry, what: str, num_classes: int | None, with_scores: bool
) -> _Instances:
    if not isinstance(entry, Mapping):
        raise PcnacycleError(f"{what} must be a dict, got {type(entry).__name__}")
    keys = ("masks", "labels", "scores") if with_scores else ("masks", "labels")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise PcnacycleError(f"{what} lacks key(s) {missing}")
    masks = _as_mask_stack(entry["masks"], f"{what}['masks']")
    labels = _as_vector(entry["labels"], len(masks), f"{what}['labels']", "label")
    if num_classes is not None and len(labels):
        bad = labels[(labels < 1) | (labels > num_classes)]
        if len(bad):
            raise PcnacycleError(
                f"{what}['labels'] holds {sorted(set(bad.tolist()))}, "
                f"outside the class ids 1..{num_classes}"
            )
    if with_scores:
        scores = _as_vector(entry["scores"], len(masks), f"{what}['scores']", "score")
    else:
        scores = np.ones(len(masks))
    return _Instances(masks, labels, scores)


def _check_dataset(
    ground_truth, predictions, num_classes: int | None
) -> list[tuple[_Instances, _Instances]]:
    """Validate both lists and return them paired by image.

    ``num_classes=None`` skips the label range check (class-agnostic metrics).
    """
    if len(ground_truth) != len(predictions):
        raise PcnacycleError(
            f"ground_truth has {len(ground_truth)} images but predictions has "
            f"{len(predictions)}; give one entry per image in both"
        )
    if len(ground_truth) == 0:
        raise PcnacycleError("ground_truth is empty: there is nothing to evaluate")
    pairs = []
    for index, (gt_entry, pred_entry) in enumerate(zip(ground_truth, predictions)):
        gt = _check_instances(gt_entry, f"ground_truth[{index}]", num_classes, False)
        pred = _check_instances(pred_entry, f"predictions[{index}]", num_classes, True)
        if pred.masks.shape[1:] != gt.masks.shape[1:]:
            raise PcnacycleError(
                f"predictions[{index}]['masks'] are {pred.masks.shape[1:]} pixels "
                f"but the ground truth of that image is {gt.masks.shape[1:]}"
            )
        pairs.append((gt, pred))
    return pairs


def _check_threshold(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise PcnacycleError(f"{what} must be in (0, 1], got {value}")
    return value


# --------------------------------------------------------------------------
# COCO AP via pycocotools
# --------------------------------------------------------------------------


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Bounding boxes of masks as COCO ``[x, y, w, h]`` in pixel-edge units.

    A mask covering columns ``xmin..xmax`` has ``w = xmax - xmin + 1`` (the
    box runs from the left edge of the first pixel to the right edge of the
    last), as ``pycocotools.mask.toBbox`` does.

    Parameters
    ----------
    masks : (N, H, W) bool ndarray

    Returns
    -------
    (N, 4) float64 ndarray
        All zeros for an empty mask.
    """
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    height, width = masks.shape[1:]
    y0 = rows.argmax(axis=1)
    y1 = height - 1 - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = width - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1).astype(np.float64)
    boxes[~rows.any(axis=1)] = 0.0
    return boxes


def _coco_annotations(instances: _Instances, image_id: int, first_id: int) -> list[dict]:
    """COCO annotation dicts of one image; ids run from ``first_id``.

    Each holds the RLE ``segmentation``, ``bbox``, the mask pixel count as
    ``mask_area``, the box area as ``box_area``, ``score`` and ``iscrowd=0``.
    """
    from pycocotools import mask as mask_utils

    if len(instances.masks) == 0:
        return []
    # encode wants (H, W, N) uint8 in Fortran order.
    rles = mask_utils.encode(
        np.asfortranarray(np.moveaxis(instances.masks, 0, -1).astype(np.uint8))
    )
    boxes = _mask_boxes(instances.masks)
    mask_areas = instances.masks.sum(axis=(1, 2))
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
        for i in range(len(instances.masks))
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
    (see :func:`_mask_boxes`). As in detectron2, the area that decides a
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
        height, width = gt.masks.shape[1:]
        images.append({"id": image_id, "height": height, "width": width})
        # Annotation id 0 means "unmatched" inside COCOeval: ids start at 1.
        gt_annotations += _coco_annotations(gt, image_id, len(gt_annotations) + 1)
        dt_annotations += _coco_annotations(pred, image_id, len(dt_annotations) + 1)
    categories = [{"id": k, "name": name} for k, name in enumerate(names, start=1)]
    max_detections = max(
        [100] + [max(len(gt.masks), len(pred.masks)) for gt, pred in pairs]
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


# --------------------------------------------------------------------------
# One-to-one matching by mask IoU
# --------------------------------------------------------------------------


def _pixel_incidence(masks: np.ndarray) -> sparse.csr_matrix:
    """(N, H*W) sparse int64 matrix with a 1 where mask n covers a pixel."""
    flat = masks.reshape(len(masks), masks.shape[1] * masks.shape[2])
    rows, cols = np.nonzero(flat)
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int64), (rows, cols)), shape=flat.shape
    )


def iou_matrix(gt_masks, pred_masks) -> np.ndarray:
    """Intersection over union of every ground truth with every prediction.

    Overlaps are counted through a sparse pixel-incidence product, so the cost
    grows with the number of mask pixels, not with N x M full frames.
    Masks may overlap each other.

    Parameters
    ----------
    gt_masks : (N, H, W) bool ndarray
    pred_masks : (M, H, W) bool ndarray

    Returns
    -------
    (N, M) float64 ndarray
        IoU in [0, 1]; 0 where both masks are empty.
    """
    gt = _as_mask_stack(gt_masks, "gt_masks")
    pred = _as_mask_stack(pred_masks, "pred_masks")
    if gt.shape[1:] != pred.shape[1:]:
        raise PcnacycleError(
            f"gt_masks are {gt.shape[1:]} pixels but pred_masks are {pred.shape[1:]}"
        )
    gt_pixels = _pixel_incidence(gt)
    pred_pixels = _pixel_incidence(pred)
    intersection = (gt_pixels @ pred_pixels.T).toarray().astype(np.float64)
    gt_area = np.asarray(gt_pixels.sum(axis=1), dtype=np.float64).reshape(-1, 1)
    pred_area = np.asarray(pred_pixels.sum(axis=1), dtype=np.float64).reshape(1, -1)
    union = gt_area + pred_area - intersection
    return np.divide(
        intersection, union, out=np.zeros_like(intersection), where=union > 0
    )


def _match_from_iou(iou: np.ndarray, iou_threshold: float):
    """Optimal one-to-one matching on a precomputed (N, M) IoU matrix.

    Pairs below the threshold get weight 0, so the assignment that maximises
    total weight is the one maximising total IoU among eligible pairs; the
    zero-weight pairs it is forced to make are then dropped.
    """
    eligible = np.where(iou >= iou_threshold, iou, 0.0)
    gt_index, pred_index = linear_sum_assignment(eligible, maximize=True)
    keep = eligible[gt_index, pred_index] > 0
    gt_index, pred_index = gt_index[keep], pred_index[keep]
    return gt_index, pred_index, iou[gt_index, pred_index]


def match_instances(gt_masks, pred_masks, iou_threshold: float = 0.5):
    """Pair ground truth and predicted masks one-to-one by IoU.

    Among all one-to-one pairings that use only pairs with
    ``IoU >= iou_threshold``, the one with the largest total IoU is returned
    (Hungarian algorithm). Unlike greedy best-first matching, this never
    gives a prediction to one nucleus when it is needed for another.

    Parameters
    ----------
    gt_masks : (N, H, W) bool ndarray
    pred_masks : (M, H, W) bool ndarray
    iou_threshold : float in (0, 1]

    Returns
    -------
    gt_index : (P,) int ndarray
        Indices into ``gt_masks``, increasing.
    pred_index : (P,) int ndarray
        Indices into ``pred_masks``; ``pred_index[i]`` matches ``gt_index[i]``.
    iou : (P,) float64 ndarray
        IoU of each matched pair.
    """
    iou_threshold = _check_threshold(iou_threshold, "iou_threshold")
    return _match_from_iou(iou_matrix(gt_masks, pred_masks), iou_threshold)


# --------------------------------------------------------------------------
# Phase calls of matched nuclei
# --------------------------------------------------------------------------


def _confident(pred: _Instances, score_threshold: float) -> _Instances:
    keep = pred.scores >= score_threshold
    return _Instances(pred.masks[keep], pred.labels[keep], pred.scores[keep])


def phase_confusion(
    ground_truth,
    predictions,
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> pd.DataFrame:
    """Confusion matrix of phase calls, with missed and spurious nuclei.

    Predictions scoring at least ``score_threshold`` are matched one-to-one to
    the ground truth of their image by mask IoU, whatever their class (see
    :func:`match_instances`); each matched pair then counts once at
    (true class, predicted class).

    Parameters
    ----------
    ground_truth, predictions : list of dict
        As for :func:`coco_metrics`.
    class_names : sequence of str
        K names.
    iou_threshold : float in (0, 1]
        Least IoU for a prediction to match a nucleus.
    score_threshold : float
        Predictions scoring less are ignored.

    Returns
    -------
    pandas.DataFrame
        (K + 1, K + 1) int64 counts summed over images. Rows: true class
        names, then ``"spurious"`` (predictions matching no nucleus); columns:
        predicted class names, then ``"missed"`` (nuclei no prediction
        matched). The ``("spurious", "missed")`` cell is always 0.
    """
    names = _check_class_names(class_names)
    pairs = _check_dataset(ground_truth, predictions, len(names))
    iou_threshold = _check_threshold(iou_threshold, "iou_threshold")
    num_classes = len(names)
    # Class ids are 1..K; index K is the "spurious" row / "missed" column.
    counts = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for gt, pred in pairs:
        pred = _confident(pred, score_threshold)
        gt_index, pred_index, _ = _match_from_iou(
            iou_matrix(gt.masks, pred.masks), iou_threshold
        )
        true_class = gt.labels - 1
        predicted_class = pred.labels - 1
        np.add.at(counts, (true_class[gt_index], predicted_class[pred_index]), 1)
        missed = np.setdiff1d(np.arange(len(gt.labels)), gt_index)
        np.add.at(counts, (true_class[missed], num_classes), 1)
        spurious = np.setdiff1d(np.arange(len(pred.labels)), pred_index)
        np.add.at(counts, (num_classes, predicted_class[spurious]), 1)
    return pd.DataFrame(
        counts,
        index=pd.Index(names + [SPURIOUS], name="true"),
        columns=pd.Index(names + [MISSED], name="predicted"),
    )


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is 0 (undefined)."""
    return numerator / denominator if denominator else float("nan")


def _scores_row(tp: int, fp: int, fn: int, support: int) -> dict:
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "support": support,
    }


def classification_report(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per-class precision, recall and F1 from a :func:`phase_confusion` matrix.

    For class c: true positives are nuclei of class c called c; false
    negatives are nuclei of class c missed or called another class; false
    positives are spurious predictions of c or nuclei of another class called
    c. So a misclassified nucleus counts against both classes involved.

    Returns
    -------
    pandas.DataFrame
        Columns ``precision``, ``recall``, ``f1`` (float, NaN when 0/0) and
        ``support`` (int: true nuclei of the class). One row per class, then

        * ``"detection"``: class-agnostic detection, matched nuclei as true
          positives, missed ones as false negatives and spurious predictions
          as false positives;
        * ``"phase accuracy"``: the fraction of matched nuclei given their
          true class (micro-averaged precision = recall = F1 over matched
          pairs, so all three columns hold it); support is the matched count.
    """
    _check_confusion(confusion)
    counts = confusion.to_numpy(dtype=np.int64)
    classes = list(confusion.columns[:-1])
    matched = counts[:-1, :-1]  # true class x predicted class
    rows = {}
    for k, name in enumerate(classes):
        tp = int(matched[k, k])
        true_total = int(counts[k].sum())  # called anything or missed
        called_total = int(counts[:, k].sum())  # true anything or spurious
        rows[name] = _scores_row(tp, called_total - tp, true_total - tp, true_total)
    num_matched = int(matched.sum())
    num_missed = int(counts[:-1, -1].sum())
    num_spurious = int(counts[-1, :-1].sum())
    rows[DETECTION] = _scores_row(
        num_matched, num_spurious, num_missed, num_matched + num_missed
    )
    accuracy = _ratio(int(np.trace(matched)), num_matched)
    rows[PHASE_ACCURACY] = {
        "precision": accuracy,
        "recall": accuracy,
        "f1": accuracy,
        "support": num_matched,
    }
    report = pd.DataFrame.from_dict(rows, orient="index")
    return report.astype({"support": np.int64})


def _check_confusion(confusion: pd.DataFrame) -> None:
    if (
        not isinstance(confusion, pd.DataFrame)
        or confusion.shape[0] != confusion.shape[1]
        or confusion.shape[0] < 2
        or confusion.index[-1] != SPURIOUS
        or confusion.columns[-1] != MISSED
        or list(confusion.index[:-1]) != list(confusion.columns[:-1])
    ):
        raise PcnacycleError(
            "confusion must be a phase_confusion() table: class rows plus "
            f"'{SPURIOUS}', the same class columns plus '{MISSED}'"
        )


# --------------------------------------------------------------------------
# Class-agnostic matching score (StarDist / Cellpose)
# --------------------------------------------------------------------------


def matching_scores(
    ground_truth,
    predictions,
    thresholds: Sequence[float] = DEFAULT_MATCH_THRESHOLDS,
    score_threshold: float = 0.5,
) -> pd.DataFrame:
    """Class-agnostic instance matching quality at several IoU thresholds.

    At each threshold, predictions scoring at least ``score_threshold`` are
    matched one-to-one to ground truth (:func:`match_instances`); matched
    pairs are true positives, unmatched predictions false positives and
    unmatched nuclei false negatives, counted over all images.

    Returns
    -------
    pandas.DataFrame
        One row per threshold with columns ``threshold``, ``tp``, ``fp``,
        ``fn`` (int), ``precision``, ``recall``, ``f1``, ``accuracy`` =
        TP / (TP + FP + FN) (StarDist's "accuracy", Cellpose's "average
        precision") and ``mean_matched_iou`` (float, NaN when 0/0).
    """
    pairs = _check_dataset(ground_truth, predictions, None)
    thresholds = [_check_threshold(t, "each of thresholds") for t in thresholds]
    # The IoU matrices do not depend on the threshold: compute each once.
    ious = [
        iou_matrix(gt.masks, _confident(pred, score_threshold).masks)
        for gt, pred in pairs
    ]
    rows = []
    for threshold in thresholds:
        tp = fp = fn = 0
        matched_iou_sum = 0.0
        for iou in ious:
            _, _, pair_iou = _match_from_iou(iou, threshold)
            tp += len(pair_iou)
            fn += iou.shape[0] - len(pair_iou)
            fp += iou.shape[1] - len(pair_iou)
            matched_iou_sum += float(pair_iou.sum())
        rows.append(
            {
                "threshold": threshold,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": _ratio(tp, tp + fp),
                "recall": _ratio(tp, tp + fn),
                "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                "accuracy": _ratio(tp, tp + fp + fn),
                "mean_matched_iou": _ratio(matched_iou_sum, tp),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------


def write_confusion_csv(confusion: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a :func:`phase_confusion` table to ``path`` as CSV, atomically."""
    _check_confusion(confusion)
    with atomic_write(path, "w") as handle:
        confusion.to_csv(handle)


def plot_confusion(confusion: pd.DataFrame, path: str | os.PathLike) -> None:
    """Draw a :func:`phase_confusion` table as a PNG heat map with counts.

    The ``("spurious", "missed")`` cell, which cannot hold anything, is left
    blank. The file at ``path`` is replaced atomically.
    """
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_confusion(confusion)
    counts = confusion.to_numpy(dtype=np.int64)
    size = 1.2 + 0.9 * counts.shape[0]
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, label="nuclei")
    axes.set_xticks(range(counts.shape[1]), [str(c) for c in confusion.columns])
    axes.set_yticks(range(counts.shape[0]), [str(r) for r in confusion.index])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    # White text on dark cells, black on light ones.
    dark = counts > counts.max() / 2 if counts.max() else np.zeros_like(counts, bool)
    last = counts.shape[0] - 1
    for row in range(counts.shape[0]):
        for col in range(counts.shape[1]):
            if (row, col) == (last, last):
                continue
            axes.text(
                col,
                row,
                str(counts[row, col]),
                ha="center",
                va="center",
                color="white" if dark[row, col] else "black",
            )
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=150)


# --------------------------------------------------------------------------
# Running a model over a dataset
# --------------------------------------------------------------------------


def predict_dataset(model, cfg, records, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Ground truth and predictions for each record, predicted as ``pcnacycle run`` would.

    Frames go through :func:`pcnacycle.predict.predict_image` at full size
    (tiled when large, overlaps resolved), never shrunk for evaluation.

    Returns
    -------
    (ground_truth, predictions): lists aligned by record, in this module's format.
    """
    ground_truth, predictions = [], []
    was_training = model.training
    model.eval()
    for record in tqdm(records, desc="evaluate", unit="image", disable=not progress, leave=False):
        sample = load_sample(cfg, record)
        image = compose_channels(sample["channels"], cfg.INPUT.CHANNELS, cfg)
        result = predict_image(model, image, cfg)
        ground_truth.append({"masks": sample["masks"], "labels": sample["labels"]})
        predictions.append({"masks": label_image_to_masks(result["label_image"], len(result["scores"])),
                            "labels": result["labels"], "scores": result["scores"]})
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


def make_training_evaluator(cfg, records):
    """The ``evaluate(model, iteration)`` callback :func:`pcnacycle.train.train` calls."""
    def evaluate_during_training(model, iteration: int) -> dict[str, float]:
        ground_truth, predictions = predict_dataset(model, cfg, records)
        flat = flat_metrics(coco_metrics(ground_truth, predictions, cfg.MODEL.CLASS_NAMES))
        log.info("iteration %d, %d val images: segm AP50 %s, bbox AP50 %s", iteration, len(records),
                 _fmt(flat["segm/AP50"]), _fmt(flat["bbox/AP50"]))
        return flat

    return evaluate_during_training


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def evaluate(cfg, weights, split: str = "val", output=None, progress: bool = True, split_file=None,
             class_agnostic: bool = False) -> dict:
    """Score ``weights`` on a subset of ``cfg``'s dataset; write the reports to ``output``.

    Parameters
    ----------
    cfg : config of the dataset and model (``DATASETS.ROOT`` may point at
        another dataset than training's when ``split`` is ``"all"``).
    weights : checkpoint file, or a training folder (its ``model_final.pt``).
    split : ``"val"`` or ``"train"`` (ids from the ``split.json`` beside the
        weights, so the split is training's own), or ``"all"`` (every image).
    output : folder for ``eval.json``, ``confusion.csv``, ``confusion.png``
        and ``matching.csv``; None writes nothing.
    split_file : a ``split.json`` to take the ids from instead of the one
        beside the weights (e.g. another run's split of the same dataset).
    class_agnostic : score nuclei whatever their class: every prediction and
        annotation counts as one class "nucleus" (e.g. a phase model on a
        dataset annotated without phases).

    Returns
    -------
    dict: ``bbox`` and ``segm`` as :func:`coco_metrics` gives, ``matching``
    (rows of :func:`matching_scores`), ``phase`` (``confusion`` and
    ``report`` as nested dicts), ``images`` (count), ``weights``, ``split``.
    """
    weights = load_weights_path(weights)
    records = read_records(cfg)
    if split == "all":
        chosen = records
    elif split in ("train", "val"):
        split_path = Path(split_file) if split_file else weights.parent / "split.json"
        if not split_path.is_file():
            where = "no such split file" if split_file else "no split file beside the weights"
            raise PcnacycleError(f"{split_path}: {where}; use --split all to score every image of DATASETS.ROOT")
        chosen = select(records, read_split(split_path)[split], f"{split_path} ({split})")
    else:
        raise PcnacycleError(f"split {split!r}: expected val, train or all")
    model, cfg = load_model(weights, cfg)
    ground_truth, predictions = predict_dataset(model, cfg, chosen, progress=progress)
    if not any(len(gt["labels"]) for gt in ground_truth):
        raise PcnacycleError(f"{cfg.DATASETS.ROOT}: the {split} images hold no annotated nucleus to score against")

    names = list(cfg.MODEL.CLASS_NAMES)
    if class_agnostic:
        names = ["nucleus"]
        for instances in ground_truth + predictions:
            instances["labels"] = np.ones_like(instances["labels"])
    results = coco_metrics(ground_truth, predictions, names)
    confusion = phase_confusion(ground_truth, predictions, names)
    report = classification_report(confusion)
    matching = matching_scores(ground_truth, predictions)
    results.update({
        "matching": matching.to_dict(orient="records"),
        "phase": {"confusion": confusion.to_dict(orient="index"),
                  "report": report.replace({np.nan: None}).to_dict(orient="index")},
        "images": len(chosen), "weights": str(weights), "split": split, "class_agnostic": class_agnostic,
    })
    print(format_table(results))
    print(matching.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(report.to_string(float_format=lambda v: f"{v:.3f}"))
    if output is not None:
        output = Path(output)
        write_json(output / "eval.json", results)
        write_confusion_csv(confusion, output / "confusion.csv")
        plot_confusion(confusion, output / "confusion.png")
        with atomic_write(output / "matching.csv", "w") as handle:
            matching.to_csv(handle, index=False)
    return results
