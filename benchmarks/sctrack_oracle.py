#!/usr/bin/env python3
"""Run SC-Track (pcnaDeep lab's successor resolver) on oracle detections.

Side-by-side baseline for pcnacycle: SC-Track gets exactly the same nuclei
(label images) and the same per-nucleus class calls (argmax of the oracle
probabilities) that pcnacycle gets, tracks them, resolves G1/S/G2/M, and this
script writes one row per nucleus that SC-Track keeps.

This script does NOT run with the project's virtual environment: SC-Track pins
nothing but pulls numba, opencv, pylibtiff, ...  Install it in its own venv:

    python3 -m venv /tmp/sctrack-venv && \
        /tmp/sctrack-venv/bin/pip install sc-track pandas tifffile

Installed and tested with: SC-Track 0.0.9 (PyPI "sc-track", import name
``SCTrack``), Python 3.11, pandas 3.1.1, numpy 2.4.6, opencv-python 5.0.0.93,
tifffile 2026.3.3.

Call it as:

    /tmp/sctrack-venv/bin/python benchmarks/sctrack_oracle.py \
        --input DIR --frame-interval MIN --output FILE.csv

DIR holds ``labels.tif`` (T,H,W label images, one label per nucleus per frame),
``pcna.tif`` (T,H,W PCNA movie; SC-Track's default pipeline only uses it for a
visualisation we do not export, so it is checked but not used) and
``oracle.csv`` (frame,label,p_G1/G2,p_S,p_M).  Output columns:
``frame,label,track,parent,phase``.

How SC-Track is fed
-------------------
SC-Track 0.0.9 accepts either a multi-frame mask TIFF or a VIA2-style JSON
dict ``{frame_name: {"filename", "size", "regions": [{"shape_attributes":
{"name": "polygon", "all_points_x", "all_points_y"}, "region_attributes":
{"phase" | "cell_type": ...}}]}}``, frames taken in key order (key index =
frame index).  Masks carry no class, so we build the JSON dict: every nucleus's
outline is taken exactly as ``SCTrack.utils.mask_to_coords`` does (all points
of cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE) of the label's binary
mask; computed on a padded bounding-box crop for speed, same points), and its
class is the argmax of the oracle probabilities written as SC-Track/pcnaDeep's
class names "G1/G2", "S", "M" (as in SC-Track's example annotation, where the
key is "phase"; we set both "phase" and "cell_type").  We also store our own
"label" key in region_attributes; SC-Track ignores it and we read it back from
each tracked cell's region to map results to (frame, label).

Tracking and phase resolution are SC-Track's own:
``SCTrack.reclassification.run_track`` (Tracker + per-tree TreeParser with the
default CLASS_NAME == ['G1','S','G2','M'], i.e. parse_mitosis / parse_s /
parse_g1_g2 / parse_mitosis_error, then relink_tree) called exactly as
``SCTrack.track.start_track`` -> ``reclassification.run`` does (track_range =
n_frames - 2).  The exported table is built by walking the parsed lineages the
way ``reclassification.track_tree_to_table`` does.  We do not call that
function itself: it uses ``DataFrame._append``, which pandas >= 3 removed, so
the stock CLI (``sctrack -a ...``) crashes at export with current pandas.

Settings: SC-Track's defaults (SCTrack.config), printed at run time.  SC-Track
has NO time/frame-interval setting: all its windows are in frames
(SMOOTH_WINDOW_LEN=10, PROB_THRESHOLD=0.6, FILTER_THRESHOLD=10 nodes per tree,
GAP_WINDOW_LEN=100, ENTER_DIVISION_THRESHOLD=50, hard-coded 3-frame M at the
start of daughters, mitosis_gap=20 ...).  --frame-interval is accepted and
printed only.

Output mapping
--------------
* track  = one integer per SC-Track cell (its ``cell_id`` "<tree>_<branch>",
  i.e. one cell between divisions), numbered 1..N in (tree id, branch id) order.
* parent = track of the mother cell for daughters (branch > 0), else 0.
* phase  = SC-Track's resolved ``cell_type``: "G1"->G1, "S"->S, "G2"->G2,
  "M"->M.  Frames SC-Track leaves as the unresolved input class "G1/G2" (its
  parser has branches that never relabel them, e.g. short lineages ending in
  mitosis with no S) are mapped to G2 if the same SC-Track cell has an S or
  G2 frame earlier, otherwise G1.  The count of such frames is printed.
* Rows SC-Track's own table would add for gaps (copies of the previous cell at
  frames where the track has no detection) have no label and are not written.
  Nuclei SC-Track drops (trees with <= FILTER_THRESHOLD nodes, polygons its
  parser rejects) are absent from the output; counts are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

CLASSES = ["G1/G2", "S", "M"]
PROB_COLUMNS = ["p_G1/G2", "p_S", "p_M"]
PHASE_MAP = {"G1": "G1", "S": "S", "G2": "G2", "M": "M"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="oracle folder (labels.tif, pcna.tif, oracle.csv)")
    p.add_argument("--frame-interval", type=float, required=True,
                   help="minutes per frame (printed only: SC-Track has no time setting)")
    p.add_argument("--output", required=True, help="output CSV: frame,label,track,parent,phase")
    p.add_argument("--raw-output", default=None,
                   help="optional CSV with SC-Track's own ids and phase names per row")
    return p.parse_args(argv)


def frame_regions(mask: np.ndarray, classes: dict, frame: int, template):
    """VIA regions for one label frame, outline points as SCTrack.utils.mask_to_coords."""
    from copy import deepcopy

    import cv2
    from scipy import ndimage

    regions = []
    objects = ndimage.find_objects(mask)
    for idx, sl in enumerate(objects):
        if sl is None:
            continue
        label = idx + 1
        y0 = max(sl[0].start - 1, 0)
        x0 = max(sl[1].start - 1, 0)
        y1 = min(sl[0].stop + 1, mask.shape[0])
        x1 = min(sl[1].stop + 1, mask.shape[1])
        binary = (mask[y0:y1, x0:x1] == label).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        xs, ys = [], []
        for contour in contours:
            for pt in contour:
                xs.append(int(pt[0][0]) + x0)
                ys.append(int(pt[0][1]) + y0)
        region = deepcopy(template.REGIONS_TMP)
        region["shape_attributes"]["all_points_x"] = xs
        region["shape_attributes"]["all_points_y"] = ys
        cls = classes.get((frame, label))
        region["region_attributes"]["cell_type"] = cls
        region["region_attributes"]["phase"] = cls
        region["region_attributes"]["label"] = int(label)
        regions.append(region)
    return regions


def build_annotation(labels: np.ndarray, classes: dict, basename: str = "pcna"):
    from SCTrack import template

    annotation = {}
    for t in range(labels.shape[0]):
        name = f"{basename}-{t:04d}.png"
        annotation[name] = {
            "filename": name,
            "size": int(labels.shape[1] * labels.shape[2]),
            "regions": frame_regions(labels[t], classes, t, template),
            "file_attributes": {},
        }
    return annotation


def export_rows(tracker):
    """Walk SC-Track's parsed lineages like reclassification.track_tree_to_table (real cells only)."""
    rows = []
    for tree, parser in tracker.parser_dict.items():
        for root in parser.root_parent_list:
            lineage = parser.lineage_dict.get(root)
            parent = lineage.get("parent")
            branch = lineage.get("branch_id")
            cells = lineage.get("cells")
            cell_id = cells[0].cell.cell_id
            parent_id = None
            if parent is not None and parent.cell.cell_id != cell_id:
                parent_id = parent.cell.cell_id
            for node in cells:
                c = node.cell
                region = c.region or {}
                label = region.get("region_attributes", {}).get("label")
                rows.append({
                    "frame": int(c.frame), "label": None if label is None else int(label),
                    "sctrack_track_id": tree.track_id, "sctrack_cell_id": c.cell_id,
                    "lineage_cell_id": cell_id, "branch": branch,
                    "sctrack_parent_cell_id": parent_id, "sctrack_phase": c.cell_type,
                })
    return rows


