"""Phase durations on movies that do not share the code's defaults: oracle detector, demo model, SC-Track.

Three simulated movies whose phase durations, frame interval (5, 15, 30 min),
nucleus size and motion all differ from the simulator's defaults and from the
resolver's prior (:data:`pcnacycle.settings.DEFAULT_PHASE_MINUTES`). On each:

(a) **oracle detector**: the ground-truth masks, with class probabilities
    corrupted to a stated single-frame accuracy (the winning class is the true
    one with that probability, else one of the other two; its probability is
    drawn from U(0.45, 0.95), the rest split at random). This isolates
    tracking + resolving (:func:`pcnacycle.pipeline.analyse`, default settings).
(b) **a trained model** (``--model``, e.g. the demo's ``demo-output/train``):
    ``pcnacycle run`` on the whole movie, scored by ``evaluate-tracks``; or, with
    ``--resolve-again OUT``, the runs of an earlier ``--out`` resolved again on their
    tracks as saved (``pcnacycle correct`` with no edit: the lineages, with the cuts the
    resolver made then, are kept), to measure a phase-evidence change on the same
    detections; or, with ``--track-again OUT``, their detections linked and resolved
    anew (:func:`pcnacycle.pipeline.analyse`, as ``pcnacycle run`` after the detector),
    to measure a tracker or resolver change that moves where tracks are cut.
(c) **SC-Track** on the same oracle detections (``--sctrack PYTHON``, the
    interpreter of a venv with ``sc-track``; see ``benchmarks/sctrack_oracle.py``).

Scores: resolved phase per nucleus-frame, the detector's own class accuracy
on the same nuclei, per-phase duration MAE and bias (complete phases of
matched cells), division recall and precision; for the oracle also the
identity switches (links inside one track from one true cell to another).

Three more movies, ``dev-10min``, ``dev-20min`` and ``dev-8min`` (``--movies``), are for
development: resolver settings are chosen on them and on the demo's own test
movie, so they are never reported as unseen. ``--settings KEY=VALUE ...``
changes :class:`~pcnacycle.settings.RunSettings` fields for every method.

Three held-out movies, ``holdout-a``, ``-b`` and ``-c`` (``--movies``), all at 15-minute frames, were
added after every setting had been fixed and are scored once, to see whether the figures above hold on
movies no choice was made on.

Usage::

    .venv/bin/python benchmarks/phase_durations.py --out bench-out/phase_durations \\
        [--model demo-output/train] [--sctrack /tmp/sctrack-venv/bin/python] [--accuracy 0.8 0.9] \\
        [--movies dev-10min dev-20min] [--settings texture_evidence=0.5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from retrack import track_again

from pcnacycle.evaluation.tracks import (
    complete_phases,
    division_scores,
    duration_errors,
    evaluate_tracks,
    match_tracks,
    phase_confusion,
)
from pcnacycle.phases import CLASSES
from pcnacycle.pipeline import analyse
from pcnacycle.settings import RunSettings
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie
from pcnacycle.simulation.writers import write_movie
from pcnacycle.tracking.detections import detections_table
from pcnacycle.tracking.resolve import phase_durations
from pcnacycle.tracking.tracker import track_table

#: Every value differs from SimulationParams' defaults (durations 540/420/210/52, 10-min frames, radius 11,
#: speed 0.25) and from the resolver's prior (660/480/240/60).
MOVIES = {
    "fast-5min": dict(frame_interval=5.0, frames=200, size=(288, 288), cells=18, nucleus_radius=14.0, speed=0.15,
                      g1_minutes=(270.0, 30.0), s_minutes=(210.0, 25.0), g2_minutes=(105.0, 12.0),
                      m_minutes=(30.0, 4.0), seed=101),
    "slow-15min": dict(frame_interval=15.0, frames=170, size=(288, 288), cells=26, nucleus_radius=9.0, speed=0.35,
                       g1_minutes=(810.0, 70.0), s_minutes=(630.0, 60.0), g2_minutes=(315.0, 30.0),
                       m_minutes=(75.0, 8.0), seed=202),
    "mixed-30min": dict(frame_interval=30.0, frames=80, size=(288, 288), cells=22, nucleus_radius=12.5, speed=0.2,
                        g1_minutes=(420.0, 60.0), s_minutes=(540.0, 50.0), g2_minutes=(150.0, 20.0),
                        m_minutes=(45.0, 5.0), seed=303),
}
#: Development movies: where resolver settings are chosen (with the demo's own test movie), never scored as
#: unseen. dev-10min has the simulator's defaults; dev-20min other durations and smaller nuclei; dev-8min
#: larger nuclei.
DEV_MOVIES = {
    "dev-10min": dict(frames=120, size=(256, 256), cells=24, frame_interval=10.0, seed=7),
    "dev-20min": dict(frames=90, size=(288, 288), cells=30, frame_interval=20.0, nucleus_radius=9.5, speed=0.3,
                      g1_minutes=(650.0, 60.0), s_minutes=(500.0, 50.0), g2_minutes=(250.0, 25.0),
                      m_minutes=(60.0, 6.0), seed=9),
    "dev-8min": dict(frames=110, size=(320, 320), cells=20, frame_interval=8.0, nucleus_radius=13.5, speed=0.2,
                     g1_minutes=(380.0, 40.0), s_minutes=(300.0, 30.0), g2_minutes=(150.0, 15.0),
                     m_minutes=(40.0, 5.0), seed=11),
}
#: Held-out movies, all with 15-minute frames (the frame interval issue 14's demo-model goals are stated at),
#: defined in the twentieth session after every resolver setting had been fixed, to score once what nineteen
#: sessions of work on the movies above may have fitted to them; never used to choose anything. Durations,
#: nucleus size, motion and seeds differ from every movie above, from the simulator's defaults and from the
#: resolver's prior.
HOLDOUT_MOVIES = {
    "holdout-a": dict(frame_interval=15.0, frames=150, size=(288, 288), cells=24, nucleus_radius=10.5, speed=0.3,
                      g1_minutes=(500.0, 50.0), s_minutes=(360.0, 40.0), g2_minutes=(180.0, 20.0),
                      m_minutes=(40.0, 5.0), seed=404),
    "holdout-b": dict(frame_interval=15.0, frames=190, size=(320, 320), cells=20, nucleus_radius=13.0, speed=0.2,
                      g1_minutes=(700.0, 70.0), s_minutes=(540.0, 50.0), g2_minutes=(270.0, 30.0),
                      m_minutes=(70.0, 7.0), seed=505),
    "holdout-c": dict(frame_interval=15.0, frames=140, size=(256, 256), cells=28, nucleus_radius=8.5, speed=0.4,
                      g1_minutes=(380.0, 40.0), s_minutes=(450.0, 45.0), g2_minutes=(120.0, 15.0),
                      m_minutes=(50.0, 6.0), seed=606),
}
ALL_MOVIES = {**MOVIES, **DEV_MOVIES, **HOLDOUT_MOVIES}


def movie_folder(out: Path, name: str) -> Path:
    folder = out / "movies" / name
    if not (folder / "simulation.json").is_file():
        params = SimulationParams(**ALL_MOVIES[name])
        write_movie(simulate_movie(params), folder, annotated_frames=0, overwrite=True)
    return folder


def parse_settings(pairs: list[str]) -> dict:
    """``["texture_evidence=0.5", "rescale=false"]`` → RunSettings changes (values read as YAML)."""
    import yaml

    return {key: yaml.safe_load(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def oracle_probabilities(classes: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) probabilities whose argmax is the true class with probability ``accuracy``."""
    true = np.array([CLASSES.index(c) for c in classes])
    wrong = rng.random(len(true)) >= accuracy
    winner = np.where(wrong, (true + rng.integers(1, 3, len(true))) % 3, true)
    top = rng.uniform(0.45, 0.95, len(true))
    split = rng.random(len(true))
    probs = np.empty((len(true), 3))
    rows = np.arange(len(true))
    probs[rows, winner] = top
    others = np.stack([(winner + 1) % 3, (winner + 2) % 3], axis=1)
    probs[rows, others[:, 0]] = (1 - top) * split
    probs[rows, others[:, 1]] = (1 - top) * (1 - split)
    return probs


