"""The ``pcnacycle`` command: a thin shell over the Python API.

Every sub-command parses its arguments, calls one API function and turns a
:class:`~pcnacycle.errors.PcnacycleError` into a one-line message and exit
status 2 (no traceback: the message already names what to fix).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import PcnacycleError

OVERRIDES_HELP = ("config overrides as KEY VALUE pairs, together, before or after the options, e.g. "
                  "SOLVER.MAX_ITER 100 SOLVER.STEPS '[50]'")
ONNX_HELP = ("run the backbone, FPN and RPN head with ONNX Runtime from this file, which pcnacycle export-onnx "
             "wrote from --weights (CPU; about 1.3x faster on that part)")
#: For commands that only run a trained model, overrides of the inference keys make sense.
INFERENCE_OVERRIDES_HELP = ("overrides of --config as KEY VALUE pairs, e.g. TEST.DETECTIONS_PER_IMAGE 400 "
                            "INPUT.MIN_SIZE_TEST 180")


def _cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .engine.trainer import train

    cfg = load_config(args.config, args.opts)
    final = train(cfg, args.output, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, once, not once per process
        print(final)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .config import load_config
    from .evaluation.evaluator import evaluate, format_evaluation

    results = evaluate(load_config(args.config, args.opts), args.weights, split=args.split, output=args.output,
                       progress=not args.quiet, split_file=args.split_file, class_agnostic=args.class_agnostic,
                       nucleus_diameter=args.nucleus_diameter, rescale=not args.no_rescale,
                       scale_per_image=args.scale_per_image)
    print(format_evaluation(results))


def _cmd_simulate(args: argparse.Namespace) -> None:
    from .settings import parse_phase_minutes
    from .simulation.simulator import simulate, simulate_movies

    extra = {}
    for phase, minutes in (parse_phase_minutes(args.phase_minutes) if args.phase_minutes else {}).items():
        if phase not in ("G1", "S", "G2", "M"):
            raise PcnacycleError(f"--phase-minutes: unknown phase {phase!r}; use G1, S, G2, M")
        extra[f"{phase.lower()}_minutes"] = (minutes, minutes / 10)  # sd: a tenth of the mean
    if args.nucleus_radius is not None:
        if args.randomise:
            raise PcnacycleError("--nucleus-radius: not with --randomise, which draws the nucleus size")
        extra["nucleus_radius"] = args.nucleus_radius
    if args.scale_texture:
        extra["scale_texture"] = True
    common = dict(frames=args.frames, size=tuple(args.size), cells=args.cells, seed=args.seed,
                  frame_interval=args.frame_interval, annotated_frames=args.annotated_frames, jitter=args.jitter,
                  arrested_fraction=args.arrested_fraction, overwrite=args.overwrite, progress=not args.quiet,
                  randomise=args.randomise, **extra)
    if args.movies == 1:
        out = simulate(args.output, **common)
    else:
        out = simulate_movies(args.output, args.movies, **common)
    print(out)


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    print(run_demo(args.output, overwrite=args.overwrite, progress=not args.quiet,
                   randomise_training=args.randomise_training).resolve())


def _optional_config(args: argparse.Namespace):
    """``--config`` with its overrides, or None to use the config saved in the checkpoint."""
    from .config import load_config

    if args.opts and not args.config:
        raise PcnacycleError("config overrides need --config (without it the checkpoint's own config is used)")
    return load_config(args.config, args.opts) if args.config else None


def _cmd_annotate(args: argparse.Namespace) -> None:
    from .annotate import preannotate

    cfg = _optional_config(args)
    for path in preannotate(args.weights, args.images, args.output, cfg=cfg, fmt=args.format,
                            overwrite=args.overwrite, nucleus_diameter=args.nucleus_diameter,
                            rescale=not args.no_rescale).values():
        print(path)


def _cmd_run(args: argparse.Namespace) -> None:
    from .pipeline import run
    from .settings import load_settings, parse_phase_minutes

    cfg = _optional_config(args)
    settings = load_settings(
        args.settings, score_threshold=args.score_threshold, min_area=args.min_area,
        exclude_border=True if args.exclude_border else None, max_distance=args.max_distance, max_gap=args.max_gap,
        division_distance=args.division_distance, symmetry_tolerance=args.symmetry_tolerance,
        min_mitosis_probability=args.min_mitosis_probability,
        phase_minutes=parse_phase_minutes(args.phase_minutes) if args.phase_minutes else None,
        estimate_durations=False if args.fixed_durations else None, nucleus_diameter=args.nucleus_diameter,
        rescale=False if args.no_rescale else None)
    predictor = None
    if args.onnx:
        from .engine.predictor import Predictor

        predictor = Predictor(args.weights, cfg, onnx=args.onnx)
    out = run(args.weights, args.pcna, args.output, dic=args.dic, frame_interval=args.frame_interval, cfg=cfg,
              pcna_channel=args.pcna_channel, dic_channel=args.dic_channel, z_project=args.z_project,
              settings=settings, overwrite=args.overwrite, progress=not args.quiet, predictor=predictor)
    print(out)


def _cmd_export_onnx(args: argparse.Namespace) -> None:
    from .engine.predictor import export_onnx

    result = export_onnx(args.weights, args.output, cfg=_optional_config(args), overwrite=args.overwrite)
    print(f"{result['output']} (ONNX Runtime against PyTorch: largest difference {result['max_difference']:.2g})")


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .settings import load_settings

    results = run_batch(args.weights, args.manifest, args.output, workers=args.workers, scheduler=args.scheduler,
                        settings=load_settings(args.settings), onnx=args.onnx,
                        progress=not args.quiet)
    failed = [r for r in results.values() if r["status"] == "failed"]
    for result in failed:
        print(f"failed: {result['movie']}: {result['error']}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} movie(s) finished; summaries in {args.output}")
    return 1 if failed else 0


def _cmd_evaluate_tracks(args: argparse.Namespace) -> None:
    from .evaluation.tracks import evaluate_tracks, format_report

    print(format_report(evaluate_tracks(args.pred, args.gt, output=args.output)))


def _cmd_correct(args: argparse.Namespace) -> None:
    from .correct import correct_run

    print(correct_run(args.run_dir, args.edits, output=args.output, in_place=args.in_place,
                      overwrite=args.overwrite, progress=not args.quiet))


def _add_correct(commands) -> None:
    p = commands.add_parser("correct", help="apply edits (split, join, parent, phase, delete...) to a run",
                            description="Apply the edits of a YAML file to a run folder, resolve phases and "
                                        "durations again with the corrections as hard constraints and the run's "
                                        "own settings, and write a complete corrected run (masks.tif, objects.csv, "
                                        "phases.csv, ctc/, timeline.png, run.json, log.txt) plus edits.yaml. "
                                        "Edits: split {track, frame}, join {track, onto}, parent {track, mother}, "
                                        "orphan {track}, phase {track, first, last, phase}, delete {track[, first, "
                                        "last]}, merge {frame, labels: [a, b]}, relabel {frame, label, track}; see "
                                        "README 'Correcting a run'. A bad edit is refused, naming it, and nothing "
                                        "is written.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder written by pcnacycle run (or an earlier correct)")
    p.add_argument("--edits", required=True, help="YAML file: a mapping with key 'edits', a list of {op: ...}")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="new folder for the corrected run; RUN_DIR is not touched")
    where.add_argument("--in-place", action="store_true",
                       help="replace RUN_DIR atomically; the previous version, with everything in it, is kept "
                            "beside it as RUN_DIR.before-YYYYmmdd-HHMMSS")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_correct)


def _cmd_convert_weights(args: argparse.Namespace) -> None:
    from .config import load_config
    from .modeling.convert_weights import convert_detectron2, layout_from_options

    layout = layout_from_options(args.pcnadeep, args.classes, args.channels, args.fold, args.pixel_mean,
                                 args.pixel_std, args.detectron2_config)
    base = load_config(args.config) if args.config else None
    print(convert_detectron2(args.source, args.output, layout=layout, base=base, overrides=args.opts))


def _scale_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--nucleus-diameter and --no-rescale, as run has them."""
    p.add_argument("--nucleus-diameter", type=float, metavar="PX",
                   help=f"the {what}' nucleus diameter in pixels (default: measured on the model's detections); "
                        "they are resized so nuclei look the size the model was trained on")
    p.add_argument("--no-rescale", action="store_true", help=f"keep the {what} at their own size")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcnacycle",
        description="Segment nuclei and call PCNA cell-cycle phases with Mask R-CNN; track cells; "
                    "report phase durations.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train Mask R-CNN from a config",
                            description="Train Mask R-CNN. Outputs: config.yaml, split.json, metrics.jsonl, "
                                        "model_*.pt, model_final.pt, last_checkpoint, loss_curve.png, log.txt.")
    p.add_argument("--config", required=True, help="YAML file, or a shipped config name such as stage1_dsb2018_cpu")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help=OVERRIDES_HELP)
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("evaluate", help="COCO AP, phase confusion and matching scores of a model",
                            description="Score a model on a dataset split with pycocotools (bbox and segm AP, "
                                        "AP50, AP75, APs, APm, APl, per class), the phase confusion matrix and "
                                        "the StarDist/Cellpose matching score. Writes eval.json, confusion.csv, "
                                        "confusion.png and matching.csv to --output.")
    p.add_argument("--config", required=True, help="YAML file (e.g. a training run's config.yaml) or shipped name")
    p.add_argument("--weights", required=True, help="checkpoint file, or a training folder (its model_final.pt)")
    p.add_argument("--split", default="val", choices=["val", "train", "all"],
                   help="val/train: ids from split.json beside the weights; all: every image of DATASETS.ROOT")
    p.add_argument("--split-file", help="split.json to take the ids from (default: the one beside the weights)")
    p.add_argument("--class-agnostic", action="store_true",
                   help="score nuclei whatever their class (e.g. a phase model on nuclei annotated without phases)")
    p.add_argument("--output", help="folder for the reports (none written without it)")
    _scale_arguments(p, "images")
    p.add_argument("--scale-per-image", action="store_true",
                   help="resize each image by its own annotated nucleus size, not one factor for the split "
                        "(for datasets of many magnifications, such as DSB2018)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help=OVERRIDES_HELP)
    p.set_defaults(func=_cmd_evaluate)

    p = commands.add_parser("run", help="segment, classify, track and resolve a PCNA movie",
                            description="From a PCNA movie (and DIC) to per-cell phase durations. Writes masks.tif, "
                                        "objects.csv, phases.csv, ctc/ (res_track.txt + masks), timeline.png, "
                                        "run.json and log.txt to --output.")
    p.add_argument("--weights", required=True, help="checkpoint file, or a training folder (its model_final.pt)")
    p.add_argument("--pcna", required=True, help="PCNA movie: TIFF/OME-TIFF T×H×W, T×C×H×W, or one frame")
    p.add_argument("--dic", help="DIC/bright-field movie of the same shape (when the model takes one)")
    p.add_argument("--pcna-channel", type=int, help="channel index of PCNA in a multichannel stack")
    p.add_argument("--dic-channel", type=int, help="channel index of DIC (in --dic, or else in --pcna)")
    p.add_argument("--z-project", choices=("max", "mean", "sharpest"),
                   help="how the focal planes of a z-stack (T Z Y X, T C Z Y X) become one frame (default: max; "
                        "sharpest: the plane most in focus); given for a Z-only stack, its planes are one time point")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--frame-interval", type=float, help="minutes between frames (default: file metadata, else 10)")
    p.add_argument("--config", help="config to use instead of the one saved in the checkpoint")
    p.add_argument("--settings", help="YAML/JSON of run settings (pcnacycle.settings.RunSettings), or an earlier "
                                      "run's run.json; the options below override it")
    p.add_argument("--nucleus-diameter", type=float, metavar="PX",
                   help="the movie's nucleus diameter in pixels (default: measured on the model's detections); frames "
                        "are resized so nuclei look the size the model was trained on")
    p.add_argument("--no-rescale", action="store_true", help="keep frames at their own size")
    p.add_argument("--score-threshold", type=float, help="least detection score (default 0.7)")
    p.add_argument("--min-area", type=int, help="least nucleus area in pixels (default 20)")
    p.add_argument("--exclude-border", action="store_true", help="drop nuclei touching the frame edge")
    p.add_argument("--max-distance", type=float,
                   help="tracking reach in pixels per frame (default: 1 nucleus diameter, measured on the movie)")
    p.add_argument("--max-gap", type=int, help="frames a nucleus may be missed (default 2)")
    p.add_argument("--division-distance", type=float,
                   help="largest mother-to-daughter distance in pixels (default: 1.5 nucleus diameters; 0: none)")
    p.add_argument("--symmetry-tolerance", type=float,
                   help="accept a division without M evidence when the mother lies within this fraction of the "
                        "daughters' separation from their midpoint (default 0.6)")
    p.add_argument("--min-mitosis-probability", type=float,
                   help="accept a division whose cells reach this M probability around it (default 0.5)")
    p.add_argument("--phase-minutes", metavar="G1=M,S=M,G2=M,M=M",
                   help="expected phase durations in minutes, the resolver's prior (default G1=660,S=480,G2=240,M=60)")
    p.add_argument("--fixed-durations", action="store_true",
                   help="keep --phase-minutes as given instead of re-estimating them from the movie")
    p.add_argument("--onnx", metavar="FILE", help=ONNX_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help=INFERENCE_OVERRIDES_HELP)
    p.set_defaults(func=_cmd_run)

    p = commands.add_parser("batch", help="run many movies (a CSV manifest) on Dask and summarise them",
                            description="Run every movie of --manifest into OUTPUT/<movie>/ (an ordinary run "
                                        "folder) on a local Dask cluster or an existing scheduler, then write "
                                        "OUTPUT/summary.csv (one row per cell), summary_by_condition.csv and .png. "
                                        "Running it again skips finished movies and retries the others. Exit "
                                        "status: 0 when every movie finished, 1 when any movie failed (each is "
                                        "listed with its error), 2 for bad input (nothing is run). Needs "
                                        'pip install "pcnacycle[batch]".')
    p.add_argument("--weights", required=True, help="checkpoint file, or a training folder (its model_final.pt)")
    p.add_argument("--manifest", required=True,
                   help="CSV with columns movie (unique name), pcna and optionally dic, frame_interval (minutes), "
                        "condition, and any others (carried into the summaries); paths relative to the CSV's folder")
    p.add_argument("--output", required=True, help="folder for the run folders and summaries")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int,
                       help="worker processes of the local cluster (default: one per two cores); each loads the "
                            "model once and runs one movie at a time on its share of the cores")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (a dask-jobqueue cluster)")
    p.add_argument("--settings", help="run settings YAML (as for run --settings), the same for every movie")
    p.add_argument("--onnx", metavar="FILE", help=ONNX_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_batch)

    p = commands.add_parser("export-onnx", help="export a model's convolutions to ONNX, for run --onnx",
                            description="Export the backbone, FPN and RPN head of a checkpoint (three quarters of "
                                        "the time per frame on a CPU) to one ONNX file, which run --onnx and batch "
                                        "--onnx execute with ONNX Runtime (the rest stays in PyTorch). The file "
                                        "takes frames of any size and records which checkpoint it belongs to; its "
                                        "outputs are checked against PyTorch's before it is written. Needs "
                                        'pip install "pcnacycle[onnx]".')
    p.add_argument("--weights", required=True, help="checkpoint file, or a training folder (its model_final.pt)")
    p.add_argument("--output", help="ONNX file to write (default: the checkpoint's path ending in .onnx)")
    p.add_argument("--config", help="config to use instead of the one saved in the checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help=INFERENCE_OVERRIDES_HELP)
    p.set_defaults(func=_cmd_export_onnx)

    p = commands.add_parser("evaluate-tracks", help="CTC tracking metrics, phase accuracy and duration errors",
                            description="Score tracks against ground truth with py-ctcmetrics (TRA, DET, SEG, LNK, "
                                        "CT, TF, BC, CCA) and, when both sides carry phases, the per-frame phase "
                                        "accuracy, phase confusion and phase-duration errors. Writes "
                                        "track_eval.json to --output.")
    p.add_argument("--pred", required=True, help="pcnacycle run folder (CTC results in ctc/) or a CTC result folder")
    p.add_argument("--gt", required=True, help="CTC ground-truth folder (TRA/, SEG/) or a pcnacycle simulate folder")
    p.add_argument("--output", help="folder for track_eval.json (none written without it)")
    p.set_defaults(func=_cmd_evaluate_tracks)

    _add_correct(commands)

    p = commands.add_parser("simulate", help="simulate a PCNA/DIC time-lapse movie with full ground truth",
                            description="Write pcna.tif, dic.tif, truth/ (labels, objects, tracks, phase "
                                        "durations, CTC layout) and annotated/ (frames the trainer reads).")
    p.add_argument("--output", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"), help="frame size")
    p.add_argument("--cells", type=int, default=40, help="cells in the first frame (default 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--frame-interval", type=float, default=10.0, help="minutes between frames (default 10)")
    p.add_argument("--annotated-frames", type=int,
                   help="frames written to annotated/ (default 25, or all of a shorter movie)")
    p.add_argument("--jitter", type=float, default=0.0, help="stage jitter between frames, pixels (default 0)")
    p.add_argument("--arrested-fraction", type=float, default=0.0, help="fraction of arrested cells (default 0)")
    p.add_argument("--phase-minutes", metavar="G1=M,S=M,G2=M,M=M",
                   help="mean phase durations in minutes, sd a tenth of each (default G1=540,S=420,G2=210,M=52)")
    p.add_argument("--nucleus-radius", type=float, help="equivalent radius of a G1 nucleus in pixels (default 11)")
    p.add_argument("--scale-texture", action="store_true",
                   help="foci and nucleoplasm grain scale with --nucleus-radius, as under another objective "
                        "(default: they stay in pixels, as in earlier movies)")
    p.add_argument("--randomise", action="store_true",
                   help="draw the movie's look (nucleus size and shape, texture, foci, mitosis, camera, debris) "
                        "from ranges that span real microscopes, seeded by --seed; simulation.json records them")
    p.add_argument("--movies", type=int, default=1,
                   help="simulate this many movies (seeds SEED, SEED+1, ...) in OUTPUT/movie_<seed>/ and pool their "
                        "annotated frames in OUTPUT/annotated/ for training; with --randomise each draws its own look "
                        "(default 1: one movie in OUTPUT)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier simulation in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_simulate)

    p = commands.add_parser("annotate", help="pre-annotate images with a model (VIA 2 and COCO JSON)",
                            description="Run a model on images and write its nuclei and phases as VIA 2 "
                                        "(via_region_data.json) and COCO (coco_annotations.json) annotations, to "
                                        "correct in an annotation tool and train on with DATASETS.FORMAT via2 or "
                                        "coco.")
    p.add_argument("--weights", required=True, help="checkpoint file, or a training folder (its model_final.pt)")
    p.add_argument("--images", required=True, nargs="+",
                   help="image files of the annotated channel (pcna or gray), all in one folder; other channels "
                        "(e.g. dic) are found as the readers find them")
    p.add_argument("--output", required=True, help="folder for the annotation files")
    p.add_argument("--config", help="YAML file or shipped name; default: the config saved in the checkpoint")
    p.add_argument("--format", nargs="+", default=["via2", "coco"], choices=["via2", "coco"],
                   help="annotation formats to write (default: both)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace annotation files already in --output (refused by default: they may hold your "
                        "corrections)")
    _scale_arguments(p, "images")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help=INFERENCE_OVERRIDES_HELP)
    p.set_defaults(func=_cmd_annotate)

    p = commands.add_parser("convert-weights", help="a detectron2 Mask R-CNN checkpoint (e.g. pcnaDeep's) as ours",
                            description="Convert a detectron2 R50/R101-FPN Mask R-CNN checkpoint (.pth or .pkl) to a "
                                        "pcnacycle checkpoint OUTPUT (.pt) with config.yaml beside it: tensor names, "
                                        "class order and input channels mapped, BatchNorm frozen, and detectron2's "
                                        "preprocessing, anchors and RoIAlign recorded in the config.")
    p.add_argument("source", help="detectron2 checkpoint (.pth or .pkl)")
    p.add_argument("output", help="pcnacycle checkpoint to write (.pt); config.yaml is written beside it")
    p.add_argument("--pcnadeep", action="store_true",
                   help="pcnaDeep's layout: classes G1/G2 S M E with E folded into G1/G2, channels pcna pcna dic")
    p.add_argument("--classes", nargs="+", metavar="NAME", help="the checkpoint's class names, in its order")
    p.add_argument("--channels", nargs="+", metavar="NAME",
                   help="pcnacycle channel name of each input channel of the checkpoint, in order (e.g. pcna pcna dic)")
    p.add_argument("--fold", nargs="+", metavar="NAME=CLASS", help="count class NAME as CLASS (e.g. E=G1/G2)")
    p.add_argument("--pixel-mean", nargs="+", type=float, metavar="V",
                   help="per input channel, 0-255 scale (default detectron2's 103.53 116.28 123.675)")
    p.add_argument("--pixel-std", nargs="+", type=float, metavar="V", help="per input channel (default 1 1 1)")
    p.add_argument("--detectron2-config", metavar="YAML",
                   help="the model's detectron2 config: its pixel mean/std, stride placement, anchors, poolers, "
                        "test size and thresholds are recorded (e.g. pcnaDeep's config/dtrnCfg.yaml)")
    p.add_argument("--config", help="config whose CLASS_NAMES, INPUT.CHANNELS and test settings the model follows")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE",
                   help="config values for the converted model, applied last, given right after OUTPUT, e.g. "
                        "INPUT.MIN_SIZE_TEST 0")
    p.set_defaults(func=_cmd_convert_weights)

    p = commands.add_parser("demo", help="simulate, train, evaluate and report, with nothing but this package",
                            description="The main job on an embedded default: about 10 minutes on 2 CPU cores. "
                                        "Writes OUTPUT/report.html and prints its path.")
    p.add_argument("--output", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --output")
    p.add_argument("--randomise-training", action="store_true",
                   help="draw the training movie's look from the simulator's randomisation ranges "
                        "(see simulate --randomise); the test movie stays the default one")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)  # a command may report partial failure (batch: 1)
    except PcnacycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        from .safeguards import os_error_message

        # a full disk or a folder turned read-only mid-way is the machine's trouble, not a bug: one line
        message = os_error_message(exc, getattr(args, "output", None))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
