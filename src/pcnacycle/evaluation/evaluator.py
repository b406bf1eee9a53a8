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

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.catalog import load_sample, read_records
from ..data.dataset import median_nucleus_diameter, read_split, select
from ..engine.predictor import Predictor, load_weights_path
from ..engine.scale import input_scale
from ..errors import PcnacycleError
from ..io import atomic_write, quieter, write_json
from ..report import score_table
from ..safeguards import check_output_folder
from ..settings import median_diameter
from .coco import coco_metrics, format_table
from .confusion import classification_report, phase_confusion
from .loop import predict_dataset
from .matching import matching_scores
from .writers import plot_confusion, write_confusion_csv

log = logging.getLogger(__name__)


def evaluate(cfg, weights, split: str = "val", output=None, progress: bool = True, split_file=None,
             class_agnostic: bool = False, nucleus_diameter: float | None = None, rescale: bool = True,
             scale_per_image: bool = False) -> dict:
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
    nucleus_diameter, rescale : as ``pcnacycle run``: images are resized so their nuclei look the
        size the model was trained on (:func:`pcnacycle.engine.scale.input_scale`), one factor
        for the whole split; the split's nucleus diameter is ``nucleus_diameter`` (px) or the
        median of its annotated masks (exact, and free of an undertrained model's fragments);
        ``rescale`` False keeps the images as they are. Scores are at the images' own pixels.
    scale_per_image : each image resized by its own factor, from the median of its own annotated
        masks, instead of one factor for the split: for a dataset that gathers images taken at
        many magnifications (DSB2018), each scored as if it were a movie of its own. Not with
        ``nucleus_diameter`` nor with ``rescale`` False.

    Returns
    -------
    dict: ``bbox`` and ``segm`` as :func:`coco_metrics` gives, ``matching``
    (rows of :func:`matching_scores`), ``phase`` (``confusion`` and
    ``report`` as nested dicts), ``images`` (count), ``weights``, ``split``, and
    the scale (``trained_nucleus_diameter_px``, ``movie_nucleus_diameter_px``, ``scale``,
    ``scale_note``; per image: ``scale`` and ``movie_nucleus_diameter_px`` are the quartiles over the
    images).
    """
    if scale_per_image and (nucleus_diameter is not None or not rescale):
        raise PcnacycleError("scale per image: each image's nucleus size is measured on its annotations, so "
                             "neither a nucleus diameter nor rescaling off can be given with it")
    weights = load_weights_path(weights)
    if output is not None:
        check_output_folder(output)  # before the scoring, not after it
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
    predictor = Predictor(weights, cfg)
    cfg = predictor.cfg
    if not chosen:
        raise PcnacycleError(f"{cfg.DATASETS.ROOT}: the {split} images hold no annotated nucleus to score against")
    if scale_per_image:
        scale_of, scales_used = own_nucleus_scale(predictor)
        ground_truth, predictions = predict_dataset(predictor, chosen, progress=progress, scale_of=scale_of)
        scale_info = scales_used()
    else:
        spread = sorted({0, len(chosen) // 2, len(chosen) - 1})
        samples = [load_sample(cfg, chosen[i])["channels"] for i in spread]
        source = "given"
        if nucleus_diameter is None and rescale and cfg.INPUT.get("NUCLEUS_DIAMETER", 0):
            nucleus_diameter, source = median_nucleus_diameter(cfg, chosen) or None, "measured on the annotations"
        scale, scale_info = input_scale(predictor, samples, nucleus_diameter, rescale, diameter_source=source)
        ground_truth, predictions = predict_dataset(predictor, chosen, progress=progress, scale=scale)
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
        **scale_info,
    })
    if output is not None:
        output = Path(output)
        write_json(output / "eval.json", results)
        write_confusion_csv(confusion, output / "confusion.csv")
        plot_confusion(confusion, output / "confusion.png")
        with atomic_write(output / "matching.csv", "w") as handle:
            matching.to_csv(handle, index=False)
    return results


def own_nucleus_scale(predictor: Predictor) -> tuple[Callable[[dict], float | None], Callable[[], dict]]:
    """A function giving each sample its factor from its own annotated nuclei, and one summing up those given."""
    diameters, scales = [], []

    def scale_of(sample: dict) -> float | None:
        diameter = median_diameter(sample["masks"].reshape(len(sample["masks"]), -1).sum(axis=1))
        if diameter is None:  # nothing annotated: the image is scored as the model takes it
            return None
        # one log line per image would bury the progress bar: the summary goes into the results instead
        with quieter("pcnacycle.engine.scale", logging.WARNING):
            scale, info = input_scale(predictor, [sample["channels"]], diameter,
                                      diameter_source="the image's own annotations")
        diameters.append(diameter)
        scales.append(info["scale"])
        return scale

    def quartiles(values: list[float]) -> list[float] | None:
        return [round(float(q), 3) for q in np.percentile(values, [25, 50, 75])] if values else None

    def scales_used() -> dict:
        return {"trained_nucleus_diameter_px": trained, "movie_nucleus_diameter_px": quartiles(diameters),
                "scale": quartiles(scales),
                "scale_note": "each image by its own annotated nuclei (quartiles over the images)"}

    trained = float(predictor.cfg.INPUT.get("NUCLEUS_DIAMETER", 0) or 0)
    if not trained:
        raise PcnacycleError("scale per image: the model does not record its training nucleus size "
                             "(INPUT.NUCLEUS_DIAMETER)")
    return scale_of, scales_used


def format_evaluation(results: dict) -> str:
    """The plain-text tables of an :func:`evaluate` result: COCO AP, matching scores, phase report."""
    matching = pd.DataFrame(results["matching"])
    report = pd.DataFrame.from_dict(results["phase"]["report"], orient="index").astype(float)
    table, note = score_table(report)  # undefined scores as "–", support as whole numbers
    return "\n".join([format_table(results), matching.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
                      table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="–") + (f"\n{note}" if note else "")])