def oracle_detections(folder: Path, accuracy: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    labels = tifffile.imread(folder / "truth" / "labels.tif")
    pcna = tifffile.imread(folder / "pcna.tif")
    truth = pd.read_csv(folder / "truth" / "objects.csv").set_index(["frame", "track"])
    rng = np.random.default_rng(seed)
    probs = []
    for t in range(len(labels)):
        ids = np.arange(1, labels[t].max() + 1)
        classes = truth["class"].reindex(pd.MultiIndex.from_arrays([np.full(len(ids), t), ids])).fillna("G1/G2")
        probs.append(oracle_probabilities(classes.to_numpy(), accuracy, rng))
    detections = detections_table(labels, probs, CLASSES, pcna)
    return detections, labels


def score_on_truth_labels(tracked: pd.DataFrame, folder: Path) -> dict:
    """Scores of a table whose ``label`` is the true track id (oracle detections): phases, durations, divisions."""
    truth_objects = pd.read_csv(folder / "truth" / "objects.csv")
    truth_durations = pd.read_csv(folder / "truth" / "phases.csv")
    frame_interval = json.loads((folder / "simulation.json").read_text())["frame_interval"]
    matches = tracked[["frame", "label", "track"]].rename(columns={"label": "truth", "track": "pred"})
    truth_phase = truth_objects.set_index(["frame", "track"])["phase"]
    keys = pd.MultiIndex.from_arrays([tracked["frame"], tracked["label"]])
    per_frame = phase_confusion(truth_phase.reindex(keys).to_numpy(), tracked["phase"].to_numpy())
    durations = phase_durations(tracked.assign(arrested=tracked.get("arrested", "")), frame_interval)
    pairs = match_tracks(matches, truth_objects.groupby("track")["frame"].nunique(),
                         tracked.groupby("track")["frame"].nunique())
    errors = duration_errors(pairs, truth_durations, complete_phases(truth_durations, truth_objects),
                             durations, complete_phases(durations, tracked))
    missing = len(truth_objects) - len(tracked)
    # a link from one true cell to another inside a track: the tracker followed the wrong nucleus
    ordered = tracked.sort_values(["track", "frame"])
    switches = int((ordered.groupby("track")["label"].diff().fillna(0) != 0).sum())
    return {"accuracy": per_frame["accuracy"] * len(tracked) / len(truth_objects), "dropped": int(missing),
            "identity_switches": switches, "true_links": int(len(truth_objects) - truth_objects["track"].nunique()),
            "durations": errors,
            "divisions": division_scores(matches, track_table(truth_objects), track_table(tracked))}


def detector_accuracy(objects: pd.DataFrame, truth_objects: pd.DataFrame, key: str) -> float:
    """Share of nuclei whose argmax class is the true class (``key``: the column holding the true track id)."""
    truth_class = truth_objects.set_index(["frame", "track"])["class"]
    found = truth_class.reindex(pd.MultiIndex.from_arrays([objects["frame"], objects[key]]))
    return float((found.to_numpy() == objects["predicted_phase"].to_numpy()).mean())


def run_sctrack(python: str, folder: Path, detections: pd.DataFrame, labels: np.ndarray, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(work / "labels.tif", labels)
    tifffile.imwrite(work / "pcna.tif", tifffile.imread(folder / "pcna.tif"))
    detections[["frame", "label", *[f"p_{c}" for c in CLASSES]]].to_csv(work / "oracle.csv", index=False)
    interval = json.loads((folder / "simulation.json").read_text())["frame_interval"]
    started = time.perf_counter()
    subprocess.run([python, str(Path(__file__).parent / "sctrack_oracle.py"), "--input", str(work),
                    "--frame-interval", str(interval), "--output", str(work / "sctrack.csv")],
                   check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    table = pd.read_csv(work / "sctrack.csv")
    return {**score_on_truth_labels(table, folder), "seconds": round(seconds, 1)}


def summarise(scores: dict) -> dict:
    durations = scores["durations"]
    row = {"accuracy": round(scores["accuracy"], 3)}
    for phase in ("G1", "S", "G2", "M"):
        d = durations[phase]
        row[f"{phase} MAE/bias (n)"] = (f"{d['mae_minutes']:.0f}/{d['bias_minutes']:+.0f} ({d['n']})"
                                        if d["n"] else "n/a")
    div = scores["divisions"]
    row["divisions recall/precision"] = (f"{div['recall'] or 0:.2f}/{div['precision'] or 0:.2f} "
                                         f"({div['found']} of {div['true']}, {div['spurious']} spurious)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="weights or training folder of a trained model (part b)")
    parser.add_argument("--sctrack", help="python of a venv where sc-track is installed (part c)")
    parser.add_argument("--accuracy", type=float, nargs="+", default=[0.8, 0.9])
    parser.add_argument("--movies", nargs="+", default=list(MOVIES), choices=list(ALL_MOVIES))
    parser.add_argument("--resolve-again", type=Path, metavar="OUT",
                        help="instead of running --model, resolve the runs an earlier --out holds (OUT/runs/<movie>) "
                             "again with today's resolver, on the tracks as they were saved")
    parser.add_argument("--track-again", type=Path, metavar="OUT",
                        help="instead of running --model, link and resolve the detections of the runs an earlier "
                             "--out holds (OUT/runs/<movie>) anew with today's tracker and resolver")
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="RunSettings fields to change, for the oracle and the model alike")
    args = parser.parse_args()
    if args.resolve_again and args.track_again:
        parser.error("give --resolve-again or --track-again, not both")
    settings = RunSettings(**parse_settings(args.settings))
    earlier = args.resolve_again or args.track_again
    results = {}
    for name in args.movies:
        folder = movie_folder(earlier or args.out, name)
        truth_objects = pd.read_csv(folder / "truth" / "objects.csv")
        interval = ALL_MOVIES[name]["frame_interval"]
        for accuracy in args.accuracy:
            detections, labels = oracle_detections(folder, accuracy, seed=int(accuracy * 1000))
            started = time.perf_counter()
            tracked, _, summary = analyse(detections, interval, settings)
            seconds = time.perf_counter() - started
            scores = score_on_truth_labels(tracked, folder)
            detections["predicted_phase"] = np.array(CLASSES)[detections[[f"p_{c}" for c in CLASSES]].to_numpy()
                                                               .argmax(1)]
            scores["detector_accuracy"] = detector_accuracy(detections, truth_objects, "label")
            scores["phase_minutes_used"] = summary["phase_minutes_used"]
            scores["motion_persistence_used"] = summary["motion_persistence_used"]
            scores["seconds"] = round(seconds, 1)
            results[f"{name} oracle {accuracy}"] = scores
            print(name, "oracle", accuracy, summarise(scores), f"detector {scores['detector_accuracy']:.3f}",
                  f"identity switches {scores['identity_switches']} of {scores['true_links']} links",
                  f"persistence {scores['motion_persistence_used']:.2f}", f"{seconds:.1f} s", flush=True)
            if args.sctrack:
                sc = run_sctrack(args.sctrack, folder, detections, labels, args.out / "sctrack" / f"{name}-{accuracy}")
                results[f"{name} SC-Track {accuracy}"] = sc
                print(name, "SC-Track", accuracy, summarise(sc), flush=True)
        if args.model or earlier:
            from pcnacycle.correct.runs import correct_run
            from pcnacycle.pipeline import run

            run_dir = args.out / "runs" / name
            if args.resolve_again:
                correct_run(args.resolve_again / "runs" / name, [], output=run_dir, settings=settings, overwrite=True)
            elif args.track_again:
                track_again(args.track_again / "runs" / name, run_dir, settings)
            else:
                run(args.model, folder / "pcna.tif", run_dir, dic=folder / "dic.tif", frame_interval=interval,
                    settings=settings, overwrite=True, progress=False)
            tracking = evaluate_tracks(run_dir, folder)
            phases = tracking["phases"]
            objects = pd.read_csv(run_dir / "objects.csv")
            matched = _matched_detector_accuracy(run_dir, folder, objects)
            scores = {"accuracy": phases["per_frame"]["accuracy"], "durations": phases["durations"],
                      "divisions": phases["divisions"], "detector_accuracy": matched,
                      "ctc": {k: tracking["ctc"].get(k) for k in ("TRA", "DET", "LNK", "BC(0)")},
                      "run": json.loads((run_dir / "run.json").read_text())}
            results[f"{name} model"] = scores
            print(name, "model", summarise(scores), f"detector {matched:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    table = pd.DataFrame({k: summarise(v) | {"detector": round(v.get("detector_accuracy", float("nan")), 3)}
                          for k, v in results.items()}).T
    print(table.to_string())


def _matched_detector_accuracy(run_dir: Path, folder: Path, objects: pd.DataFrame) -> float:
    """The model's own class accuracy on nuclei matched (IoU ≥ 0.5) to the truth, over the whole movie."""
    from pcnacycle.evaluation.tracks import match_frame

    truth = tifffile.imread(folder / "truth" / "labels.tif")
    pred = tifffile.imread(run_dir / "masks.tif")
    matches = pd.concat([match_frame(truth[t], pred[t]).assign(frame=t) for t in range(len(truth))])
    truth_class = pd.read_csv(folder / "truth" / "objects.csv").set_index(["frame", "track"])["class"]
    called = objects.set_index(["frame", "track"])["predicted_phase"]
    true = truth_class.reindex(pd.MultiIndex.from_arrays([matches["frame"], matches["truth"]])).to_numpy()
    found = called.reindex(pd.MultiIndex.from_arrays([matches["frame"], matches["pred"]])).to_numpy()
    return float((true == found).mean())


if __name__ == "__main__":
    sys.exit(main())
