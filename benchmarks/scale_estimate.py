"""The blind nucleus-size estimate on inputs of known size: the plain median of detections, and as shipped (issue 12).

For each model and input, :func:`pcnacycle.engine.scale.input_scale` is
called as ``run`` calls it (three frames spread over the movie, no diameter
given, detections under ``RunSettings().min_area`` left out) twice: with every
detection measured (``nucleus_areas`` keeping all: the estimate until
2026-11-29) and as shipped (detections under half the area-weighted median
diameter are not taken for nuclei; the search on shrunk frames in both).
Scored against the true median equivalent diameter of each input's nuclei
(ground-truth masks): the factor chosen against the ideal one (trained /
true diameter), as their ratio (1.00 is exact; ``run`` leaves sizes within
10–20 % alone).

Inputs: CTC Fluo-N2DH-GOWT1 02 (real, nuclei about 63 px; truth: 02_GT/SEG), with ``--biolapse DIR``
the two real PCNA fields of Biolapse (``benchmarks/real_pcna.py`` extracts them into
``OUT/biolapse``; truth: their masks' connected regions),
CTC Fluo-N2DH-SIM+ 01 (simulated by the CTC, not by us; truth: 01_GT/SEG), and
our simulator with texture scaled to the nucleus (``scale_texture``) at four
nucleus radii none of which is its default (11 px), other seeds than any
model was trained on.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/scale_estimate.py \\
        --models demo-output/train bench-out/transfer/stage3_from_stage1 bench-out/stage1_cpu \\
        [--ctc ../shared/data/ctc] [--biolapse bench-out/real_pcna/biolapse] [--json bench-out/scale_estimate.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from pcnacycle.engine import scale as scale_module
from pcnacycle.engine.predictor import Predictor
from pcnacycle.settings import RunSettings, median_diameter
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie

RADII = (6.0, 16.0, 24.0, 32.0)


def ctc_input(sequence: Path, truth: Path) -> tuple[list[np.ndarray], float]:
    files = sorted(sequence.glob("t*.tif"))
    frames = [tifffile.imread(files[i]).astype(np.float32) for i in np.linspace(0, len(files) - 1, 3).astype(int)]
    areas = np.concatenate([np.bincount(tifffile.imread(f).ravel())[1:] for f in sorted(truth.glob("man_seg*.tif"))])
    return frames, median_diameter(areas)


def biolapse_input(folder: Path, name: str) -> tuple[list[np.ndarray], float]:
    from real_pcna import field

    frames, reference = field(folder, name)
    chosen = [frames[i].astype(np.float32) for i in np.linspace(0, len(frames) - 1, 3).astype(int)]
    return chosen, median_diameter(np.concatenate([np.bincount(labels.ravel())[1:] for labels in reference]))


def simulated_input(radius: float, seed: int) -> tuple[list[dict], float]:
    size = int(min(1024, max(384, radius * 24)))
    movie = simulate_movie(SimulationParams(frames=3, size=(size, size), cells=30, seed=seed, nucleus_radius=radius,
                                            scale_texture=True))
    areas = np.concatenate([np.bincount(movie.labels[t].ravel())[1:] for t in range(3)])
    return [{"pcna": movie.pcna[t], "dic": movie.dic[t]} for t in range(3)], median_diameter(areas)


def as_channels(frame, names) -> dict:
    if isinstance(frame, dict):
        return {name: frame.get(name, frame["pcna"]) for name in names}
    return {name: frame for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--ctc", type=Path, default=Path("../shared/data/ctc"))
    parser.add_argument("--biolapse", type=Path, help="Biolapse as benchmarks/real_pcna.py extracts it")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    inputs = {
        "GOWT1 02 (real)": ctc_input(args.ctc / "Fluo-N2DH-GOWT1/02", args.ctc / "Fluo-N2DH-GOWT1/02_GT/SEG"),
        "SIM+ 01 (CTC's simulator)": ctc_input(args.ctc / "Fluo-N2DH-SIM+/01", args.ctc / "Fluo-N2DH-SIM+/01_GT/SEG"),
    }
    if args.biolapse:
        for field in ("Train", "Test"):
            inputs[f"Biolapse {field.lower()} field (real PCNA)"] = biolapse_input(args.biolapse, field)
    for i, radius in enumerate(RADII):
        inputs[f"ours, radius {radius:g} px"] = simulated_input(radius, seed=900 + i)
    shipped = scale_module.nucleus_areas
    min_area = RunSettings().min_area
    rows = []
    for model in args.models:
        predictor = Predictor(model)
        trained = float(predictor.cfg.INPUT.NUCLEUS_DIAMETER)
        names = set(predictor.cfg.INPUT.CHANNELS) | {"pcna"}
        for name, (frames, truth) in inputs.items():
            samples = [as_channels(frame, names) for frame in frames]
            own = scale_module.model_resize_factor(predictor.cfg, *next(iter(samples[0].values())).shape)
            row = {"model": model, "input": name, "true_diameter_px": round(truth, 1),
                   "trained_diameter_px": round(trained, 1), "ideal_factor": round(trained / truth, 3)}
            for rule, measure in (("plain median", lambda areas: np.asarray(areas, np.float64)), ("now", shipped)):
                scale_module.nucleus_areas = measure
                started = time.perf_counter()
                factor, info = scale_module.input_scale(predictor, samples, min_area=min_area)
                factor = own if factor is None else factor
                row[rule] = {"measured_px": info.get("movie_nucleus_diameter_px"), "factor": round(factor, 3),
                             "factor_over_ideal": round(factor / (trained / truth), 2),
                             "reliable": info.get("estimate_reliable"), "note": info.get("scale_note"),
                             "seconds": round(time.perf_counter() - started, 1)}
            scale_module.nucleus_areas = shipped
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
