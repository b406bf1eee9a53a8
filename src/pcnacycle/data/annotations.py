"""Helpers shared by the formats that list annotated images: folders, JSON files, ids, polygons."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import PcnacycleError

log = logging.getLogger(__name__)


def _dataset_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise PcnacycleError(f"{root}: dataset folder does not exist (DATASETS.ROOT)")
    return root


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PcnacycleError(f"{path}: not a readable JSON file ({exc})") from exc


def _log_unannotated(source: Path, names: list[str]) -> None:
    if names:
        log.warning("%s: skipped %d image(s) without annotations: %s", source, len(names), ", ".join(names[:5]))


def _unique_image_id(filename: str, source: Path, seen: dict[str, str]) -> str:
    """The image id of an annotated file: its name without extension, unique within ``source``."""
    image_id = Path(filename).with_suffix("").as_posix()
    if image_id in seen:
        raise PcnacycleError(f"{source}: images {seen[image_id]} and {filename} would share the id {image_id!r}")
    seen[image_id] = filename
    return image_id


def annotation_file(root: Path, name: str) -> Path:
    """``DATASETS.ANNOTATIONS`` (relative to ``root``, or absolute), else the one ``*.json`` in ``root``."""
    if name:
        path = root / name
        if not path.is_file():
            raise PcnacycleError(f"{path}: annotation file not found (DATASETS.ANNOTATIONS)")
        return path
    found = sorted(root.glob("*.json"))
    if len(found) != 1:
        listed = f": {', '.join(p.name for p in found)}" if found else ""
        raise PcnacycleError(f"{root}: {len(found)} *.json files{listed}; set DATASETS.ANNOTATIONS to the "
                             "annotation file")
    return found[0]


def check_polygon(xs, ys, shape: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """A polygon's vertex coordinates as float arrays, checked.

    It needs three or more points, all finite and at most one pixel outside
    the ``(H, W)`` image (outlines drawn along the border stray a little);
    points further out mean the annotation belongs to an image of another
    size, such as a resized copy.
    """
    try:
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    except (TypeError, ValueError):
        raise PcnacycleError(f"{where}: polygon coordinates are not numbers") from None
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise PcnacycleError(f"{where}: polygon has {xs.size} x and {ys.size} y coordinates")
    if len(xs) < 3:
        raise PcnacycleError(f"{where}: polygon has {len(xs)} point(s); at least 3 are needed")
    height, width = shape
    outside = ~(np.isfinite(xs) & np.isfinite(ys) & (xs >= -1) & (xs <= width + 1) & (ys >= -1) & (ys <= height + 1))
    if outside.any():
        i = int(np.argmax(outside))
        raise PcnacycleError(f"{where}: polygon point ({xs[i]:g}, {ys[i]:g}) lies outside the "
                             f"{width}×{height} image")
    return xs, ys


def polygon_fault(xs: np.ndarray, ys: np.ndarray) -> str | None:
    """Why a polygon cannot outline a nucleus (``"no area"``, ``"self-intersecting"``), or None.

    Parameters
    ----------
    xs, ys : (P,) float vertex coordinates, the polygon closing from the last back to the first.

    A point repeating its predecessor (a double click) is ignored. Two edges
    that cross or touch, other than neighbours at their shared corner, make
    the polygon self-intersecting: its inside is then ambiguous.
    """
    points = np.stack([np.asarray(xs, float), np.asarray(ys, float)], axis=1)
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    if len(points) < 3 or np.linalg.matrix_rank(points - points.mean(axis=0), tol=1e-9) < 2:
        return "no area"  # fewer than three distinct points, or all on one line
    starts, ends = points, np.roll(points, -1, axis=0)  # edge k runs from starts[k] to ends[k]
    first, second = np.triu_indices(len(points), k=2)  # edge pairs that are not neighbours ...
    keep = ~((first == 0) & (second == len(points) - 1))  # ... nor the closing edge and the first one
    p1, q1, p2, q2 = starts[first[keep]], ends[first[keep]], starts[second[keep]], ends[second[keep]]

    def side(p, q, r):  # sign of the turn p -> q -> r
        return np.sign((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))

    def lies_on(p, q, r, turn):  # r on the segment p-q
        return ((turn == 0) & (np.minimum(p[:, 0], q[:, 0]) <= r[:, 0]) & (r[:, 0] <= np.maximum(p[:, 0], q[:, 0]))
                & (np.minimum(p[:, 1], q[:, 1]) <= r[:, 1]) & (r[:, 1] <= np.maximum(p[:, 1], q[:, 1])))

    s1, s2, s3, s4 = side(p1, q1, p2), side(p1, q1, q2), side(p2, q2, p1), side(p2, q2, q1)
    crossing = (s1 * s2 < 0) & (s3 * s4 < 0)
    touching = lies_on(p1, q1, p2, s1) | lies_on(p1, q1, q2, s2) | lies_on(p2, q2, p1, s3) | lies_on(p2, q2, q1, s4)
    return "self-intersecting" if np.any(crossing | touching) else None
