"""Detections: each frame's label image measured, one table row per nucleus with its phase probabilities.

The first step of tracking (:mod:`pcnacycle.tracking.tracker` links the rows):
one frame at a time, so a movie's masks never need to be in memory together.
"""

from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage import measure, segmentation

from ..errors import PcnacycleError
from ..phases import CLASSES

__all__ = ["COORDINATES", "TEXTURE_RIM", "border_labels", "detections_table", "frame_detections", "nuclear_texture",
           "probability_column"]

COORDINATES = ["centroid_y", "centroid_x"]
_DETECTION_COLUMNS = ["frame", "label", *COORDINATES, "area", "edge"]


def probability_column(class_name: str) -> str:
    """The detections-table column holding the probability of ``class_name``: ``"p_" + name``."""
    return f"p_{class_name}"


#: Edge layers of a nucleus that :func:`nuclear_texture` leaves out: its blurred edge is no texture, and a
#: detector's mask runs a pixel or so past it (BENCHMARKS.md, "Texture read inside the edge").
TEXTURE_RIM = 2
#: Fewest pixels a nucleus' core must keep to be measured there; a smaller nucleus is measured whole.
_MIN_CORE_PIXELS = 4


def nuclear_texture(label_image: np.ndarray, intensity_image: np.ndarray, labels: np.ndarray,
                    rim: int = TEXTURE_RIM) -> np.ndarray:
    """Coefficient of variation (sd / mean) of each nucleus' intensity above the background, edge excluded.

    PCNA gathers in replication foci during S phase, so S nuclei are grainy
    and G1, G2 and mitotic nuclei smooth: this is the resolver's texture
    evidence (:class:`~pcnacycle.settings.RunSettings` ``texture_evidence``).
    The background is the median of the pixels outside every nucleus. The
    outer ``rim`` pixels of each nucleus are left out: intensity falls off
    across its blurred edge, and a mask drawn a pixel wider takes that fall
    in, which makes a smooth nucleus read as grainy. A nucleus whose core
    keeps fewer than 4 pixels is measured whole. Unitless, so it does not
    depend on the camera's gain or offset.

    Parameters
    ----------
    label_image : (H, W) int
        0 background, objects labelled 1..N.
    intensity_image : (H, W) number
    labels : (n,) int
        The labels to measure.
    rim : int
        Edge layers left out (1: only the pixels on the nucleus' border).

    Returns
    -------
    (n,) float64
        NaN where a nucleus is no brighter than the background.
    """
    labels = np.asarray(labels, np.int64)
    if not len(labels):
        return np.zeros(0)
    if not isinstance(rim, numbers.Integral) or rim < 1:
        raise PcnacycleError(f"rim={rim!r}: give a whole number of edge layers, at least 1 (the border pixels)")
    image = np.asarray(intensity_image, np.float64)
    outside = label_image == 0
    image = image - (np.median(image[outside]) if outside.any() else 0.0)
    # the border pixels (touching nuclei count as each other's outside), then rim - 1 more layers
    inside = (label_image > 0) & ~segmentation.find_boundaries(label_image, mode="inner")
    if rim > 1:
        inside = ndi.binary_erosion(inside, np.ones((3, 3), bool), iterations=rim - 1)
    core = np.where(inside, label_image, 0)
    size = int(label_image.max()) + 1
    small = np.bincount(core.ravel(), minlength=size) < _MIN_CORE_PIXELS
    region = np.where(small[label_image], label_image, core) if small[labels].any() else core
    flat, values = region.ravel(), image.ravel()
    count = np.maximum(np.bincount(flat, minlength=size), 1)
    mean = np.bincount(flat, values, minlength=size) / count
    variance = np.maximum(np.bincount(flat, values**2, minlength=size) / count - mean**2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.sqrt(variance) / mean
    return np.where(mean[labels] > 0, cv[labels], np.nan)


def frame_detections(label_image: np.ndarray, probs: np.ndarray, frame: int,
                     class_names: Sequence[str] = CLASSES, intensity_image: np.ndarray | None = None) -> pd.DataFrame:
    """Measure the nuclei of one frame and attach their phase probabilities.

    Parameters
    ----------
    label_image : (H, W) int
        0 background, ``i + 1`` for object ``i`` (as :func:`pcnacycle.engine.predictor.predict_image` gives).
    probs : (N, K) float
        Row ``i`` holds the class probabilities of label ``i + 1``; ``N`` ≥ the largest label.
    frame : int
        Frame index written to every row.
    class_names : K names
        Column ``p_<name>`` gets the probability of class ``name``.
    intensity_image : (H, W) number, optional
        When given, the nucleus' mean intensity becomes column ``mean_pcna``
        and its :func:`nuclear_texture` column ``texture_pcna``.

    Returns
    -------
    DataFrame
        One row per nucleus, sorted by label: ``frame, label, centroid_y,
        centroid_x, area, edge[, mean_pcna, texture_pcna], p_<class>...``
        (centroids in pixels, float64; area in pixels, int64; ``edge`` True
        where the nucleus touches the frame's border, so the frame may cut it).
    """
    label_image = np.asarray(label_image)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(class_names))
    if label_image.ndim != 2:
        raise PcnacycleError(f"frame {frame}: label image must be 2-D (H, W), got shape {label_image.shape}")
    properties = ["label", "centroid", "area"] + (["intensity_mean"] if intensity_image is not None else [])
    table = measure.regionprops_table(label_image.astype(np.int32, copy=False), intensity_image, properties)
    labels = table["label"].astype(np.int64)
    if len(labels) and labels.max() > len(probs):
        raise PcnacycleError(f"frame {frame}: label {labels.max()} has no probability row ({len(probs)} rows)")
    columns = {
        "frame": np.full(len(labels), frame, np.int64), "label": labels,
        "centroid_y": table["centroid-0"], "centroid_x": table["centroid-1"],
        "area": table["area"].astype(np.int64), "edge": np.isin(labels, border_labels(label_image)),
    }
    if intensity_image is not None:
        columns["mean_pcna"] = table["intensity_mean"]
        columns["texture_pcna"] = nuclear_texture(label_image, intensity_image, labels)
    for k, name in enumerate(class_names):
        columns[probability_column(name)] = probs[labels - 1, k]
    return pd.DataFrame(columns)


