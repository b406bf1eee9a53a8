"""Track and resolve a finished run's detections again with today's code, and score the result (CTC metrics).

A tracker or resolver change measured on the same detections, without running the model again: the run's
``objects.csv`` (one row per nucleus, its model probabilities and measurements) and ``masks.tif`` (labelled
by the run's track ids) are read, every row forgets its track, and :func:`pcnacycle.pipeline.analyse`
links and resolves them anew with :class:`~pcnacycle.settings.RunSettings` defaults (or ``--settings``).
The CTC result goes to ``OUT/ctc`` and is scored by ``evaluate-tracks`` against ``--gt`` (a CTC GT folder,
e.g. ``../shared/data/ctc/Fluo-N2DH-GOWT1/02_GT``, or a ``pcnacycle simulate`` folder).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/retrack.py RUN --gt GT --out OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import tifffile

from pcnacycle.evaluation.tracks import evaluate_tracks
from pcnacycle.pipeline import analyse
from pcnacycle.settings import RunSettings
from pcnacycle.tracking.tracker import write_ctc

#: Columns that tracking and resolving wrote; everything else is what the detector measured.
TRACKING_COLUMNS = ["track", "parent", "phase", "arrested", "fixed_phase", "lineage_fixed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a pcnacycle run folder")
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE", help="RunSettings changes")
    args = parser.parse_args()
    import yaml

    summary = json.loads((args.run / "run.json").read_text())
    objects = pd.read_csv(args.run / "objects.csv")
    # masks.tif is labelled by the run's track ids, one nucleus per id in a frame: that id is the detection's label
    detections = objects.drop(columns=[c for c in TRACKING_COLUMNS if c in objects]).assign(label=objects["track"])
    settings = RunSettings(**{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.settings)})
    tracked, _, result = analyse(detections, summary["frame_interval"], settings, summary["class_names"])
    masks = tifffile.imread(args.run / "masks.tif")
    write_ctc(tracked, list(masks), args.out / "ctc")
    scores = evaluate_tracks(args.out, args.gt, output=args.out)
    line = {k: round(v, 4) for k, v in scores["ctc"].items() if k in ("TRA", "DET", "LNK", "BC(0)")}
    line["divisions"] = result.get("divisions")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
