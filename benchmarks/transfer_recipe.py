"""The report's recipe for real movies on a CPU: stage 1 on real nuclei, stage 3 on randomised PCNA (issue 12, item 4).

The models, each scored on the same things:

* ``stage1``: the stage-1 CPU model trained on DSB2018 (``benchmarks/stage1_cpu.sh``,
  2000 iterations; trained here first when ``--stage1`` holds no model);
* ``stage3_from_stage1``: stage 3 (``configs/stage3_real_cpu.yaml``: grey PCNA input, 600
  iterations) started from the stage-1 weights, on the annotated frames of 12 randomised simulated
  movies (``pcnacycle simulate --movies 12 --randomise``);
* ``stage3_scratch``: the same stage 3 from scratch, to show what stage 1 brings;
* ``stage3_with_nuclei``: ``stage3_from_stage1`` with stage 1's training images of DSB2018 mixed in
  as nuclei without phases (``DATASETS.NUCLEI_ONLY``, a quarter of the draws, stage 1's split, so
  its val images stay unseen), all resized by one factor (``SIZE_MATCH dataset``);
* ``stage3_with_nuclei_per_image``: the same with each DSB2018 image resized to the training
  nucleus size on its own (``SIZE_MATCH image``, the default);
* ``stage3_with_nuclei_long``: ``stage3_with_nuclei_per_image`` trained 1 / (1 - 0.25) times as long,
  so that it draws as many phase-annotated images as ``stage3_from_stage1``;
* ``stage3_with_nuclei_half``: ``stage3_with_nuclei_long`` with half the draws from DSB2018
  (``DATASETS.NUCLEI_ONLY.FRACTION 0.5``), trained 1 / (1 - 0.5) times as long, again as many
  phase-annotated draws as ``stage3_from_stage1``;
* ``stage3_with_nuclei_long_mitoses``: ``stage3_with_nuclei_long`` trained on 12 randomised movies
  of the same seeds in which mitosis lasts twice as long (``--phase-minutes M=104``), as the demo's
  training movie does (twice the M examples in the same frames), drawn with the ranges as they are
  now: since 2026-11-29 they include the spread of PCNA expression between cells
  (``cell_brightness_sd``), so dim nuclei are in the training frames too;
* ``stage3_with_nuclei_frozen``: ``stage3_with_nuclei_long`` with the stage-1 backbone's first stages
  frozen (``MODEL.BACKBONE.FREEZE_AT``, ``--freeze-at``, default 3: the stem, res2 and res3), so that
  stage 3 cannot unlearn what they see in real nuclei; its folder is ``stage3_with_nuclei_frozen<N>``;
* ``stage3_with_nuclei_low_lr``: ``stage3_with_nuclei_long`` at a quarter of its learning rate
  (``SOLVER.BASE_LR`` 0.0025 instead of the from-scratch 0.01; the report fine-tuned at 0.001), so that
  fine-tuning moves the stage-1 weights less;
* ``stage3_with_nuclei_sqrt``: ``stage3_with_nuclei_long`` with every channel's square root taken after
  the percentile scaling (``INPUT.NORMALIZE.GAMMA 0.5``, in training and wherever the model is run): the
  square root makes photon (Poisson) noise the same at every brightness, so a nucleus expressing a
  tenth of its neighbours' PCNA is no longer a hundredth of the range. The README recipe since
  2026-11-30 (``configs/stage3_real_cpu.yaml`` sets it); every other stage-3 model here is trained with
  ``GAMMA`` 1, as it was before;
* ``stage3_with_nuclei_sqrt_spread``: ``stage3_with_nuclei_sqrt`` trained on 12 randomised movies of the
  same seeds drawn with the ranges as they are since 2026-11-30 (``sim_random_train_spread``): PCNA
  expression differing between cells by up to a log sd of 1.4 (``cell_brightness_sd`` up to 2.5, drawn in
  the logarithm), as in real PCNA fields; nothing else about the movies differs from ``sim_random_train``.
* ``stage3_with_nuclei_sqrt_spread_balanced``: ``stage3_with_nuclei_sqrt_spread`` with each phase's
  classification loss weighted by the inverse square root of its share of the training nuclei, the
  commonest phase 1 (``MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS``, counted from the training frames by
  :func:`balanced_class_weights`): M, 4 % of the nuclei, weighs about 3.9.

Scores: (1) DSB2018 val (the 100 images of stage 1's split), class-agnostic segm AP50 —
does the model keep real nuclei? — with one resize for the split (its median nucleus) and with each
image resized by its own (``evaluate --scale-per-image``: DSB2018 mixes magnifications);
(2) CTC Fluo-N2DH-GOWT1 02 (real mouse ES cells, 1024², nuclei 40–60 px) end to end at its own
pixel size with no option given (``pcnacycle run`` estimates the nucleus size and rescales), TRA/DET/SEG by
``evaluate-tracks`` and the matching F1 at IoU 0.5 on the frames 02_GT/SEG outlines completely;
(3) the annotated frames of 4 unseen randomised simulated movies (other seeds):
segm AP50 per class and phase accuracy of matched nuclei (stage-3 models only; stage 1
has no phases); (4) with ``--pcnadeep-figure``, the only real PCNA image at hand, panel 1 of
pcnaDeep's tutorial figure (``benchmarks/texture_stats.py`` says where it comes from and how
its 8 whole nuclei and their S / G1/G2 labels are read off it): nuclei matched at IoU 0.5
and the phases called for them, the nucleus size estimated and rescaled as ``run`` does.
Indicative only: 8 nuclei of a display-scaled figure.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/transfer_recipe.py --out bench-out/transfer \\
        [--stage1 bench-out/stage1_cpu] [--iterations 600] [--pcnadeep-figure cls_demo.png]

Steps already done (a model_final.pt, a movies.json, an evaluation's output) are not redone. The
figures in BENCHMARKS.md use ``sim_random_train`` and ``sim_random_test`` as drawn on 2026-11-29, before
the ranges spread PCNA expression between cells; drawn afresh they would hold today's spread (the
simulator has no option for the older ranges), which ``stage3_with_nuclei_sqrt_spread`` measures.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))

from pcnacycle.evaluation.tracks import match_frame

PCNACYCLE = [sys.executable, "-m", "pcnacycle"]
MODELS = ["stage1", "stage3_scratch", "stage3_from_stage1", "stage3_with_nuclei", "stage3_with_nuclei_per_image",
          "stage3_with_nuclei_long", "stage3_with_nuclei_half", "stage3_with_nuclei_long_mitoses",
          "stage3_with_nuclei_frozen", "stage3_with_nuclei_low_lr", "stage3_with_nuclei_sqrt",
          "stage3_with_nuclei_sqrt_spread", "stage3_with_nuclei_sqrt_spread_balanced"]


def sh(*args, cwd=None) -> str:
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([*map(str, args)], check=True, capture_output=True, text=True, cwd=cwd).stdout


def simulate_set(folder: Path, movies: int, seed: int, annotated: int, *extra) -> None:
    if not (folder / "movies.json").exists():
        sh(*PCNACYCLE, "simulate", "--movies", movies, "--randomise", "--seed", seed, "--frames", 20,
           "--size", 512, 512, "--cells", 80, "--annotated-frames", annotated, "--quiet", "--overwrite",
           "--output", folder, *extra)


def balanced_class_weights(annotated: Path, classes=("G1/G2", "S", "M")) -> list[float]:
    """Inverse square root of each class's share of the nuclei of a ``simulate`` folder's VIA file, the
    commonest class 1 (class-balanced loss weights without going all the way to inverse frequency)."""
    regions = json.loads((annotated / "via_region_data.json").read_text()).values()
    counts = Counter(region["region_attributes"]["phase"] for image in regions for region in image["regions"])
    most = max(counts[name] for name in classes)
    return [round(math.sqrt(most / counts[name]), 2) for name in classes]


def train_stage3(folder: Path, data: Path, iterations: int, *extra, gamma: float = 1.0) -> None:
    """Stage 3 from ``configs/stage3_real_cpu.yaml``; ``gamma``: its ``INPUT.NORMALIZE.GAMMA`` (0.5 in the
    config since 2026-11-30; 1 for every model but the ``stage3_with_nuclei_sqrt`` ones, as they were trained)."""
    if not (folder / "model_final.pt").exists():
        started = time.time()
        sh(*PCNACYCLE, "train", "--quiet", "--config", "stage3_real_cpu", "--output", folder, "DATASETS.ROOT", data,
           "SOLVER.MAX_ITER", iterations, "SOLVER.STEPS", f"[{iterations * 4 // 5}]", "SOLVER.CHECKPOINT_PERIOD",
           iterations, "TEST.EVAL_PERIOD", 0, "DATALOADER.NUM_WORKERS", 0, "INPUT.NORMALIZE.GAMMA", gamma, *extra)
        (folder / "train_seconds.txt").write_text(f"{time.time() - started:.0f}\n")


def gowt1_stack(sequence: Path, path: Path) -> None:
    if not path.exists():
        frames = sorted(sequence.glob("t*.tif"))
        tifffile.imwrite(path, np.stack([tifffile.imread(f) for f in frames]), photometric="minisblack")


def complete_seg_frames(truth: Path) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(frame, SEG labels, TRA markers)`` of the frames whose SEG outlines every nucleus.

    GOWT1's 02_GT/SEG outlines every nucleus in a few frames and one nucleus in
    the others: a frame counts when its SEG nuclei cover at least 90 % of its
    TRA markers.
    """
    for path in sorted((truth / "SEG").glob("man_seg*.tif")):
        index = path.stem[len("man_seg"):]
        seg, markers = tifffile.imread(path), tifffile.imread(truth / "TRA" / f"man_track{index}.tif")
        marker_ids = np.unique(markers[markers > 0])
        if len(np.unique(markers[(markers > 0) & (seg > 0)])) >= 0.9 * len(marker_ids):
            yield int(index), seg, markers


