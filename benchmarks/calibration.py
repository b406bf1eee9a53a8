"""How well a model's class probabilities are calibrated: the temperature that fits them best.

Temperature scaling (Guo et al. 2017) divides the log-probabilities by ``T`` and normalises again; the ``T``
that minimises the negative log-likelihood of the true classes says how over- (``T > 1``) or
under-confident (``T < 1``) the probabilities are. Issue 14 proposed fitting it on validation frames so that
the resolver reads calibrated probabilities. Two sources of matched nuclei (IoU ≥ 0.5):

- ``--model TRAIN``: a training folder's ``val`` (and ``train``) frames, predicted as ``evaluate`` does;
- ``--runs OUT``: a ``phase_durations.py --out`` folder's model runs against their movies' truth (the
  probabilities the resolver actually reads, on movies the model was not trained on).

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/calibration.py --model demo-output/train --runs bench-out/pd_base
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from pcnacycle.data.catalog import load_sample, read_records
from pcnacycle.data.dataset import read_split, select
from pcnacycle.engine.predictor import Predictor
from pcnacycle.evaluation.matching import match_instances
from pcnacycle.evaluation.tracks import _frame_matches, _label_frames
from pcnacycle.phases import CLASSES
from pcnacycle.tracking.tracker import probability_column

TRUTH_CLASS = {"G1": 0, "G2": 0, "S": 1, "M": 2}  # the truth's phases as the model's classes (CLASSES)


def nll(probs: np.ndarray, classes: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``classes`` (n,) under ``probs`` (n, K) tempered by ``temperature``."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logits[np.arange(len(classes)), classes].mean())


def best_temperature(probs: np.ndarray, classes: np.ndarray) -> float:
    fit = minimize_scalar(lambda log_t: nll(probs, classes, np.exp(log_t)), bounds=(np.log(0.05), np.log(20)),
                          method="bounded")
    return float(np.exp(fit.x))


def split_nuclei(train: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    predictor = Predictor(train)
    cfg = predictor.cfg
    records = select(read_records(cfg), read_split(train / "split.json")[split], f"{train / 'split.json'} ({split})")
    probs, classes = [], []
    for record in records:
        sample = load_sample(cfg, record)
        found = predictor.predict(sample["channels"])
        count = len(found["scores"])
        if count == 0 or len(sample["labels"]) == 0:
            continue
        masks = np.stack([found["label_image"] == i + 1 for i in range(count)])
        truth_index, found_index, _ = match_instances(sample["masks"].astype(bool), masks, 0.5)
        probs.append(found["probs"][found_index])
        classes.append(sample["labels"][truth_index] - 1)
    return np.concatenate(probs).astype(np.float64), np.concatenate(classes)


def run_nuclei(run: Path, movie: Path) -> tuple[np.ndarray, np.ndarray]:
    matches = _frame_matches(_label_frames(movie / "truth" / "labels.tif"), _label_frames(run / "masks.tif"))
    objects = pd.read_csv(run / "objects.csv").rename(columns={"track": "pred"})
    truth = pd.read_csv(movie / "truth" / "objects.csv").rename(columns={"track": "truth"})
    table = matches.merge(objects, on=["frame", "pred"]).merge(truth[["frame", "truth", "phase"]],
                                                               on=["frame", "truth"], suffixes=("_run", ""))
    probs = table[[probability_column(name) for name in CLASSES]].to_numpy(np.float64)
    return probs, table["phase"].map(TRUTH_CLASS).to_numpy()


def row(source: str, probs: np.ndarray, classes: np.ndarray) -> dict:
    temperature = best_temperature(probs, classes)
    return {"nuclei": source, "n": len(classes), "accuracy": float(np.mean(probs.argmax(axis=1) == classes)),
            "NLL at T=1": nll(probs, classes), "best T": temperature,
            "NLL at best T": nll(probs, classes, temperature)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a training folder (its val and train frames)")
    parser.add_argument("--runs", type=Path, help="a phase_durations.py --out folder with runs/ and movies/")
    args = parser.parse_args()
    rows = []
    if args.model:
        rows += [row(f"{args.model} {split} frames", *split_nuclei(args.model, split)) for split in ("val", "train")]
    if args.runs:
        rows += [row(f"run on {run.name}", *run_nuclei(run, args.runs / "movies" / run.name))
                 for run in sorted((args.runs / "runs").iterdir())]
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
