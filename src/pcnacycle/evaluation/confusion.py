"""Phase calls of matched nuclei: the confusion table and per-class precision, recall, F1."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import PcnacycleError
from .checks import DETECTION, MISSED, PHASE_ACCURACY, SPURIOUS, _check_class_names, _check_dataset, _check_threshold
from .matching import _confident, _instance_iou, _match_from_iou, _ratio


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
            _instance_iou(gt, pred), iou_threshold
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
