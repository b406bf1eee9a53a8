"""One-to-one matching of instances by mask IoU, and the class-agnostic matching score."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from ..errors import PcnacycleError
from .checks import _as_mask_stack, _check_dataset, _check_threshold, _Instances

#: IoU thresholds of :func:`matching_scores`: 0.5, 0.55, ..., 0.9.
DEFAULT_MATCH_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))


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


def _instance_iou(gt: _Instances, pred: _Instances) -> np.ndarray:
    """(N, M) float64 IoU of every ground truth with every prediction, from their RLEs; 0 where both are empty."""
    from pycocotools import mask as mask_utils

    if not gt.rles or not pred.rles:
        return np.zeros((len(gt.rles), len(pred.rles)))
    # pycocotools.mask.iou(d, g, iscrowd) is (len(d), len(g)); with iscrowd 0 it is the plain, symmetric IoU
    iou = np.asarray(mask_utils.iou(gt.rles, pred.rles, [0] * len(pred.rles)), dtype=np.float64)
    return np.nan_to_num(iou.reshape(len(gt.rles), len(pred.rles)), nan=0.0)


def _match_from_iou(iou: np.ndarray, iou_threshold: float):
    """StarDist's matching on a precomputed (N, M) IoU matrix: the most pairs first, then the most IoU.

    Each eligible pair (``IoU >= iou_threshold``) is worth 1 plus its IoU
    over ``2 min(N, M)``, so no IoU bonus, which sums to under 1/2, can
    outweigh one more pair: the assignment (Hungarian algorithm) has the
    largest number of eligible pairs and, among such, the largest total IoU.
    The ineligible pairs it is forced to make are then dropped.
    """
    eligible = iou >= iou_threshold
    if not eligible.any():
        empty = np.zeros(0, np.intp)
        return empty, empty, np.zeros(0)
    weight = eligible * (1.0 + iou / (2 * min(iou.shape)))
    gt_index, pred_index = linear_sum_assignment(weight, maximize=True)
    keep = eligible[gt_index, pred_index]
    gt_index, pred_index = gt_index[keep], pred_index[keep]
    return gt_index, pred_index, iou[gt_index, pred_index]


def match_instances(gt_masks, pred_masks, iou_threshold: float = 0.5):
    """Pair ground truth and predicted masks one-to-one by IoU.

    Among all one-to-one pairings that use only pairs with
    ``IoU >= iou_threshold``, the one with the most pairs and, among those,
    the largest total IoU is returned (Hungarian algorithm), as StarDist's
    ``matching`` does. Unlike greedy best-first matching, this never gives a
    prediction to one nucleus when it is needed for another. (From a
    threshold of 0.5 up, a mask has at most one partner above it, so the
    matching is unique.)

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
        _instance_iou(gt, _confident(pred, score_threshold))
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


def _confident(pred: _Instances, score_threshold: float) -> _Instances:
    keep = pred.scores >= score_threshold
    rles = [rle for rle, kept in zip(pred.rles, keep) if kept]
    return _Instances(rles, pred.labels[keep], pred.scores[keep], pred.shape)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is 0 (undefined)."""
    return numerator / denominator if denominator else float("nan")
