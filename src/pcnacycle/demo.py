"""``pcnacycle demo``: the whole pipeline on simulated data, with nothing but the package.

Simulate a training movie and a separate test movie, train the stage-3 CPU
profile for a few hundred iterations, score the model on the test movie
against its ground truth, and write ``report.html`` with the figures.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .config import load_config
from .data.catalog import load_sample, read_records
from .engine.predictor import Predictor
from .engine.trainer import train
from .errors import PcnacycleError
from .evaluation.evaluator import evaluate
from .evaluation.tracks import division_sentence, evaluate_tracks
from .io import MANIFEST_KEY, files_under, read_manifest, remove_outputs, write_json
from .phases import PHASES
from .pipeline import run
from .report import HtmlReport, legend_html, phase_overlay, png_bytes, score_table
from .safeguards import check_output_folder
from .simulation.simulator import simulate

#: Marks a folder as a demo's, so ``--overwrite`` never deletes anything else.
MARKER = "demo.json"

#: The demo's budget, measured on 2 idle cores (BENCHMARKS.md, "The demo, timed"): about 8.7 minutes of training
#: (1.3 s/it on the slower of this project's machines; the VMs' pace varies from machine to machine and day to
#: day) and about 1 of simulation, evaluation, tracking and the report.
TRAIN_ITERATIONS = 400
#: Channels of the mask head's convolutions (stage3_pcna_cpu has 128): at 128 its four 3x3 convolutions over
#: every positive RoI took a quarter of each training iteration.
DEMO_MASK_HEAD_WIDTH = 64
# Mitosis lasts twice as long as in a real movie (104 instead of 52 minutes), so the training frames hold twice
# the M examples: within the 400 iterations M recall goes from 0 to 0.94 on the test movie (BENCHMARKS.md, "M
# recall"). Only what M looks like is learnt from these frames; the test movie keeps realistic durations.
TRAIN_MOVIE = {"frames": 60, "size": (256, 256), "cells": 30, "seed": 1, "annotated_frames": 30,
               "m_minutes": (104.0, 10.0)}
# 30 hours: long enough for whole G1, S and G2 phases, so found and true durations can be compared.
TEST_MOVIE = {"frames": 60, "size": (256, 256), "cells": 30, "seed": 2, "annotated_frames": 8,
              "frame_interval": 30.0}

log = logging.getLogger(__name__)


#: What a demo writes, for a demo.json that lists nothing (an interrupted or older demo).
_LEGACY_OUTPUTS = ("sim_train/**/*", "sim_test/**/*", "train/**/*", "eval/**/*", "run/**/*", "track_eval/**/*",
                   "report.html")


def prepare_output(output: Path, overwrite: bool) -> set[str]:
    """Create ``output``; return the files already there, which are the user's and stay.

    A non-empty folder is refused unless it holds an earlier demo and
    ``overwrite`` is set; then only the files that demo wrote are removed, and
    the demo says so.
    """
    check_output_folder(output)
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise PcnacycleError(f"{output} is not empty; choose another --output or pass --overwrite")
        if not (output / MARKER).is_file():
            raise PcnacycleError(f"{output} is not empty and was not written by pcnacycle demo; "
                                 "refusing to overwrite it")
        removed = remove_outputs(output, read_manifest(output, MARKER, _LEGACY_OUTPUTS))
        log.info("replacing the earlier demo in %s: removed the %d files it wrote (its trained model included); "
                 "any other file there is kept", output, removed)
    output.mkdir(parents=True, exist_ok=True)
    return files_under(output)


def run_demo(output: str | Path = "demo-output", overwrite: bool = False, iterations: int = TRAIN_ITERATIONS,
         progress: bool = True, randomise_training: bool = False) -> Path:
    """Run the demo into ``output``; return the path of ``report.html``.

    Simulate → train → evaluate (COCO AP, phase confusion) → ``run`` on the
    whole test movie → evaluate tracks (CTC TRA, phase accuracy, duration
    errors) → ``report.html``. ``randomise_training`` draws the training
    movie's look from the simulator's randomisation ranges (the test movie
    stays the default one); off by default, which keeps the demo's measured
    scores and time.
    """
    output = Path(output)
    users = prepare_output(output, overwrite)
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(output / MARKER, {"started": started_at, "iterations": iterations})
    log.info("pcnacycle demo: simulates PCNA movies, trains a 3-class Mask R-CNN from scratch for %d iterations on "
             "this machine, scores it on an unseen movie and writes an HTML report. About 10 minutes on 2 CPU cores "
             "(under 15).", iterations)
    started = time.perf_counter()

    log.info("1/5 simulating a training movie and a test movie")
    train_movie = simulate(output / "sim_train", **TRAIN_MOVIE, progress=progress, randomise=randomise_training)
    test_movie = simulate(output / "sim_test", **TEST_MOVIE, progress=progress)

    log.info("2/5 training (%d iterations)", iterations)
    cfg = load_config("stage3_pcna_cpu", [
        "DATASETS.ROOT", str(train_movie / "annotated"), "DATASETS.VAL_SIZE", "3",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", str(DEMO_MASK_HEAD_WIDTH),
        "SOLVER.MAX_ITER", str(iterations), "SOLVER.STEPS", f"[{int(iterations * 0.8)}]",
        "SOLVER.WARMUP_ITERS", str(min(100, iterations // 4)), "SOLVER.CHECKPOINT_PERIOD", str(iterations),
        "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0",
    ])
    weights = train(cfg, output / "train", progress=progress)

    log.info("3/5 scoring segmentation and phase calls on the test movie's annotated frames")
    test_cfg = load_config(output / "train" / "config.yaml", ["DATASETS.ROOT", str(test_movie / "annotated")])
    results = evaluate(test_cfg, weights, split="all", output=output / "eval", progress=progress)

    log.info("4/5 running the whole movie pipeline (detect, track, resolve phases) on the test movie")
    run_dir = run(weights, test_movie / "pcna.tif", output / "run", dic=test_movie / "dic.tif",
                  frame_interval=json.loads((test_movie / "simulation.json").read_text())["frame_interval"],
                  progress=progress)
    tracking = evaluate_tracks(run_dir, test_movie, output=output / "track_eval")

    log.info("5/5 writing the report")
    report = write_demo_report(output, test_cfg, weights, results, tracking, time.perf_counter() - started)
    write_json(output / MARKER, {"started": started_at, "iterations": iterations,
                                 MANIFEST_KEY: sorted((files_under(output) - users) | {MARKER})})
    log.info("report: %s", report.resolve())
    return report


def write_demo_report(output: Path, cfg, weights: Path, results: dict, tracking: dict, seconds: float) -> Path:
    """``report.html``: overlays, loss curve, AP table, phase confusion, tracks and phase durations."""
    names = list(cfg.MODEL.CLASS_NAMES)
    page = HtmlReport("pcnacycle demo")
    page.text(f"Everything here was produced by `pcnacycle demo` in {seconds / 60:.1f} minutes: a simulated PCNA "
              "movie trained a Mask R-CNN (ResNet-18-FPN, from scratch, three-channel input PCNA + DIC + "
              "lowered-Otsu mask) and a second, unseen simulated movie scored it against exact ground truth.")

    page.heading("Nuclei coloured by phase: model (left) and ground truth (right)")
    page.raw(legend_html(names))
    predictor = Predictor(weights, cfg)
    cfg = predictor.cfg
    for record in read_records(cfg)[:3]:
        sample = load_sample(cfg, record)
        predicted = predictor.predict(sample["channels"])
        truth_labels = np.zeros(sample["masks"].shape[1:], np.int32)
        for i, mask in enumerate(sample["masks"]):
            truth_labels[mask] = i + 1
        pcna = sample["channels"]["pcna"]
        with page.row():
            page.image(png_bytes(phase_overlay(pcna, predicted["label_image"],
                                               [names[k - 1] for k in predicted["labels"]])),
                       f"{record['image_id']}: {len(predicted['labels'])} nuclei found", width=400)
            page.image(png_bytes(phase_overlay(pcna, truth_labels, [names[k - 1] for k in sample["labels"]])),
                       f"{record['image_id']}: {len(sample['labels'])} nuclei in the ground truth", width=400)

    page.heading("Detection and segmentation (COCO AP by pycocotools, %)")
    validation = _validation_ap(output / "train" / "metrics.jsonl")
    if validation is not None:
        page.text(f"Validation: segm AP50 {validation:.1f} on the 3 frames of the training movie held out from "
                  "training (the last evaluation in train/metrics.jsonl). Test, below: the 8 annotated frames of "
                  "the unseen test movie, which training never saw.")
    rows = {t: {k: results[t][k] for k in ("AP", "AP50", "AP75")} for t in ("bbox", "segm")}
    for name in names:
        rows[f"segm AP50 {name}"] = {"AP50": results["segm"]["per_class"][name]["AP50"]}
    page.table(pd.DataFrame(rows).T.astype(float))
    matching = pd.DataFrame(results["matching"])
    page.text("Matching score (StarDist/Cellpose accuracy TP / (TP + FP + FN)) by IoU threshold:")
    page.table(matching[["threshold", "tp", "fp", "fn", "accuracy", "f1"]].set_index("threshold"), "{:.3f}")

    page.heading("Training and phase calls")
    with page.row():
        page.image(output / "train" / "loss_curve.png", "training loss", width=560)
        page.image(output / "eval" / "confusion.png", "phase of matched nuclei (IoU ≥ 0.5), with missed and "
                                                       "spurious ones", width=420)
    scores, note = score_table(results["phase"]["report"])
    page.table(scores, "{:.3f}")
    if note:
        page.text(note)
    page.heading("Tracks and phase durations on the whole test movie")
    page.text("Cell Tracking Challenge measures (py-ctcmetrics) of `pcnacycle run`'s tracks against the "
              "simulator's ground truth, per-frame accuracy of the resolved phase, and the error of each "
              "phase's duration over cells whose phase the movie does not cut.")
    page.table(pd.DataFrame([tracking_summary(tracking)]).T.rename(columns={0: "value"}), "{:.3f}")
    if tracking.get("phases"):
        sentence = division_sentence(tracking["phases"]["divisions"])
        page.text(sentence[0].upper() + sentence[1:] + " (a division is found when "
                  "the run links a mother to a daughter of hers within one frame of the true division).")
    with page.row():
        page.image(output / "run" / "timeline.png", "cells of the test movie, coloured by resolved phase",
                   width=560)
        if tracking.get("phases"):
            page.image(png_bytes(durations_figure(tracking)),
                       "phase durations found vs true, over the cells of the table above: cells matched to a true "
                       "cell whose phase the movie shows complete in both", width=560)
    page.text("Files, beside this report: sim_train/, sim_test/ (movies with ground truth), train/ "
              "(checkpoints, metrics.jsonl), eval/ (eval.json, confusion.csv, matching.csv), run/ (masks.tif, "
              "objects.csv, phases.csv, ctc/), track_eval/.")
    return page.save(output / "report.html")


def _validation_ap(metrics: Path) -> float | None:
    """The last ``segm/AP50`` training logged (on its validation frames), or None."""
    if not metrics.is_file():
        return None
    values = [json.loads(line).get("segm/AP50") for line in metrics.read_text().splitlines() if line.strip()]
    values = [v for v in values if v is not None]
    return float(values[-1]) if values else None


def tracking_summary(tracking: dict) -> dict[str, float]:
    """The headline figures of :func:`pcnacycle.evaluation.tracks.evaluate_tracks` for the report's table."""
    summary = {f"CTC {name}": tracking["ctc"].get(name) for name in ("TRA", "DET", "SEG", "LNK", "BC(0)")}
    phases = tracking.get("phases")
    if phases:
        summary["phase accuracy per nucleus-frame"] = phases["per_frame"]["accuracy"]
        for phase in PHASES:
            row = phases["durations"][phase]
            summary[f"{phase} duration error, minutes (MAE over {row['n']} cells)"] = row["mae_minutes"]
            summary[f"{phase} duration bias, minutes"] = row["bias_minutes"]
        divisions = phases["divisions"]
        summary["division recall"] = divisions["recall"]
        summary["division precision"] = divisions["precision"]
    return {key: (np.nan if value is None else float(value)) for key, value in summary.items()}


def durations_figure(tracking: dict):
    """Box plots of the phase durations the report's table compares, true beside found, per phase.

    Each box holds the cells that :func:`pcnacycle.evaluation.tracks.evaluate_tracks`
    matched to a true cell and whose phase the movie shows complete on both
    sides, so its counts are the table's ``n``.
    """
    from matplotlib.figure import Figure  # drawn on its own Figure: no pyplot state, no backend switch

    durations = tracking["phases"]["durations"]
    phases = list(PHASES)
    positions = np.arange(len(phases)) * 3
    fig = Figure(figsize=(5.6, 3.6))
    ax = fig.subplots()
    for offset, key, colour in ((0, "true_minutes", "0.85"), (1, "found_minutes", "#9cd")):
        ax.boxplot([durations[p][key] for p in phases], positions=positions + offset, widths=0.8,
                   patch_artist=True, boxprops={"facecolor": colour})
    ax.set_xticks(positions + 0.5, [f"{p}\nn={durations[p]['n']}" for p in phases])
    ax.set(ylabel="minutes", title="matched cells: true (grey) vs found (blue)")
    fig.tight_layout()
    return fig
