"""Has a model learnt M at all? Its p_M of the mitoses it finds, against its p_M of every other nucleus.

An M AP50 of 0 says no mitosis wins the argmax; it does not say whether M is being learnt and merely loses
to G1/G2. This runs a model (``Predictor``, frames at their own pixel size, as the model was trained on
them) on the annotated frames of a ``pcnacycle simulate`` folder that hold a mitosis, matches annotated
nuclei and detections one to one at IoU ≥ 0.5 (``match_frame``, as ``evaluate-tracks`` does), and gives the
quartiles of p_M for the mitoses and for the other nuclei, with what the mitoses were called.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/m_probability.py WEIGHTS ANNOTATED [--frames 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.engine.predictor import Predictor
from pcnacycle.evaluation.tracks import match_frame


def m_probabilities(weights: Path, annotated: Path, frames: int) -> dict:
    """p_M quartiles of matched mitoses and of other matched nuclei on the first ``frames`` frames holding an M."""
    predictor = Predictor(weights)
    m_column = predictor.class_names.index("M")
    classes = pd.read_csv(annotated / "classes.csv")
    images = classes.loc[classes["class"] == "M", "image"].unique()[:frames]
    p_m = {"M": [], "other": []}
    calls = []
    for image in images:
        labels = tifffile.imread(annotated / "labels" / f"{image}.tif")
        found = predictor.predict({"pcna": tifffile.imread(annotated / "pcna" / f"{image}.tif")})
        phases = classes[classes["image"] == image].set_index("label")["class"]
        for truth, pred in match_frame(labels, found["label_image"])[["truth", "pred"]].itertuples(index=False):
            probs = found["probs"][pred - 1]
            p_m["M" if phases[truth] == "M" else "other"].append(float(probs[m_column]))
            if phases[truth] == "M":
                calls.append(predictor.class_names[int(np.argmax(probs))])
    return {"frames": len(images), "mitoses_matched": len(p_m["M"]),
            "p_M_of_mitoses_quartiles": np.percentile(p_m["M"], [25, 50, 75]).round(3).tolist(),
            "p_M_of_others_quartiles": np.percentile(p_m["other"], [25, 50, 75]).round(3).tolist(),
            "mitoses_called": pd.Series(calls).value_counts().to_dict()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="a training folder or checkpoint")
    parser.add_argument("annotated", type=Path, help="a simulate folder's annotated/ (classes.csv, pcna/, labels/)")
    parser.add_argument("--frames", type=int, default=12, help="frames holding a mitosis to run on")
    args = parser.parse_args()
    print(json.dumps(m_probabilities(args.weights, args.annotated, args.frames), indent=1))


if __name__ == "__main__":
    main()
