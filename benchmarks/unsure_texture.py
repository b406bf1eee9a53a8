"""Texture evidence learnt from an unsure model's surer calls: resolved phases with and without it.

A model that has not seen nuclei like a movie's calls few of them with probability 0.9 (the README recipe's
model on its own randomised simulated test movies: 0 S calls at 0.9), so the texture evidence, learnt from
the movie's confident calls, was off wherever it was needed most. Since ``RunSettings.texture_min_confidence``
(0.7) it is learnt from the calls at 0.8 or 0.7 where the movie has too few at 0.9.

For each RUN (a ``pcnacycle run`` of a ``pcnacycle simulate`` movie, whose ``run.json`` names the movie), the
run's detections are tracked and resolved again (:func:`retrack.track_again`) with today's defaults and with
``texture_min_confidence`` 0.9 (texture from calls at 0.9 only, as before), into ``OUT/<run>/{default,0.9}``,
and scored against the movie's truth: the detector's own class (G1/G2, S, M) accuracy on matched nuclei,
the resolved phase (G1, S, G2, M) per nucleus-frame (``evaluate-tracks``), the same with G1 and G2 taken as
one class (what the detector can be compared with), and the level the texture was learnt from. A run of a
movie without phase truth (a real one) gets the resolved phases' shares instead.

Usage (from the repository root)::

    OMP_NUM_THREADS=2 PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/unsure_texture.py --out OUT RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from retrack import track_again

from pcnacycle.evaluation.tracks import evaluate_tracks, match_frame
from pcnacycle.settings import RunSettings

SETTINGS = {"default": RunSettings(), "0.9": RunSettings(texture_min_confidence=0.9)}


def matched_phases(run_dir: Path, movie: Path) -> pd.DataFrame:
    """One row per nucleus matched to the truth (IoU ≥ 0.5): its true class, the detector's call, its phase."""
    truth = tifffile.imread(movie / "truth" / "labels.tif")
    pred = tifffile.imread(run_dir / "masks.tif")
    matches = pd.concat([match_frame(truth[t], pred[t]).assign(frame=t) for t in range(len(truth))])
    truth_class = pd.read_csv(movie / "truth" / "objects.csv").set_index(["frame", "track"])["class"]
    objects = pd.read_csv(run_dir / "objects.csv").set_index(["frame", "track"])
    at = pd.MultiIndex.from_arrays([matches["frame"], matches["pred"]])
    return pd.DataFrame({
        "true": truth_class.reindex(pd.MultiIndex.from_arrays([matches["frame"], matches["truth"]])).to_numpy(),
        "called": objects["predicted_phase"].reindex(at).to_numpy(),
        "phase": objects["phase"].reindex(at).to_numpy()})


def score(run_dir: Path, movie: Path, summary: dict) -> dict:
    result = {"texture_from": summary.get("texture_evidence_from"),
              "confident_calls_share": summary.get("confident_calls_share"),
              "shares": pd.read_csv(run_dir / "objects.csv")["phase"].value_counts(normalize=True).round(3).to_dict()}
    if not (movie / "truth").is_dir():
        return result
    phases = evaluate_tracks(run_dir, movie)["phases"]["per_frame"]
    matched = matched_phases(run_dir, movie)
    as_class = np.where(np.isin(matched["phase"], ["G1", "G2"]), "G1/G2", matched["phase"])
    return {**result, "detector": float((matched["called"] == matched["true"]).mean()),
            "resolved": phases["accuracy"], "resolved_3_classes": float((as_class == matched["true"]).mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    results = {}
    for run in args.runs:
        movie = Path(json.loads((run / "run.json").read_text())["pcna"]).parent
        name = f"{run.parent.name}/{run.name}"
        results[name] = {}
        for label, settings in SETTINGS.items():
            run_dir = args.out / run.parent.name / run.name / label
            summary = track_again(run, run_dir, settings)
            results[name][label] = score(run_dir, movie, summary)
        row = results[name]
        if "resolved" in row["default"]:
            line = (f"detector {row['default']['detector']:.3f}; resolved (G1/G2 as one) "
                    f"0.9 only {row['0.9']['resolved']:.3f} ({row['0.9']['resolved_3_classes']:.3f}), "
                    f"default {row['default']['resolved']:.3f} ({row['default']['resolved_3_classes']:.3f})")
        else:
            line = f"phases 0.9 only {row['0.9']['shares']}, default {row['default']['shares']}"
        print(f"{name}: {line}; texture from {row['default']['texture_from']}, "
              f"confident calls {row['default']['confident_calls_share']:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