def border_labels(label_image: np.ndarray) -> np.ndarray:
    """The labels (int64, sorted, 0 left out) of a (H, W) label image's objects that touch its border."""
    label_image = np.asarray(label_image)
    border = np.concatenate([label_image[0], label_image[-1], label_image[:, 0], label_image[:, -1]])
    found = np.unique(border).astype(np.int64)
    return found[found > 0]


def detections_table(label_images: Iterable[np.ndarray], probs: Iterable[np.ndarray],
                     class_names: Sequence[str] = CLASSES,
                     intensity_images: Iterable[np.ndarray] | None = None) -> pd.DataFrame:
    """:func:`frame_detections` of every frame, in order, as one table.

    ``label_images``, ``probs`` (and ``intensity_images``) are iterables with
    one item per frame, consumed one frame at a time (generators welcome).
    """
    intensity_images = intensity_images if intensity_images is not None else iter(lambda: None, 0)
    frames = [frame_detections(labels, p, t, class_names, intensity)
              for t, (labels, p, intensity) in enumerate(zip(label_images, probs, intensity_images))]
    if not frames:
        columns = _DETECTION_COLUMNS + [probability_column(c) for c in class_names]
        dtypes = {c: np.float64 if c.startswith("p_") else bool if c == "edge" else np.int64 for c in columns}
        return pd.DataFrame({c: pd.Series(dtype=dtype) for c, dtype in dtypes.items()})
    return pd.concat(frames, ignore_index=True)
