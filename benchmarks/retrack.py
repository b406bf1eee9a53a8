"""Track and resolve a finished run's detections again with today's code, and score the result (CTC metrics).

A tracker or resolver change measured on the same detections, without running the model again: the run's
``objects.csv`` (one row per nucleus, its model probabilities and measurements) and ``masks.tif`` (labelled
by the run's track ids) are read, every row forgets its track, and :func:`pcnacycle.pipeline.analyse`
links and resolves them anew with :class:`~pcnacycle.settings.RunSettings` defaults (or ``--settings``).
A ``score_threshold`` above the earlier run's drops the detections scoring below it first (their masks
too), as ``pcnacycle run`` would have; one below it cannot bring back what the run never kept.
``OUT`` gets a run's outputs (``objects.csv``, ``phases.csv``, ``masks.tif``, ``ctc/``, ``run.json``),
scored by ``evaluate-tracks`` against ``--gt`` (a CTC GT folder, e.g.
``../shared/data/ctc/Fluo-N2DH-GOWT1/02_GT``, or a ``pcnacycle simulate`` folder; ``--report`` prints its
report, phases included for the latter).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/retrack.py RUN --gt GT --out OUT [--report]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.evaluation.tracks import evaluate_tracks, format_report
from pcnacycle.pipeline import analyse, write_outputs
from pcnacycle.settings import RunSettings
from pcnacycle.tracking.detections import border_labels

#: Columns that tracking and resolving wrote; everything else is what the detector measured.
TRACKING_COLUMNS = ["track", "parent", "phase", "arrested", "fixed_phase", "lineage_fixed"]


def track_again(earlier_run: Path, run_dir: Path, settings: RunSettings) -> dict:
    """Link and resolve ``earlier_run``'s detections anew; write a run's tables, masks and CTC result to ``run_dir``.

    ``masks.tif`` is labelled by the earlier run's track ids, one nucleus per id in a frame, so that id is
    each detection's label. Returns the summary :func:`pcnacycle.pipeline.analyse` gives, as written to
    ``run_dir/run.json``.
    """
    summary = json.loads((earlier_run / "run.json").read_text())
    objects = pd.read_csv(earlier_run / "objects.csv")
    detections = objects.drop(columns=[c for c in TRACKING_COLUMNS if c in objects]).assign(label=objects["track"])
    masks = tifffile.imread(earlier_run / "masks.tif")
    if "edge" not in detections:  # runs before 2026-11-30 did not write it: read it off the masks
        edge = pd.concat([pd.DataFrame({"frame": t, "label": border_labels(m)}) for t, m in enumerate(masks)])
        detections["edge"] = pd.MultiIndex.from_frame(detections[["frame", "label"]]).isin(
            pd.MultiIndex.from_frame(edge.astype(np.int64)))
    kept_from = summary.get("settings", {}).get("score_threshold", RunSettings().score_threshold)
    if settings.score_threshold < kept_from:
        raise SystemExit(f"{earlier_run}: score_threshold {settings.score_threshold} is below the "
                         f"{kept_from} the run kept detections from")
    detections = detections[detections["score"] >= settings.score_threshold]
    tracked, durations, result = analyse(detections, summary["frame_interval"], settings, summary["class_names"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(run_dir, tracked, durations, masks, summary["frame_interval"],
                  summary["class_names"])
    result.update(frame_interval=summary["frame_interval"], settings=settings.to_dict(),
                  tracked_again_from=str(earlier_run))
    (run_dir / "run.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a pcnacycle run folder")
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE", help="RunSettings changes")
    parser.add_argument("--report", action="store_true", help="also print evaluate-tracks' report (phases too, "
                                                                "when --gt is a pcnacycle simulate folder)")
    args = parser.parse_args()
    import yaml

    settings = RunSettings(**{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.settings)})
    result = track_again(args.run, args.out, settings)
    scores = evaluate_tracks(args.out, args.gt, output=args.out)
    line = {k: round(v, 4) for k, v in scores["ctc"].items() if k in ("TRA", "DET", "LNK", "BC(0)")}
    line["divisions"] = result.get("divisions")
    print(json.dumps(line))
    if args.report:
        print(format_report(scores))


if __name__ == "__main__":
    main()
