"""Tests of the metric layer in pcnacycle.evaluation, on small synthetic masks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pcnacycle.errors import PcnacycleError
from pcnacycle.evaluation.coco import coco_metrics, format_table
from pcnacycle.evaluation.confusion import classification_report, phase_confusion
from pcnacycle.evaluation.matching import iou_matrix, match_instances, matching_scores
from pcnacycle.evaluation.writers import plot_confusion, write_confusion_csv

CLASSES = ("G1/G2", "S", "M")
SHAPE = (64, 64)
G1G2, S, M = 1, 2, 3


def disc(cy: int, cx: int, radius: float, shape=SHAPE) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def rectangle(y0: int, y1: int, x0: int, x1: int, shape=SHAPE) -> np.ndarray:
    """Rows y0..y1-1, columns x0..x1-1."""
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def stack(masks, shape=SHAPE) -> np.ndarray:
    return np.stack(masks) if len(masks) else np.zeros((0, *shape), dtype=bool)


def truth(masks, labels, shape=SHAPE) -> dict:
    return {"masks": stack(masks, shape), "labels": np.asarray(labels, dtype=np.int64)}


def prediction(masks, labels, scores, shape=SHAPE) -> dict:
    return {
        "masks": stack(masks, shape),
        "labels": np.asarray(labels, dtype=np.int64),
        "scores": np.asarray(scores, dtype=np.float32),
    }


def as_prediction(gt: dict) -> dict:
    return {**gt, "scores": np.ones(len(gt["labels"]), dtype=np.float32)}


@pytest.fixture
def perfect_dataset():
    """Two images, every phase in each; one nucleus is medium-sized."""
    image1 = truth([disc(12, 12, 5), disc(12, 45, 6), disc(45, 25, 5)], [G1G2, S, M])
    # radius 20: about 1257 pixels, COCO "medium" (32**2 < area < 96**2).
    image2 = truth([disc(32, 32, 20), disc(5, 58, 4), disc(58, 5, 4)], [G1G2, S, M])
    return [image1, image2]


# --------------------------------------------------------------------------
# Ground truth fed back as predictions
# --------------------------------------------------------------------------


def test_perfect_predictions_score_100(perfect_dataset):
    predictions = [as_prediction(gt) for gt in perfect_dataset]
    metrics = coco_metrics(perfect_dataset, predictions, CLASSES)
    for iou_type in ("bbox", "segm"):
        summary = metrics[iou_type]
        for key in ("AP", "AP50", "AP75", "APs", "APm"):
            assert summary[key] == pytest.approx(100.0), (iou_type, key)
        assert summary["APl"] is None  # no nucleus is "large"
        for name in CLASSES:
            assert summary["per_class"][name] == pytest.approx(
                {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}
            )


def test_perfect_predictions_confusion_is_diagonal(perfect_dataset):
    predictions = [as_prediction(gt) for gt in perfect_dataset]
    confusion = phase_confusion(perfect_dataset, predictions, CLASSES)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[[0, 1, 2], [0, 1, 2]] = 2
    np.testing.assert_array_equal(confusion.to_numpy(), expected)
    assert list(confusion.index) == [*CLASSES, "spurious"]
    assert list(confusion.columns) == [*CLASSES, "missed"]


def test_perfect_predictions_match_at_every_threshold(perfect_dataset):
    predictions = [as_prediction(gt) for gt in perfect_dataset]
    scores = matching_scores(perfect_dataset, predictions)
    np.testing.assert_allclose(
        scores["threshold"], [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    )
    np.testing.assert_array_equal(scores["accuracy"], 1.0)
    np.testing.assert_array_equal(scores["tp"], 6)
    np.testing.assert_array_equal(scores[["fp", "fn"]], 0)
    np.testing.assert_allclose(scores["mean_matched_iou"], 1.0)


def test_more_than_100_nuclei_in_an_image_all_count():
    # 120 separate 2x2 squares: with COCO's default maxDets=100 recall would
    # stop at 100/120 and AP would fall below 100.
    squares = [
        rectangle(4 * row, 4 * row + 2, 4 * col, 4 * col + 2)
        for row in range(12)
        for col in range(10)
    ]
    ground_truth = [truth(squares, [G1G2] * 120)]
    scores = np.linspace(1.0, 0.5, 120)
    predictions = [prediction(squares, [G1G2] * 120, scores)]
    metrics = coco_metrics(ground_truth, predictions, CLASSES)
    assert metrics["segm"]["AP"] == pytest.approx(100.0)
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)


# --------------------------------------------------------------------------
# A hand-built image with known answers
# --------------------------------------------------------------------------


@pytest.fixture
def hand_built():
    """Four nuclei: one called right in each of G1/G2 and S, one M nucleus
    called S (misclassified), one M nucleus missed; plus a spurious G1/G2
    prediction over background. Predicted masks equal the true ones, so the
    IoU of a match is 1 and AP is the same at every IoU threshold."""
    a, b, c, d = disc(12, 12, 5), disc(12, 50, 5), disc(50, 12, 5), disc(50, 50, 5)
    background = disc(32, 32, 5)
    ground_truth = [truth([a, b, c, d], [G1G2, S, M, M])]
    predictions = [
        prediction(
            [background, a, b, c],
            [G1G2, G1G2, S, S],
            [0.95, 0.9, 0.8, 0.7],
        )
    ]
    return ground_truth, predictions


def test_hand_built_coco_ap(hand_built):
    # COCO AP per class, 101-point interpolation (precision made monotone
    # from the right, read at recall 0, 0.01, ..., 1):
    # * G1/G2: 1 nucleus; detections by score: spurious (FP), a (TP). Recall
    #   [0, 1], precision [0, 1/2] -> monotone [1/2, 1/2] -> AP = 1/2 at all
    #   101 points = 50.
    # * S: 1 nucleus; detections: b (TP), c (FP: c is an M nucleus). Recall
    #   [1, 1], precision [1, 1/2] -> precision at every recall point is 1
    #   -> AP = 100 (a false positive ranked after the last TP costs nothing).
    # * M: 2 nuclei, no M detection -> AP = 0.
    # Mean over the three classes: (50 + 100 + 0) / 3 = 50.
    ground_truth, predictions = hand_built
    metrics = coco_metrics(ground_truth, predictions, CLASSES)
    for iou_type in ("bbox", "segm"):
        summary = metrics[iou_type]
        assert summary["AP50"] == pytest.approx(50.0)
        assert summary["AP75"] == pytest.approx(50.0)
        assert summary["AP"] == pytest.approx(50.0)
        assert summary["APs"] == pytest.approx(50.0)  # all nuclei are small
        assert summary["APm"] is None and summary["APl"] is None
        per_class_ap50 = {name: ap["AP50"] for name, ap in summary["per_class"].items()}
        assert per_class_ap50 == pytest.approx({"G1/G2": 50.0, "S": 100.0, "M": 0.0})


def test_hand_built_confusion(hand_built):
    confusion = phase_confusion(*hand_built, CLASSES)
    expected = pd.DataFrame(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]],
        index=[*CLASSES, "spurious"],
        columns=[*CLASSES, "missed"],
    )
    np.testing.assert_array_equal(confusion.to_numpy(), expected.to_numpy())
    assert confusion.to_numpy().dtype == np.int64


def test_hand_built_classification_report(hand_built):
    report = classification_report(phase_confusion(*hand_built, CLASSES))
    # G1/G2: TP 1 (a), FP 1 (spurious), FN 0 -> P 1/2, R 1, F1 2/3.
    # S:     TP 1 (b), FP 1 (c, an M called S), FN 0 -> P 1/2, R 1, F1 2/3.
    # M:     TP 0, FP 0, FN 2 (c misclassified, d missed) -> P undefined,
    #        R 0, F1 0.
    assert report.loc["G1/G2", ["precision", "recall", "f1"]].tolist() == pytest.approx(
        [1 / 2, 1, 2 / 3]
    )
    assert report.loc["S", ["precision", "recall", "f1"]].tolist() == pytest.approx(
        [1 / 2, 1, 2 / 3]
    )
    assert math.isnan(report.loc["M", "precision"])
    assert report.loc["M", ["recall", "f1"]].tolist() == [0.0, 0.0]
    assert report["support"].tolist() == [1, 1, 2, 4, 3]
    # Detection: 3 matched, 1 missed, 1 spurious.
    assert report.loc["detection", ["precision", "recall", "f1"]].tolist() == pytest.approx(
        [3 / 4, 3 / 4, 3 / 4]
    )
    # Phase accuracy over the 3 matched nuclei: a and b right, c wrong.
    assert report.loc["phase accuracy", "f1"] == pytest.approx(2 / 3)


def test_hand_built_matching_scores(hand_built):
    scores = matching_scores(*hand_built, thresholds=(0.5, 0.9))
    assert scores[["tp", "fp", "fn"]].to_numpy().tolist() == [[3, 1, 1], [3, 1, 1]]
    np.testing.assert_allclose(scores["accuracy"], 3 / 5)
    np.testing.assert_allclose(scores["f1"], 3 / 4)


def test_ap_depends_on_the_iou_threshold():
    # The prediction is the 10x10 square shifted by 2 columns: IoU 80/120 = 2/3
    # for masks and boxes alike. It is a match at IoU 0.5, 0.55, 0.6, 0.65 and a
    # miss at 0.7, ..., 0.95: AP50 = 100, AP75 = 0, AP = 4/10 of 100.
    ground_truth = [truth([rectangle(10, 20, 10, 20)], [M])]
    predictions = [prediction([rectangle(10, 20, 12, 22)], [M], [0.9])]
    metrics = coco_metrics(ground_truth, predictions, CLASSES)
    for iou_type in ("bbox", "segm"):
        expected = {"AP": 40.0, "AP50": 100.0, "AP75": 0.0}
        summary = metrics[iou_type]
        assert {key: summary[key] for key in expected} == pytest.approx(expected)
        assert summary["per_class"]["M"] == pytest.approx(expected)


def test_score_threshold_drops_low_scoring_predictions():
    ground_truth = [truth([disc(20, 20, 6)], [S])]
    predictions = [prediction([disc(20, 20, 6)], [S], [0.3])]
    dropped = phase_confusion(ground_truth, predictions, CLASSES, score_threshold=0.5)
    assert dropped.loc["S", "missed"] == 1 and dropped.loc["S", "S"] == 0
    kept = phase_confusion(ground_truth, predictions, CLASSES, score_threshold=0.2)
    assert kept.loc["S", "S"] == 1 and kept.loc["S", "missed"] == 0
    assert matching_scores(ground_truth, predictions, (0.5,))["tp"].item() == 0


def test_iou_threshold_decides_a_match():
    # A prediction shifted by 4 columns on a 10x10 square: IoU 60/140 = 0.43.
    ground_truth = [truth([rectangle(10, 20, 10, 20)], [S])]
    predictions = [prediction([rectangle(10, 20, 14, 24)], [S], [0.9])]
    strict = phase_confusion(ground_truth, predictions, CLASSES, iou_threshold=0.5)
    assert strict.loc["S", "missed"] == 1 and strict.loc["spurious", "S"] == 1
    loose = phase_confusion(ground_truth, predictions, CLASSES, iou_threshold=0.4)
    assert loose.loc["S", "S"] == 1 and loose.to_numpy().sum() == 1


# --------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------


def test_iou_matrix_equals_brute_force_with_overlapping_and_empty_masks():
    rng = np.random.default_rng(0)
    gt = rng.random((5, 16, 16)) < 0.3
    pred = rng.random((4, 16, 16)) < 0.3
    gt[2] = False  # an empty mask
    expected = np.zeros((5, 4))
    for i in range(5):
        for j in range(4):
            union = (gt[i] | pred[j]).sum()
            expected[i, j] = (gt[i] & pred[j]).sum() / union if union else 0.0
    result = iou_matrix(gt, pred)
    assert result.dtype == np.float64 and result.shape == (5, 4)
    np.testing.assert_allclose(result, expected)


def test_match_instances_is_optimal_where_greedy_fails():
    # 1-D intervals (10 rows tall): A = [5, 15), B = [7, 17) overlap;
    # p1 = [5, 16), p2 = [4, 13).
    # IoU(A,p1) = 10/11, IoU(B,p1) = 9/12, IoU(A,p2) = 8/11,
    # IoU(B,p2) = 6/13 < 0.5.
    # Greedy best-first takes (A, p1) and leaves B and p2 unmatched;
    # the optimum is (A, p2) + (B, p1), total 8/11 + 9/12 > 10/11.
    a, b = rectangle(0, 10, 5, 15), rectangle(0, 10, 7, 17)
    p1, p2 = rectangle(0, 10, 5, 16), rectangle(0, 10, 4, 13)
    gt_masks, pred_masks = np.stack([a, b]), np.stack([p1, p2])
    iou = iou_matrix(gt_masks, pred_masks)
    np.testing.assert_allclose(iou, [[10 / 11, 8 / 11], [9 / 12, 6 / 13]])
    # The greedy choice really is the single best pair.
    assert np.unravel_index(iou.argmax(), iou.shape) == (0, 0)

    gt_index, pred_index, pair_iou = match_instances(gt_masks, pred_masks)
    assert gt_index.tolist() == [0, 1]
    assert pred_index.tolist() == [1, 0]
    np.testing.assert_allclose(pair_iou, [8 / 11, 9 / 12])


def test_match_instances_maximises_total_iou_not_just_the_count():
    # At threshold 0.3 all four pairs are eligible, so both pairings match two;
    # (A, p2) + (B, p1) has IoU 9/10 + 9/10, (A, p1) + (B, p2) only
    # 6/13 + 5/14.
    a, b = rectangle(0, 10, 0, 10), rectangle(0, 10, 4, 14)
    p1, p2 = rectangle(0, 10, 4, 13), rectangle(0, 10, 0, 9)
    gt_index, pred_index, iou = match_instances(
        np.stack([a, b]), np.stack([p1, p2]), iou_threshold=0.3
    )
    assert list(zip(gt_index.tolist(), pred_index.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(iou, [0.9, 0.9])


def test_match_instances_respects_threshold_and_empty_inputs():
    a = rectangle(0, 10, 0, 10)
    half = rectangle(0, 10, 0, 5)  # IoU 0.5 with a
    gt_index, pred_index, iou = match_instances(a[None], half[None], iou_threshold=0.5)
    assert gt_index.tolist() == [0] and iou.tolist() == [0.5]
    gt_index, _, _ = match_instances(a[None], half[None], iou_threshold=0.51)
    assert len(gt_index) == 0
    gt_index, pred_index, iou = match_instances(a[None], np.zeros((0, *SHAPE), bool))
    assert len(gt_index) == len(pred_index) == len(iou) == 0


def test_coco_boxes_use_the_pixel_edge_convention():
    from pcnacycle.evaluation.checks import _check_instances
    from pcnacycle.evaluation.coco import _coco_annotations

    masks = np.stack([rectangle(2, 5, 3, 8), disc(30, 40, 3), np.zeros(SHAPE, bool)])
    instances = _check_instances({"masks": masks, "labels": [1, 1, 1]}, "gt", 3, with_scores=False)
    annotations = _coco_annotations(instances, image_id=1, first_id=1)
    assert annotations[0]["bbox"] == [3, 2, 5, 3]  # columns 3..7, rows 2..4: width 5, height 3
    assert annotations[1]["bbox"] == [37, 27, 7, 7]  # a disc of radius 3 spans 7 pixels each way
    assert annotations[2]["bbox"] == [0, 0, 0, 0]
    assert [a["mask_area"] for a in annotations] == [15, disc(30, 40, 3).sum(), 0]


def _overlapping_dataset(seed=0):
    """Three images of nuclei and shifted, partly missed, partly spurious predictions of mixed phases."""
    rng = np.random.default_rng(seed)
    ground_truth, predictions = [], []
    for _ in range(3):
        masks = [disc(*rng.integers(8, 56, 2), rng.integers(3, 9)) for _ in range(8)]
        labels = rng.integers(1, 4, len(masks))
        shifted = [np.roll(m, tuple(rng.integers(-3, 4, 2)), axis=(0, 1)) for m in masks[:6]]
        spurious = [disc(*rng.integers(8, 56, 2), rng.integers(2, 6)) for _ in range(4)]
        ground_truth.append(truth(masks, labels))
        predictions.append(prediction(shifted + spurious, rng.integers(1, 4, 10), rng.random(10)))
    return ground_truth, predictions


def test_rle_input_gives_the_figures_of_mask_input():
    from pcnacycle.evaluation.rle import encode_masks

    ground_truth, predictions = _overlapping_dataset()
    as_rles = [{"rles": encode_masks(entry["masks"]), "shape": SHAPE,
                **{k: v for k, v in entry.items() if k != "masks"}} for entry in ground_truth + predictions]
    rle_truth, rle_predictions = as_rles[:3], as_rles[3:]
    assert coco_metrics(rle_truth, rle_predictions, CLASSES) == coco_metrics(ground_truth, predictions, CLASSES)
    assert phase_confusion(rle_truth, rle_predictions, CLASSES).equals(
        phase_confusion(ground_truth, predictions, CLASSES))
    pd.testing.assert_frame_equal(matching_scores(rle_truth, rle_predictions),
                                  matching_scores(ground_truth, predictions))
    # the RLE route's IoUs are the pixel-counting ones
    from pcnacycle.evaluation.checks import _check_instances
    from pcnacycle.evaluation.matching import _instance_iou

    gt = _check_instances(rle_truth[0], "gt", 3, with_scores=False)
    pred = _check_instances(rle_predictions[0], "pred", 3, with_scores=True)
    np.testing.assert_allclose(_instance_iou(gt, pred), iou_matrix(ground_truth[0]["masks"], predictions[0]["masks"]))


def test_masks_and_labelled_frames_encode_as_pycocotools_does():
    from pycocotools import mask as mask_utils

    from pcnacycle.evaluation.rle import encode_label_image, encode_masks

    label_image = np.zeros(SHAPE, np.int32)
    for k in range(1, 41):
        label_image[(k - 1) // 8 * 12: (k - 1) // 8 * 12 + 5, (k - 1) % 8 * 8: (k - 1) % 8 * 8 + 3 + k % 3] = k
    label_image[-1, -3:] = 41  # ends in the last pixel
    label_image[0, 0] = 42  # starts in the first
    label_image[label_image == 7] = 0  # object 7 is absent: an empty mask
    masks = label_image[None] == np.arange(1, 43)[:, None, None]
    expected = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    assert encode_masks(masks) == expected
    assert encode_label_image(label_image, 42) == expected
    np.testing.assert_array_equal(mask_utils.decode(encode_masks(masks)), masks.transpose(1, 2, 0))


def test_an_image_of_hundreds_of_instances_is_scored():
    # a barely trained model fills frames with TEST.DETECTIONS_PER_IMAGE (400) detections
    shape = (40, 40)
    masks = np.zeros((300, *shape), bool)
    for k in range(300):
        masks[k, k // 40, k % 40] = True  # 300 one-pixel nuclei
    gt = {"masks": masks, "labels": np.ones(300, np.int64)}
    metrics = coco_metrics([gt], [{**gt, "scores": np.linspace(1, 0.5, 300)}], ["nucleus"])
    assert metrics["segm"]["AP"] == pytest.approx(100.0)


def test_rles_of_another_size_are_named():
    from pcnacycle.evaluation.rle import encode_masks

    gt = truth([disc(12, 12, 5)], [G1G2])
    other_size = stack([disc(12, 12, 5, shape=(32, 32))], (32, 32))
    wrong = {"rles": encode_masks(other_size), "shape": SHAPE, "labels": [1], "scores": [1.0]}
    with pytest.raises(PcnacycleError, match=r"predictions\[0\]\['rles'\]\[0\] is not an RLE of an image of shape"):
        coco_metrics([gt], [wrong], CLASSES)


# --------------------------------------------------------------------------
# Missing predictions
# --------------------------------------------------------------------------


def test_an_image_without_predictions_counts_its_nuclei_as_missed():
    image1 = truth([disc(15, 15, 5), disc(45, 45, 5)], [G1G2, G1G2])
    image2 = truth([disc(30, 30, 5)], [G1G2])
    predictions = [as_prediction(image1), prediction([], [], [])]
    metrics = coco_metrics([image1, image2], predictions, CLASSES)
    # Recall reaches 2/3 at precision 1: recall points 0, 0.01, ..., 0.66
    # (67 of 101) have precision 1, the rest 0.
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP50"] == pytest.approx(100 * 67 / 101)
        assert metrics[iou_type]["per_class"]["S"]["AP"] is None
    confusion = phase_confusion([image1, image2], predictions, CLASSES)
    assert confusion.loc["G1/G2", "G1/G2"] == 2 and confusion.loc["G1/G2", "missed"] == 1


def test_no_predictions_at_all_give_ap_zero():
    ground_truth = [truth([disc(15, 15, 5)], [S]), truth([disc(40, 40, 6)], [M])]
    predictions = [prediction([], [], []), prediction([], [], [])]
    metrics = coco_metrics(ground_truth, predictions, CLASSES)
    for iou_type in ("bbox", "segm"):
        summary = metrics[iou_type]
        assert summary["AP"] == 0.0 and summary["AP50"] == 0.0
        assert summary["per_class"]["S"]["AP50"] == 0.0
        assert summary["per_class"]["M"]["AP"] == 0.0
        assert summary["per_class"]["G1/G2"]["AP"] is None  # no G1/G2 nucleus
    scores = matching_scores(ground_truth, predictions, (0.5,))
    assert scores[["tp", "fp", "fn"]].to_numpy().tolist() == [[0, 0, 2]]
    assert scores["accuracy"].item() == 0.0 and math.isnan(scores["precision"].item())
    report = classification_report(phase_confusion(ground_truth, predictions, CLASSES))
    assert report.loc["detection", "recall"] == 0.0 and report.loc["detection", "support"] == 2


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def _good():
    ground_truth = [truth([disc(20, 20, 5)], [S])]
    predictions = [prediction([disc(20, 20, 5)], [S], [0.9])]
    return ground_truth, predictions


def _break_lengths(gt, pred):
    return gt + gt, pred


def _break_size(gt, pred):
    pred[0]["masks"] = np.zeros((1, 32, 32), bool)
    return gt, pred


def _break_label_high(gt, pred):
    pred[0]["labels"] = np.array([4])
    return gt, pred


def _break_label_zero(gt, pred):
    gt[0]["labels"] = np.array([0])
    return gt, pred


def _break_label_count(gt, pred):
    gt[0]["labels"] = np.array([1, 2])
    return gt, pred


def _break_score_count(gt, pred):
    pred[0]["scores"] = np.array([0.9, 0.8], np.float32)
    return gt, pred


def _break_mask_rank(gt, pred):
    gt[0]["masks"] = gt[0]["masks"][0]
    return gt, pred


def _break_float_masks(gt, pred):
    pred[0]["masks"] = pred[0]["masks"].astype(np.float32) * 0.7
    return gt, pred


def _break_missing_scores(gt, pred):
    del pred[0]["scores"]
    return gt, pred


def _break_empty(gt, pred):
    return [], []


BAD_INPUTS = {
    "list lengths": (_break_lengths, "1 images|2 images"),
    "mask size": (_break_size, r"predictions\[0\]\['masks'\] are \(32, 32\)"),
    "label above K": (_break_label_high, r"predictions\[0\]\['labels'\] holds \[4\]"),
    "label zero": (_break_label_zero, r"ground_truth\[0\]\['labels'\] holds \[0\]"),
    "labels vs masks": (_break_label_count, r"ground_truth\[0\]\['labels'\] must have shape \(1,\)"),
    "scores vs masks": (_break_score_count, r"predictions\[0\]\['scores'\] must have shape \(1,\)"),
    "2-D masks": (_break_mask_rank, r"ground_truth\[0\]\['masks'\] must be an \(N, H, W\)"),
    "float masks": (_break_float_masks, "threshold mask probabilities"),
    "missing key": (_break_missing_scores, r"lacks key\(s\) \['scores'\]"),
    "empty": (_break_empty, "nothing to evaluate"),
}


@pytest.mark.parametrize("function", [coco_metrics, phase_confusion])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named(function, case):
    breaker, message = BAD_INPUTS[case]
    ground_truth, predictions = breaker(*_good())
    with pytest.raises(PcnacycleError, match=message):
        function(ground_truth, predictions, CLASSES)


@pytest.mark.parametrize(
    "case", [c for c in BAD_INPUTS if not c.startswith("label ")]
)
def test_bad_input_is_named_by_matching_scores(case):
    breaker, message = BAD_INPUTS[case]
    ground_truth, predictions = breaker(*_good())
    with pytest.raises(PcnacycleError, match=message):
        matching_scores(ground_truth, predictions)


@pytest.mark.parametrize(
    "class_names, message",
    [((), "empty"), (("S", "S"), "duplicates"), (("S", "missed"), "reserved")],
)
def test_bad_class_names(class_names, message):
    with pytest.raises(PcnacycleError, match=message):
        phase_confusion(*_good(), class_names)


def test_bad_matching_arguments():
    a = disc(20, 20, 5)[None]
    with pytest.raises(PcnacycleError, match=r"\(64, 64\) pixels but pred_masks are \(32, 32\)"):
        iou_matrix(a, np.zeros((1, 32, 32), bool))
    with pytest.raises(PcnacycleError, match="iou_threshold"):
        match_instances(a, a, iou_threshold=0.0)
    with pytest.raises(PcnacycleError, match="thresholds"):
        matching_scores(*_good(), thresholds=(0.5, 1.5))


def test_classification_report_rejects_other_tables():
    with pytest.raises(PcnacycleError, match="phase_confusion"):
        classification_report(pd.DataFrame([[1, 0], [0, 1]], index=["a", "b"], columns=["a", "b"]))


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def test_confusion_files(hand_built, tmp_path):
    confusion = phase_confusion(*hand_built, CLASSES)
    plot_confusion(confusion, tmp_path / "plots" / "confusion.png")
    write_confusion_csv(confusion, tmp_path / "confusion.csv")
    assert (tmp_path / "plots" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    read_back = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    np.testing.assert_array_equal(read_back.to_numpy(), confusion.to_numpy())
    assert list(read_back.index) == list(confusion.index)
    assert list(read_back.columns) == list(confusion.columns)
    # Only the finished files remain: no temporary left behind.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "confusion.csv",
        "confusion.png",
    ]


def test_format_table(hand_built):
    table = format_table(coco_metrics(*hand_built, CLASSES))
    lines = table.splitlines()
    assert lines[0].split() == ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    assert lines[1].split() == ["bbox", "50.0", "50.0", "50.0", "50.0", "-", "-"]
    assert lines[2].split() == ["segm", "50.0", "50.0", "50.0", "50.0", "-", "-"]
    per_class = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert per_class["G1/G2"] == ["50.0", "50.0"]
    assert per_class["S"] == ["100.0", "100.0"]
    assert per_class["M"] == ["0.0", "0.0"]


def _brute_force_matching(iou, threshold):
    """(pairs, total IoU) of the best one-to-one matching by enumeration: most pairs, then most IoU."""
    import itertools

    n_gt, n_pred = iou.shape
    best = (0, 0.0)
    for size in range(1, min(n_gt, n_pred) + 1):
        for gts in itertools.combinations(range(n_gt), size):
            for preds in itertools.permutations(range(n_pred), size):
                values = iou[list(gts), list(preds)]
                if (values >= threshold).all():
                    best = max(best, (size, float(values.sum())))
    return best


def test_matching_maximises_the_number_of_pairs_first_as_stardist_does():
    from pcnacycle.evaluation.matching import _match_from_iou

    # Total IoU alone would keep the one 0.9 pair; StarDist's rule keeps the two 0.35 pairs.
    iou = np.array([[0.9, 0.35], [0.35, 0.0]])
    gt_index, pred_index, pair_iou = _match_from_iou(iou, 0.3)
    assert gt_index.tolist() == [0, 1] and pred_index.tolist() == [1, 0] and pair_iou.tolist() == [0.35, 0.35]

    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(rng.integers(0, 5, 2))
        iou = np.round(rng.random(shape) * (rng.random(shape) < 0.6), 2)  # sparse overlaps, some ties
        threshold = float(rng.choice([0.1, 0.25, 0.3, 0.5, 0.7]))
        gt_index, pred_index, pair_iou = _match_from_iou(iou, threshold)
        assert len(set(gt_index)) == len(gt_index) and len(set(pred_index)) == len(pred_index)
        assert (pair_iou >= threshold).all()
        count, total = _brute_force_matching(iou, threshold)
        assert len(pair_iou) == count
        assert pair_iou.sum() == pytest.approx(total)


def test_matching_scores_agree_with_stardist_where_it_is_installed():
    stardist_matching = pytest.importorskip("stardist.matching").matching
    rng = np.random.default_rng(1)
    truth = np.zeros((64, 64), np.int32)
    pred = np.zeros((64, 64), np.int32)
    for k, (y, x) in enumerate(rng.integers(6, 58, (8, 2)), start=1):
        truth[y - 5:y + 5, x - 5:x + 5] = k
        dy, dx = rng.integers(-4, 5, 2)
        pred[y - 5 + dy:y + 5 + dy, x - 5 + dx:x + 5 + dx] = k
    truth_ids, pred_ids = np.unique(truth)[1:], np.unique(pred)[1:]
    gt = [{"masks": truth[None] == truth_ids[:, None, None], "labels": np.ones(len(truth_ids), np.int64)}]
    predictions = [{"masks": pred[None] == pred_ids[:, None, None], "labels": np.ones(len(pred_ids), np.int64),
                    "scores": np.ones(len(pred_ids))}]
    ours = matching_scores(gt, predictions, thresholds=(0.1, 0.3, 0.5, 0.7))
    for row in ours.itertuples():
        theirs = stardist_matching(truth, pred, thresh=row.threshold)
        assert (row.tp, row.fp, row.fn) == (theirs.tp, theirs.fp, theirs.fn)
