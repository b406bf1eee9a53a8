"""Division geometry measured on ground truth, in units of the movie's nucleus diameter.

For every true division (a mother track whose daughters start right after it
ends) this measures what ``pcnacycle run``'s division vetting and phase
resolver assume about a division:

* ``reach``: distance from the mother's last centroid to each daughter's
  first centroid, in nucleus diameters (the movie's median equivalent
  diameter over all masks);
* ``asymmetry``: distance from the mother's last centroid to the midpoint of
  her two daughters, divided by the daughters' separation (0 = perfectly
  symmetric);
* ``frame gap``: frames between the mother's last and the daughters' first frame;
* ``log area ratio``: log(daughter's first area / mother's area in her last
  frame), and the same for consecutive frames of one cell with no division
  between them (the null distribution the resolver compares against);
* ``step``: per-frame displacement of cells that do not divide, in diameters.

Sources: the Cell Tracking Challenge ground truths in ``../shared/data``
(Fluo-N2DH-GOWT1 02: real mouse ES cells; Fluo-N2DH-SIM+ 01: simulated HL60
nuclei from another simulator), and a pcnacycle simulation whose nucleus size,
motion and durations differ from the simulator's defaults.

Usage::

    .venv/bin/python benchmarks/division_geometry.py [--shared ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage import measure


def ctc_objects(tra: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Centroids and areas of every marker of a CTC TRA folder, and its track table."""
    tracks = pd.DataFrame(np.loadtxt(tra / "man_track.txt", dtype=np.int64, ndmin=2),
                          columns=["track", "first_frame", "last_frame", "parent"])
    rows = []
    for path in sorted(tra.glob("man_track*.tif")):
        frame = int(path.stem.replace("man_track", ""))
        labels = tifffile.imread(path).astype(np.int32)
        table = measure.regionprops_table(labels, properties=("label", "centroid", "area"))
        rows.append(pd.DataFrame({"frame": frame, "track": table["label"], "centroid_y": table["centroid-0"],
                                  "centroid_x": table["centroid-1"], "area": table["area"]}))
    return pd.concat(rows, ignore_index=True), tracks


def simulated_objects(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A pcnacycle simulation unlike the defaults: larger nuclei, faster motion, 15-minute frames."""
    from pcnacycle.simulation.params import SimulationParams
    from pcnacycle.simulation.simulator import simulate_movie

    params = SimulationParams(frames=90, size=(384, 384), cells=25, seed=seed, frame_interval=15.0,
                              nucleus_radius=15.0, speed=0.4, g1_minutes=(300.0, 40.0), s_minutes=(330.0, 40.0),
                              g2_minutes=(150.0, 20.0), m_minutes=(45.0, 5.0))
    movie = simulate_movie(params)
    return movie.objects[["frame", "track", "centroid_y", "centroid_x", "area"]], movie.tracks


def geometry(objects: pd.DataFrame, tracks: pd.DataFrame) -> dict:
    """The measurements of the module notes, as lists and summary quantiles."""
    diameter = float(np.median(2 * np.sqrt(objects["area"] / np.pi)))
    by_track = {t: g.sort_values("frame") for t, g in objects.groupby("track")}
    reach, asymmetry, gaps, division_ratio = [], [], [], []
    for mother, daughters in tracks[tracks["parent"] > 0].groupby("parent"):
        if mother not in by_track or len(daughters) != 2 or not all(d in by_track for d in daughters["track"]):
            continue
        last = by_track[mother].iloc[-1]
        firsts = [by_track[d].iloc[0] for d in daughters["track"]]
        points = np.array([[f["centroid_y"], f["centroid_x"]] for f in firsts])
        mother_point = np.array([last["centroid_y"], last["centroid_x"]])
        reach += list(np.linalg.norm(points - mother_point, axis=1) / diameter)
        separation = np.linalg.norm(points[0] - points[1])
        asymmetry.append(float(np.linalg.norm(points.mean(0) - mother_point) / max(separation, 1e-9)))
        gaps += [int(f["frame"] - last["frame"]) for f in firsts]
        division_ratio += [float(np.log(f["area"] / last["area"])) for f in firsts]
    steps, null_ratio = [], []
    for track in by_track.values():
        consecutive = np.diff(track["frame"].to_numpy()) == 1
        xy = track[["centroid_y", "centroid_x"]].to_numpy()
        steps += list(np.linalg.norm(np.diff(xy, axis=0), axis=1)[consecutive] / diameter)
        null_ratio += list(np.diff(np.log(track["area"].to_numpy(np.float64)))[consecutive])

    def quantiles(values):
        values = np.asarray(values, np.float64)
        if not len(values):
            return None
        return {q: round(float(np.quantile(values, p)), 3) for q, p in
                (("min", 0), ("q05", 0.05), ("median", 0.5), ("q95", 0.95), ("max", 1.0))} | {"n": int(len(values))}

    return {"diameter_px": round(diameter, 1), "divisions": len(asymmetry),
            "reach_diameters": quantiles(reach), "asymmetry": quantiles(asymmetry), "frame_gap": quantiles(gaps),
            "log_area_ratio_division": quantiles(division_ratio)
            | {"mean": round(float(np.mean(division_ratio)), 3), "sd": round(float(np.std(division_ratio)), 3)},
            "log_area_ratio_no_division": quantiles(null_ratio)
            | {"mean": round(float(np.mean(null_ratio)), 3), "sd": round(float(np.std(null_ratio)), 3)},
            "step_diameters": quantiles(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    for name, tra in (("GOWT1 02 (real)", args.shared / "ctc/Fluo-N2DH-GOWT1/02_GT/TRA"),
                      ("SIM+ 01 (CTC simulator)", args.shared / "ctc/Fluo-N2DH-SIM+/01_GT/TRA")):
        if tra.is_dir():
            results[name] = geometry(*ctc_objects(tra))
    results["pcnacycle simulator, r=15 px, 15-min frames"] = geometry(*simulated_objects())
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
