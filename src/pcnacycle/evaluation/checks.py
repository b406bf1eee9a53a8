"""Input checks shared by the metrics: instances of one image, aligned lists, thresholds.

The metrics take plain numpy data, one entry per image, aligned by image:
ground truth ``{"masks": (N, H, W) bool, "labels": (N,) int64}``, predictions
the same plus ``"scores": (M,) float32``. Labels are class ids ``1..K``.

Instead of ``masks`` an entry may hold ``rles`` (a list of pycocotools
compressed RLEs, one per instance) and ``shape`` ``(H, W)``: what
:func:`pcnacycle.evaluation.loop.predict_dataset` gives, a few kilobytes per
image where full-frame masks take megabytes per instance. Masks are encoded
on entry, so every metric works on RLEs and gives the same figures either way.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import PcnacycleError
from .rle import encode_masks

#: Row of :func:`phase_confusion` for predictions that match no nucleus.
SPURIOUS = "spurious"
#: Column of :func:`phase_confusion` for nuclei that no prediction matched.
MISSED = "missed"
#: Row of :func:`classification_report` for class-agnostic detection.
DETECTION = "detection"
#: Row of :func:`classification_report` for the phase accuracy of matched pairs.
PHASE_ACCURACY = "phase accuracy"


class _Instances(NamedTuple):
    """The instances of one image, validated.

    rles: N pycocotools RLEs; labels: (N,) int64; scores: (N,) float64
    (all ones for ground truth); shape: the image's (H, W).
    """

    rles: list
    labels: np.ndarray
    scores: np.ndarray
    shape: tuple[int, int]


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


def _as_rles(entry: Mapping, what: str) -> tuple[list[dict], tuple[int, int]]:
    """``entry["rles"]`` checked against ``entry["shape"]``, or ``entry["masks"]`` encoded."""
    if "rles" not in entry:
        masks = _as_mask_stack(entry["masks"], f"{what}['masks']")
        return encode_masks(masks), tuple(masks.shape[1:])
    shape = entry.get("shape")
    if shape is None or len(shape) != 2:
        raise PcnacycleError(f"{what} holds 'rles' but no 'shape' (H, W)")
    shape = (int(shape[0]), int(shape[1]))
    rles = list(entry["rles"])
    for index, rle in enumerate(rles):
        if not isinstance(rle, Mapping) or "counts" not in rle or tuple(rle.get("size", ())) != shape:
            raise PcnacycleError(f"{what}['rles'][{index}] is not an RLE of an image of shape {shape}")
    return rles, shape


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
    keys = ("labels", "scores") if with_scores else ("labels",)
    missing = [key for key in keys if key not in entry] + ([] if "masks" in entry or "rles" in entry else ["masks"])
    if missing:
        raise PcnacycleError(f"{what} lacks key(s) {missing}")
    rles, shape = _as_rles(entry, what)
    labels = _as_vector(entry["labels"], len(rles), f"{what}['labels']", "label")
    if num_classes is not None and len(labels):
        bad = labels[(labels < 1) | (labels > num_classes)]
        if len(bad):
            raise PcnacycleError(
                f"{what}['labels'] holds {sorted(set(bad.tolist()))}, "
                f"outside the class ids 1..{num_classes}"
            )
    if with_scores:
        scores = _as_vector(entry["scores"], len(rles), f"{what}['scores']", "score")
    else:
        scores = np.ones(len(rles))
    return _Instances(rles, labels, scores, shape)


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
        if pred.shape != gt.shape:
            raise PcnacycleError(
                f"predictions[{index}]['masks'] are {pred.shape} pixels "
                f"but the ground truth of that image is {gt.shape}"
            )
        pairs.append((gt, pred))
    return pairs


def _check_threshold(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise PcnacycleError(f"{what} must be in (0, 1], got {value}")
    return value
