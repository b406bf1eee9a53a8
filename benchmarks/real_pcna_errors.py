"""What the errors on Biolapse's real PCNA fields are: unmatched nuclei sorted by kind, and how bright they are.

``benchmarks/real_pcna.py`` scores a model's ``pcnacycle run`` of each field against the reference regions
(one-to-one at IoU 0.5). This reads those run folders again and sorts every unmatched nucleus:

* a predicted nucleus (false positive) is **outside** when under 20 % of it lies in any reference region
  (an object the reference does not outline), **shared** when it lies mostly (over half) in a reference
  region that holds over half of another predicted nucleus too (the reference outlines one region where
  the model outlines two: touching nuclei a binary mask joins, or one nucleus the model cut), and
  **misdrawn** otherwise (it overlaps a reference nucleus, IoU < 0.5);
* a reference nucleus (false negative) is **missed** when under 20 % of it is covered by predictions,
  **shared** when it is such a region, and **misdrawn** otherwise.

Brightness is the nucleus' mean over the frame's median (the background: nuclei cover a fifth of a field),
so that the dim nuclei the reference outlines can be set beside those it leaves out. The F1 is given as
drawn (as ``real_pcna.py`` gives it) and with the reference's specks (regions under a quarter of its median
nucleus: micronuclei, debris) and shared regions set aside, with the predictions lying in them, as COCO
sets aside its crowd regions: what the binary reference cannot settle counts neither way.
``--montage`` draws up to 12 examples of each kind of error (green: reference, magenta: prediction;
square-root display) to look at by eye.

Usage (after ``real_pcna.py`` has run a model into ``OUT/NAME``)::

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/real_pcna_errors.py bench-out/real_pcna/spread \\
        --biolapse bench-out/real_pcna/biolapse [--montage DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tifffile
from real_pcna import counts_scores, field, match_counts
from skimage import exposure, segmentation

from pcnacycle.evaluation.tracks import match_frame

#: Under this share inside the other side's regions, a nucleus is outside (predicted) or missed (reference).
OUTSIDE = 0.2
#: Reference regions under this share of the field's median reference area are specks, not nuclei.
SPECK = 0.25
FIELDS = {"Train": "field_train", "Test": "field_test"}


def _overlaps(first: np.ndarray, second: np.ndarray) -> dict[int, dict[int, int]]:
    """Pixels shared by each label of ``first`` with each label of ``second`` (background left out)."""
    both = (first > 0) & (second > 0)
    pairs, counts = np.unique(np.stack([first[both], second[both]]).astype(np.int64), axis=1, return_counts=True)
    table: dict[int, dict[int, int]] = {}
    for a, b, n in zip(*pairs, counts):
        table.setdefault(int(a), {})[int(b)] = int(n)
    return table


def frame_errors(reference: np.ndarray, predicted: np.ndarray, image: np.ndarray) -> list[dict]:
    """Every unmatched nucleus of one frame: ``side`` (fp/fn), ``kind``, ``label``, ``area``, ``brightness``.

    Parameters
    ----------
    reference, predicted : (H, W) int label images
    image : (H, W) the frame
    """
    matched = match_frame(reference, predicted)
    background = float(np.median(image))
    ref_areas, pred_areas = np.bincount(reference.ravel()), np.bincount(predicted.ravel())
    by_ref, by_pred = _overlaps(reference, predicted), _overlaps(predicted, reference)
    # reference regions that hold most of two or more predicted nuclei
    holders = {r: [p for p, n in preds.items() if n > 0.5 * pred_areas[p]] for r, preds in by_ref.items()}
    shared = {r for r, preds in holders.items() if len(preds) >= 2}
    rows = []
    for label in np.setdiff1d(np.unique(predicted[predicted > 0]), matched["pred"]):
        overlap = by_pred.get(int(label), {})
        inside = sum(overlap.values()) / pred_areas[label]
        home = max(overlap, key=overlap.get) if overlap else None
        kind = ("outside" if inside < OUTSIDE else
                "shared" if home in shared and overlap[home] > 0.5 * pred_areas[label] else "misdrawn")
        rows.append({"side": "fp", "kind": kind, "label": int(label), "area": int(pred_areas[label]),
                     "brightness": float(image[predicted == label].mean()) / background})
    for label in np.setdiff1d(np.unique(reference[reference > 0]), matched["truth"]):
        covered = sum(by_ref.get(int(label), {}).values()) / ref_areas[label]
        kind = "missed" if covered < OUTSIDE else "shared" if int(label) in shared else "misdrawn"
        rows.append({"side": "fn", "kind": kind, "label": int(label), "area": int(ref_areas[label]),
                     "brightness": float(image[reference == label].mean()) / background})
    for label in matched["truth"]:
        rows.append({"side": "tp", "kind": "matched", "label": int(label), "area": int(ref_areas[label]),
                     "brightness": float(image[reference == label].mean()) / background})
    return rows


def ignoring(reference: np.ndarray, predicted: np.ndarray, rows: list[dict], speck_area: float):
    """One frame's label images with specks and joined regions of the reference set aside (0), as COCO sets aside
    its crowd regions: reference regions under ``speck_area`` px and the *shared* ones of ``rows``
    (:func:`frame_errors`), and every predicted nucleus lying mostly inside them."""
    areas = np.bincount(reference.ravel())
    ignored = {r["label"] for r in rows if r["side"] == "fn" and r["kind"] == "shared"}
    ignored |= {label for label in range(1, len(areas)) if 0 < areas[label] < speck_area}
    pred_areas = np.bincount(predicted.ravel())
    dropped = [p for p, overlap in _overlaps(predicted, reference).items()
               if sum(n for r, n in overlap.items() if r in ignored) > 0.5 * pred_areas[p]]
    # numbered 1..n again: real_pcna.match_counts counts the reference's nuclei as its largest label
    kept = segmentation.relabel_sequential(np.where(np.isin(reference, list(ignored)), 0, reference))[0]
    return kept, np.where(np.isin(predicted, dropped), 0, predicted)


def _summary(rows: list[dict]) -> dict:
    """Counts per (side, kind), with median area and brightness quartiles."""
    out = {}
    for side, kind in sorted({(r["side"], r["kind"]) for r in rows}):
        group = [r for r in rows if r["side"] == side and r["kind"] == kind]
        bright = [r["brightness"] for r in group]
        out[f"{side} {kind}"] = {"count": len(group), "median area": float(np.median([r["area"] for r in group])),
                                 "brightness quartiles": np.round(np.percentile(bright, [25, 50, 75]), 2).tolist()}
    return out


def _montage(frames, reference, predicted, examples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 6, figsize=(18, 6))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (t, side, label, title) in zip(axes.ravel(), examples[:: max(1, len(examples) // 12)]):
        ys, xs = np.nonzero((predicted if side == "fp" else reference)[t] == label)
        y0, x0 = max(0, int(ys.mean()) - 40), max(0, int(xs.mean()) - 40)
        window = (slice(y0, y0 + 80), slice(x0, x0 + 80))
        low, high = np.percentile(frames[t], (1, 99.8))
        image = exposure.rescale_intensity(frames[t].astype(float), in_range=(low, high), out_range=(0, 1)) ** 0.5
        rgb = np.dstack([image[window]] * 3)
        rgb[segmentation.find_boundaries(reference[t][window])] = [0, 1, 0]
        rgb[segmentation.find_boundaries(predicted[t][window])] = [1, 0, 1]
        ax.imshow(rgb)
        ax.set_title(title)
    fig.savefig(path, dpi=60, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="real_pcna.py's OUT/NAME (holds field_train/, field_test/)")
    parser.add_argument("--biolapse", type=Path, default=Path("bench-out/real_pcna/biolapse"),
                        help="the Biolapse files real_pcna.py extracted (OUT/biolapse)")
    parser.add_argument("--montage", type=Path, help="folder for one PNG per field and kind of error")
    args = parser.parse_args(argv)
    result = {}
    for name, folder in FIELDS.items():
        frames, reference = field(args.biolapse, name)
        predicted = tifffile.imread(args.model_dir / folder / "masks.tif")
        if predicted.shape != reference.shape:
            parser.error(f"{args.model_dir / folder / 'masks.tif'}: shape {predicted.shape}, "
                         f"reference {reference.shape}")
        areas = np.concatenate([np.bincount(r.ravel())[1:] for r in reference])
        speck_area = SPECK * float(np.median(areas[areas > 0]))
        rows, kept = [], []
        for t in range(len(frames)):
            found = frame_errors(reference[t], predicted[t], frames[t])
            rows += [{**r, "frame": t} for r in found]
            kept.append(ignoring(reference[t], predicted[t], found, speck_area))
        reference_brightness = [r["brightness"] for r in rows if r["side"] != "fp"]
        result[folder] = _summary(rows)
        result[folder]["speck area"] = round(speck_area)
        result[folder]["as drawn"] = match_counts(predicted, reference)
        result[folder]["specks and shared regions ignored"] = match_counts(
            np.stack([p for _, p in kept]), np.stack([r for r, _ in kept]))
        result[folder]["reference brightness quartiles"] = np.round(
            np.percentile(reference_brightness, [0, 25, 50, 75]), 2).tolist()
        if args.montage:
            args.montage.mkdir(parents=True, exist_ok=True)
            for side, kind in sorted({(r["side"], r["kind"]) for r in rows if r["side"] != "tp"}):
                examples = [(r["frame"], side, r["label"], f"t{r['frame']} area {r['area']} x{r['brightness']:.1f}")
                            for r in rows if r["side"] == side and r["kind"] == kind]
                _montage(frames, reference, predicted, examples, args.montage / f"{folder}_{side}_{kind}.png")
    for key in ("as drawn", "specks and shared regions ignored"):
        counts = [result[folder][key] for folder in FIELDS.values()]
        result[f"both fields, {key}"] = counts_scores(*(sum(c[k] for c in counts) for k in ("tp", "fp", "fn")))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