def matching_f1(run: Path, truth: Path) -> dict:
    """One-to-one matches at IoU 0.5 against the SEG ground truth of the frames where it is complete.

    Only :func:`complete_seg_frames` are scored, and a predicted nucleus lying on
    a TRA marker that SEG left out is neither right nor wrong.
    """
    masks = tifffile.imread(run / "masks.tif")
    tp = fp = fn = 0
    frames = []
    for index, seg, markers in complete_seg_frames(truth):
        marker_ids = np.unique(markers[markers > 0])
        outlined = np.unique(markers[(markers > 0) & (seg > 0)])
        frames.append(index)
        pred = masks[index]
        matched = match_frame(seg, pred)
        left_out = np.isin(markers, np.setdiff1d(marker_ids, outlined))
        ignored = set(np.unique(pred[left_out & (pred > 0)]).tolist()) - set(matched["pred"].tolist())
        tp += len(matched)
        fn += len(np.unique(seg[seg > 0])) - len(matched)
        fp += len(np.unique(pred[pred > 0])) - len(matched) - len(ignored)
    return {"frames": frames, "tp": tp, "fp": fp, "fn": fn, "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1), "f1": 2 * tp / max(2 * tp + fp + fn, 1)}


def pcnadeep_panel_scores(model: Path, figure: Path) -> dict:
    """Nuclei of pcnaDeep's figure panel found at IoU 0.5, and the phases called for the matched ones."""
    from texture_stats import pcnadeep_panel_labels, pcnadeep_panel_phases

    from pcnacycle.engine.predictor import Predictor
    from pcnacycle.engine.scale import input_scale, predict_scaled

    grey, labels = pcnadeep_panel_labels(figure)
    truth_phase = pcnadeep_panel_phases(grey, labels)
    predictor = Predictor(model)
    channels = {name: grey for name in ("pcna", "gray", "dic")}
    scale, info = input_scale(predictor, [channels])
    found = predict_scaled(predictor, channels, scale)
    matched = match_frame(labels, found["label_image"])
    names = predictor.class_names
    called = [names[int(np.argmax(found["probs"][p - 1]))] for p in matched["pred"]]
    return {"nuclei": len(truth_phase), "matched": len(matched), "predicted": int(len(found["scores"])),
            "truth_phases": [truth_phase[t] for t in matched["truth"]], "called": called, **info}


def gowt1_scale(model: Path, movie: Path) -> dict:
    """The nucleus size ``run`` would measure on GOWT1 (its first 3 frames) and the resize it would apply."""
    from pcnacycle.engine.predictor import Predictor
    from pcnacycle.engine.scale import input_scale

    predictor = Predictor(model)
    frames = tifffile.imread(movie, key=range(3))
    return input_scale(predictor, [{"pcna": frame, "gray": frame} for frame in frames])[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/transfer"))
    parser.add_argument("--stage1", type=Path, default=Path("bench-out/stage1_cpu"))
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018/stage1_train"))
    parser.add_argument("--gowt1", type=Path, default=Path("../shared/data/ctc/Fluo-N2DH-GOWT1/02"))
    parser.add_argument("--pcnadeep-figure", type=Path, help="pcnaDeep's tutorial/assets/cls_demo.png")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS,
                        help="score only these (the others are not trained either, except stage1 for stage 3)")
    parser.add_argument("--skip-gowt1", nargs="*", default=[], choices=MODELS,
                        help="models not run on GOWT1 (their size estimate only is recorded): a model that "
                             "misjudges the nucleus size can enlarge the frames 4x and take an hour")
    parser.add_argument("--gowt1-diameter", type=float,
                        help="give GOWT1's nucleus diameter to run (--nucleus-diameter) instead of letting it measure; "
                             "results go to gowt1_run_given/ and are reported apart")
    parser.add_argument("--score-threshold", type=float,
                        help="give run this --score-threshold on GOWT1 (default: run's own; it was 0.5 until "
                             "2026-11-30, so give 0.5 to compare with the models scored before)")
    parser.add_argument("--freeze-at", type=int, default=3, choices=range(1, 6),
                        help="MODEL.BACKBONE.FREEZE_AT of stage3_with_nuclei_frozen")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    needs_stage1 = set(args.models) - {"stage3_scratch"}
    if needs_stage1 and not (args.stage1 / "model_final.pt").exists():
        sh("benchmarks/stage1_cpu.sh", args.stage1, "SOLVER.MAX_ITER", 2000, "SOLVER.STEPS", "[1600]")
    simulate_set(out / "sim_random_train", 12, 101, 5)
    simulate_set(out / "sim_random_test", 4, 201, 4)
    if "stage3_with_nuclei_long_mitoses" in args.models:
        simulate_set(out / "sim_random_train_mitoses", 12, 101, 5, "--phase-minutes", "M=104")
    if {"stage3_with_nuclei_sqrt_spread", "stage3_with_nuclei_sqrt_spread_balanced"} & set(args.models):
        simulate_set(out / "sim_random_train_spread", 12, 101, 5)
    if "stage3_scratch" in args.models:
        train_stage3(out / "stage3_scratch", out / "sim_random_train" / "annotated", args.iterations)
    if "stage3_from_stage1" in args.models:
        train_stage3(out / "stage3_from_stage1", out / "sim_random_train" / "annotated", args.iterations,
                     "MODEL.WEIGHTS", args.stage1 / "model_final.pt")
    train, mitoses, spread = (out / name / "annotated" for name in (
        "sim_random_train", "sim_random_train_mitoses", "sim_random_train_spread"))
    mixed = (("stage3_with_nuclei", "dataset", 0.25, args.iterations, train),
             ("stage3_with_nuclei_per_image", "image", 0.25, args.iterations, train),
             ("stage3_with_nuclei_long", "image", 0.25, round(args.iterations / 0.75), train),
             ("stage3_with_nuclei_half", "image", 0.5, round(args.iterations / 0.5), train),
             ("stage3_with_nuclei_long_mitoses", "image", 0.25, round(args.iterations / 0.75), mitoses),
             ("stage3_with_nuclei_frozen", "image", 0.25, round(args.iterations / 0.75), train),
             ("stage3_with_nuclei_low_lr", "image", 0.25, round(args.iterations / 0.75), train),
             ("stage3_with_nuclei_sqrt", "image", 0.25, round(args.iterations / 0.75), train),
             ("stage3_with_nuclei_sqrt_spread", "image", 0.25, round(args.iterations / 0.75), spread),
             ("stage3_with_nuclei_sqrt_spread_balanced", "image", 0.25, round(args.iterations / 0.75), spread))
    labels = {name: name for name in MODELS}  # the folder name of each model's training and evaluation
    labels["stage3_with_nuclei_frozen"] += str(args.freeze_at)
    folders = {"stage1": args.stage1, **{name: out / labels[name] for name in MODELS[1:]}}
    for name, size_match, fraction, iterations, frames in mixed:
        if name in args.models:
            extra = ["MODEL.BACKBONE.FREEZE_AT", args.freeze_at] if name == "stage3_with_nuclei_frozen" else []
            extra += ["SOLVER.BASE_LR", 0.0025] if name == "stage3_with_nuclei_low_lr" else []
            if name == "stage3_with_nuclei_sqrt_spread_balanced":
                extra += ["MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS", str(balanced_class_weights(frames))]
            train_stage3(folders[name], frames, iterations,
                         "MODEL.WEIGHTS", args.stage1 / "model_final.pt", "DATASETS.NUCLEI_ONLY.ROOT", args.dsb,
                         "DATASETS.NUCLEI_ONLY.SPLIT_FILE", args.stage1 / "split.json",
                         "DATASETS.NUCLEI_ONLY.SIZE_MATCH", size_match, "DATASETS.NUCLEI_ONLY.FRACTION", fraction,
                         *extra, gamma=0.5 if name.startswith("stage3_with_nuclei_sqrt") else 1.0)
    gowt1_stack(args.gowt1, out / "gowt1_02.tif")
    results = {"date": time.strftime("%Y-%m-%d"), "iterations": args.iterations}
    for name, model in ((name, folders[name]) for name in args.models):
        where = out / "eval" / labels[name]
        scores = results[name] = {}
        dsb = where / "dsb2018_val"
        if not (dsb / "eval.json").exists():
            sh(*PCNACYCLE, "evaluate", "--quiet", "--config", model / "config.yaml", "--weights", model,
               "--split", "val", "--split-file", args.stage1 / "split.json", "--class-agnostic", "--output", dsb,
               "DATASETS.FORMAT", "dsb2018", "DATASETS.ROOT", args.dsb)
        scores["dsb2018_val"] = json.loads((dsb / "eval.json").read_text())
        # DSB2018 gathers images of many magnifications; a user runs each on its own, at its own nucleus size
        per_image = where / "dsb2018_val_per_image"
        if not (per_image / "eval.json").exists():
            sh(*PCNACYCLE, "evaluate", "--quiet", "--config", model / "config.yaml", "--weights", model,
               "--split", "val", "--split-file", args.stage1 / "split.json", "--class-agnostic", "--scale-per-image",
               "--output", per_image, "DATASETS.FORMAT", "dsb2018", "DATASETS.ROOT", args.dsb)
        scores["dsb2018_val_per_image"] = json.loads((per_image / "eval.json").read_text())
        if name in args.skip_gowt1:
            scores["gowt1"] = {"skipped": gowt1_scale(model, out / "gowt1_02.tif")}
        else:
            given = ["--nucleus-diameter", args.gowt1_diameter] if args.gowt1_diameter else []
            threshold = ["--score-threshold", args.score_threshold] if args.score_threshold is not None else []
            suffix = "_given" if given else ""
            run = where / f"gowt1_run{suffix}"
            if not (run / "run.json").exists():
                started = time.time()
                sh(*PCNACYCLE, "run", "--quiet", "--weights", model, "--pcna", out / "gowt1_02.tif", "--output", run,
                   "--frame-interval", 5, "--overwrite", *given, *threshold)
                (where / f"gowt1_run{suffix}_seconds.txt").write_text(f"{time.time() - started:.0f}\n")
            tracks = where / f"gowt1_eval{suffix}"
            if not (tracks / "track_eval.json").exists():
                sh(*PCNACYCLE, "evaluate-tracks", "--pred", run, "--gt", f"{args.gowt1}_GT", "--output", tracks)
            record = json.loads((run / "run.json").read_text())
            scale_keys = ("trained_nucleus_diameter_px", "movie_nucleus_diameter_px", "scale", "scale_note")
            scores["gowt1" + suffix] = {"tracks": json.loads((tracks / "track_eval.json").read_text()),
                               "scale": {k: record.get(k) for k in scale_keys},
                               "matching": matching_f1(run, Path(f"{args.gowt1}_GT"))}
        if name != "stage1":
            sim = where / "sim_random_test"
            if not (sim / "eval.json").exists():
                sh(*PCNACYCLE, "evaluate", "--quiet", "--config", model / "config.yaml", "--weights", model,
                   "--split", "all", "--output", sim, "DATASETS.ROOT", out / "sim_random_test" / "annotated")
            scores["sim_random_test"] = json.loads((sim / "eval.json").read_text())
        if args.pcnadeep_figure:
            scores["pcnadeep_panel"] = pcnadeep_panel_scores(model, args.pcnadeep_figure)
    path = out / ("results" + ("" if args.models == MODELS else "_" + "_".join(labels[n] for n in args.models))
                  + ("_gowt1_given" if args.gowt1_diameter else "") + ".json")
    path.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