def main(argv=None):
    args = parse_args(argv)
    import pandas as pd
    import tifffile
    from SCTrack import config, reclassification

    version = metadata.version("sc-track")
    print(f"SC-Track version: {version}")
    print(f"frame interval: {args.frame_interval} min (not used: SC-Track has no time setting; "
          f"all its windows are in frames)")
    settings = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    print("SC-Track settings (SCTrack.config defaults, unchanged): "
          + json.dumps(settings, default=str))

    t0 = time.perf_counter()
    labels = tifffile.imread(os.path.join(args.input, "labels.tif"))
    if labels.ndim != 3:
        sys.exit(f"labels.tif must be (T, H, W), got {labels.shape}")
    labels = labels.astype(np.int64)
    pcna_path = os.path.join(args.input, "pcna.tif")
    if os.path.exists(pcna_path):
        with tifffile.TiffFile(pcna_path) as tif:
            pshape = tif.series[0].shape
        if tuple(pshape) != tuple(labels.shape):
            print(f"warning: pcna.tif shape {pshape} != labels.tif shape {labels.shape}")
    oracle = pd.read_csv(os.path.join(args.input, "oracle.csv"))
    probs = oracle[PROB_COLUMNS].to_numpy(dtype=float)
    arg = np.argmax(probs, axis=1)
    classes = {(int(f), int(label)): CLASSES[k]
               for f, label, k in zip(oracle["frame"], oracle["label"], arg)}

    present = set()
    for t in range(labels.shape[0]):
        for label in np.unique(labels[t]):
            if label:
                present.add((t, int(label)))
    missing = present - set(classes)
    if missing:
        print(f"warning: {len(missing)} nuclei in labels.tif have no oracle row; fed as 'G1/G2'")
        for key in missing:
            classes[key] = "G1/G2"
    n_in = len(present)
    print(f"input: {labels.shape[0]} frames, {n_in} nuclei; argmax classes fed: "
          + json.dumps({c: sum(1 for k in present if classes[k] == c) for c in CLASSES}))

    annotation = build_annotation(labels, classes)
    t_prep = time.perf_counter()

    # Exactly what reclassification.run() does before exporting.
    n_frames = len(annotation)
    track_range = n_frames - 2
    print(f"run_track(annotation, track_range={track_range}) "
          f"[as SCTrack.track.start_track -> reclassification.run]")
    # SC-Track prints tqdm bars; keep them but on stderr (tqdm default).
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="sctrack_") as work:
        os.chdir(work)  # nothing is written by run_track, but be safe
        try:
            tracker = reclassification.run_track(annotation, track_range=track_range)
        finally:
            os.chdir(cwd)
    t_track = time.perf_counter()

    raw = pd.DataFrame(export_rows(tracker))
    if raw.empty:
        raw = pd.DataFrame(columns=["frame", "label", "sctrack_track_id", "sctrack_cell_id",
                                    "lineage_cell_id", "branch", "sctrack_parent_cell_id",
                                    "sctrack_phase"])
    n_nolabel = int(raw["label"].isna().sum())
    raw = raw[raw["label"].notna()].copy()
    raw["label"] = raw["label"].astype(int)

    # One integer per SC-Track cell id ("<tree>_<branch>").
    def _key(cid):
        a, b = str(cid).split("_")
        return int(a), int(b)

    cell_ids = sorted(set(raw["lineage_cell_id"]) | set(raw["sctrack_parent_cell_id"].dropna()),
                      key=_key)
    track_of = {cid: i + 1 for i, cid in enumerate(cell_ids)}
    raw["track"] = raw["lineage_cell_id"].map(track_of).astype(int)
    raw["parent"] = raw["sctrack_parent_cell_id"].map(track_of).fillna(0).astype(int)

    # Resolve phase names.
    raw = raw.sort_values(["track", "frame"], kind="stable")
    phases = []
    n_unresolved = 0
    other = {}
    for _, grp in raw.groupby("track", sort=False):
        seen_s_or_g2 = False
        for ph in grp["sctrack_phase"]:
            if ph in PHASE_MAP:
                out = PHASE_MAP[ph]
            elif ph == "G1/G2":
                n_unresolved += 1
                out = "G2" if seen_s_or_g2 else "G1"
            else:
                other[str(ph)] = other.get(str(ph), 0) + 1
                out = "G2" if seen_s_or_g2 else "G1"
            if out in ("S", "G2"):
                seen_s_or_g2 = True
            phases.append(out)
    raw["phase"] = phases

    dup = raw.duplicated(["frame", "label"], keep="first")
    n_dup = int(dup.sum())
    raw = raw[~dup]
    out = raw[["frame", "label", "track", "parent", "phase"]].sort_values(["frame", "label"])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    out.to_csv(args.output, index=False)
    if args.raw_output:
        raw.sort_values(["frame", "label"]).to_csv(args.raw_output, index=False)
    t_end = time.perf_counter()

    print("SC-Track phase names seen: "
          + json.dumps(raw["sctrack_phase"].astype(str).value_counts().to_dict()))
    print(f"unresolved 'G1/G2' frames mapped by position: {n_unresolved}; "
          f"unexpected names: {json.dumps(other)}")
    print(f"kept {len(out)}/{n_in} nuclei ({len(out) / max(n_in, 1):.1%}); "
          f"{out['track'].nunique()} tracks, {int((out.groupby('track')['parent'].first() > 0).sum())} "
          f"with a parent; dropped duplicate (frame,label) rows: {n_dup}; "
          f"tree nodes without label: {n_nolabel}")
    print(f"time: prepare {t_prep - t0:.2f}s, SC-Track {t_track - t_prep:.2f}s, "
          f"export {t_end - t_track:.2f}s, total {t_end - t0:.2f}s")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
