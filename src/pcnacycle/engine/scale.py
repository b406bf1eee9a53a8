"""Nucleus scale: resize inputs so their nuclei look the size the model was trained on.

One function decides the factor (:func:`input_scale`) and one applies it
(:func:`predict_scaled`), for ``run``, ``evaluate`` and ``annotate`` alike.

The factor is the total resize from the input's pixels to the pixels the
network sees. A model that resizes frames itself (``INPUT.MIN_SIZE_TEST`` > 0)
already applies one (:func:`model_resize_factor`); when nuclei need another,
that resize is switched off and replaced by the total one, so frames are
resized once. ``INPUT.NUCLEUS_DIAMETER`` is in the network's pixels (after the
training resize of ``INPUT.MIN_SIZE_TRAIN``, when there is one).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence

import numpy as np
from skimage import transform

from ..config import CfgNode
from ..data.dataset import resize_factor
from ..errors import PcnacycleError
from ..settings import median_diameter
from .predictor import Predictor

log = logging.getLogger(__name__)

#: Sizes within 10 % of the training size are left alone; 20 % for a model trained without scale augmentation
#: (``INPUT.RANDOM_SCALE`` [1, 1]), which reads a resized frame's interpolated pixels as texture and calls smooth
#: nuclei S (BENCHMARKS.md, "Nucleus scale"): for it, resizing pays only when nuclei are far off.
SCALE_TOLERANCE = math.log(1.1)
UNAUGMENTED_SCALE_TOLERANCE = math.log(1.2)
#: The most a frame is shrunk or enlarged.
SCALE_LIMITS = (0.25, 4.0)
#: A measured nucleus size is trusted from this many nuclei, whose middle half spans at most this factor.
MIN_MEASURED = 10
MAX_QUARTILE_RATIO = 2.0
#: Shrink steps tried, from the model's own scale down, when looking for nuclei larger than they look: a model
#: shown nuclei far above its training size cuts them into pieces, and their size in the input's pixels stops
#: changing only once frames are shrunk enough for it to see them whole (BENCHMARKS.md, "Nucleus size, blind").
SEARCH_STEPS = (1.0, 2 ** -0.5, 0.5, 2 ** -1.5, 0.25)
#: Two consecutive steps agree on a size when their medians differ by less than this (a log ratio).
PLATEAU_TOLERANCE = math.log(1.2)


def scale_tolerance(cfg: CfgNode) -> float:
    """The largest |log(input / trained nucleus size)| left alone, for a model of this config."""
    augmented = tuple(cfg.INPUT.get("RANDOM_SCALE", (1.0, 1.0))) != (1.0, 1.0)
    return SCALE_TOLERANCE if augmented else UNAUGMENTED_SCALE_TOLERANCE


def model_resize_factor(cfg: CfgNode, height: int, width: int) -> float:
    """The factor by which the model itself resizes a ``height`` × ``width`` frame at test time."""
    return resize_factor(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, height, width)


@contextlib.contextmanager
def _own_resize_off(model):
    """Switch the model's own test-time resize off (a stand-in model without one is left alone)."""
    resize = getattr(model, "transform", None)
    if resize is None or not hasattr(resize, "test_size"):
        yield
        return
    saved, resize.test_size = resize.test_size, 0
    try:
        yield
    finally:
        resize.test_size = saved


def predict_scaled(predictor: Predictor, channels: dict[str, np.ndarray], scale: float | None) -> dict:
    """:meth:`Predictor.predict` on a frame resized by ``scale`` in total; results come back at the frame's pixels.

    Parameters
    ----------
    channels : {name: (H, W) array}, the frame's channels.
    scale : total factor from the frame's pixels to the network's, the model's own resize
        switched off; None: as the model takes frames by itself.
    """
    shape = next(iter(channels.values())).shape
    if scale is None:
        return predictor.predict(channels)
    resized = {name: transform.rescale(image.astype(np.float32), scale, order=1, preserve_range=True,
                                       anti_aliasing=scale < 1) for name, image in channels.items()}
    with _own_resize_off(predictor.model):
        result = predictor.predict(resized)
    result["label_image"] = transform.resize(result["label_image"], shape, order=0, preserve_range=True,
                                             anti_aliasing=False).astype(np.int32)
    result["boxes"] = result["boxes"] / scale
    return result


def estimate_reliability(areas: np.ndarray) -> dict:
    """How far a nucleus size measured from these detection ``areas`` (px) can be trusted.

    Reliable when at least :data:`MIN_MEASURED` nuclei were measured and the
    middle half of their diameters lies within a factor :data:`MAX_QUARTILE_RATIO`
    (a model that cuts nuclei into pieces of every size spreads them wider).

    Returns
    -------
    dict
        ``nuclei_measured`` (int), ``nucleus_diameter_quartiles_px`` ([q25, q75]),
        ``estimate_reliable`` (bool).
    """
    diameters = 2 * np.sqrt(np.asarray(areas, np.float64) / np.pi)
    low, high = (float(q) for q in np.percentile(diameters, [25, 75]))
    reliable = len(diameters) >= MIN_MEASURED and high <= MAX_QUARTILE_RATIO * low
    return {"nuclei_measured": int(len(diameters)), "nucleus_diameter_quartiles_px": [round(low, 2), round(high, 2)],
            "estimate_reliable": bool(reliable)}


def typical_nucleus_area(areas: np.ndarray) -> float | None:
    """The area (px) of the nucleus a random detected pixel lies in: the area-weighted median of ``areas``.

    Debris, specks and a few fragments are many and small; whole nuclei hold most of the detected pixels, so
    this is a nucleus' size however many specks there are. One detection holding more than half of all the
    detected pixels (a clump, a stretch of background) does not set it, else it alone would be measured.
    None when no area is positive.
    """
    order = np.sort(np.asarray(areas, np.float64))
    order = order[order > 0]
    if len(order) > 1 and order[-1] > order[:-1].sum():
        order = order[:-1]
    if len(order) == 0:
        return None
    return float(order[np.searchsorted(np.cumsum(order), order.sum() / 2)])


def nucleus_areas(areas: np.ndarray) -> np.ndarray:
    """The detection ``areas`` (px) that measure nuclei: those whose diameter is at least half that of
    :func:`typical_nucleus_area`. Nuclei of one size lose none. (A model that cuts every nucleus into pieces
    leaves only pieces: :func:`search_larger_nuclei`.)
    """
    areas = np.asarray(areas, np.float64)
    areas = areas[areas > 0]
    typical = typical_nucleus_area(areas)
    if typical is None:
        return areas
    return areas[areas >= typical / 4]  # half the diameter: a quarter of the area


def _measured_areas(predictor: Predictor, samples: Sequence[dict[str, np.ndarray]], scale: float | None,
                    min_area: int, cache: dict | None = None) -> np.ndarray:
    """Areas (input pixels) of the nuclei the model finds on ``samples`` resized by ``scale`` (None: its own);
    ``cache`` keeps them by scale, so that no scale is measured twice."""
    if cache is not None and scale in cache:
        return cache[scale]
    areas = np.concatenate([np.bincount(predict_scaled(predictor, channels, scale)["label_image"].ravel())[1:]
                            for channels in samples])
    areas = nucleus_areas(areas[areas >= max(min_area, 1)])
    if cache is not None:
        cache[scale] = areas
    return areas


def search_larger_nuclei(predictor: Predictor, samples: Sequence[dict[str, np.ndarray]], own: float,
                         min_area: int = 1, cache: dict | None = None) -> tuple[float, np.ndarray] | None:
    """The nucleus diameter (input px) of inputs whose nuclei the model sees whole only once they are shrunk.

    The samples are measured at the model's own scale ``own`` times each of
    :data:`SEARCH_STEPS` in turn, until two consecutive steps find the same
    median diameter in input pixels (within :data:`PLATEAU_TOLERANCE`, at
    least :data:`MIN_MEASURED` nuclei in each): whole nuclei keep their size
    when shrunk, pieces do not. A step with fewer nuclei ends the search.

    Returns
    -------
    None when the first two steps already agree (the nuclei are whole as the
    model takes them) or no two steps agree; otherwise the geometric mean of
    the two agreeing diameters and the areas measured at the larger of the two
    scales.
    """
    previous = None
    for i, step in enumerate(SEARCH_STEPS):
        scale = float(np.clip(own * step, *SCALE_LIMITS))
        if previous is not None and scale == previous[2]:  # at the shrink limit: nothing new to measure
            return None
        areas = _measured_areas(predictor, samples, None if step == 1 else scale, min_area, cache)
        if len(areas) < MIN_MEASURED:  # too few to tell, and shrinking finds no more
            return None
        diameter = median_diameter(areas)
        if previous is not None and abs(math.log(diameter / previous[0])) < PLATEAU_TOLERANCE:
            if i == 1:
                return None
            log.info("nuclei measured %.1f px at scale %.3f and %.1f px at %.3f: whole only when shrunk",
                     previous[0], previous[2], diameter, scale)
            return math.sqrt(diameter * previous[0]), previous[1]
        previous = (diameter, areas, scale)
    return None


def _skip_note(rescale: bool, trained: float) -> str | None:
    if not rescale:
        return "rescaling off"
    if not trained:
        return "the model does not record its training nucleus size"
    return None


def input_scale(predictor: Predictor, samples: Sequence[dict[str, np.ndarray]], nucleus_diameter: float | None = None,
                rescale: bool = True, min_area: int = 1, diameter_source: str = "given") -> tuple[float | None, dict]:
    """The total factor that brings the inputs' nuclei to the size the model was trained on.

    Parameters
    ----------
    samples : a few inputs (e.g. three frames of a movie), each ``{channel name: (H, W) array}``,
        all of one shape.
    nucleus_diameter : the inputs' nucleus diameter in px; None: the median diameter of the model's
        own detections on ``samples``: where the size stops changing as they are shrunk
        (:func:`search_larger_nuclei`), else as the model takes them, measured again after a first
        resizing.
    rescale : False keeps the model's own factor whatever the nuclei measure.
    min_area : detections smaller than this (px) are not measured.
    diameter_source : where a given ``nucleus_diameter`` came from, for ``scale_note``.

    Returns
    -------
    scale : float or None
        For :func:`predict_scaled`: None (as the model takes frames by itself) when the sizes
        agree within :func:`scale_tolerance` of the model's own factor, or when rescaling is off or impossible;
        otherwise trained / input diameter, within :data:`SCALE_LIMITS`.
    info : dict
        ``trained_nucleus_diameter_px``, ``movie_nucleus_diameter_px``, ``scale`` (the total
        factor frames of the samples' shape get), ``scale_note``; when measured, also
        :func:`estimate_reliability`'s ``nuclei_measured``, ``nucleus_diameter_quartiles_px`` and
        ``estimate_reliable`` (a warning is logged when it is False).
    """
    if nucleus_diameter is not None and not (isinstance(nucleus_diameter, (int, float)) and nucleus_diameter > 0):
        raise PcnacycleError(f"nucleus_diameter={nucleus_diameter!r}: must be a positive number of pixels")
    cfg = predictor.cfg
    height, width = next(iter(samples[0].values())).shape
    own = model_resize_factor(cfg, height, width)
    trained = float(cfg.INPUT.get("NUCLEUS_DIAMETER", 0) or 0)
    info = {"trained_nucleus_diameter_px": trained or None, "movie_nucleus_diameter_px": None, "scale": own}
    if nucleus_diameter is not None and nucleus_diameter >= min(height, width):
        raise PcnacycleError(f"nucleus_diameter={nucleus_diameter:g} px: larger than the {height}×{width} frame")
    tolerance = scale_tolerance(cfg)
    note = _skip_note(rescale, trained)
    if note:
        info["scale_note"] = note
        return None, info
    measured, searched = nucleus_diameter, None
    if measured is None:
        cache = {}
        searched = search_larger_nuclei(predictor, samples, own, min_area, cache)
        if searched is not None:
            measured, measured_areas = searched
        else:
            scale, measured_areas = None, None
            for _ in range(2):  # measure; when far off, resize and measure again
                areas = _measured_areas(predictor, samples, scale, min_area, cache)
                found = median_diameter(areas)
                if found is None:
                    break
                measured, measured_areas = found, areas
                scale = float(np.clip(trained / measured, *SCALE_LIMITS))
                if abs(math.log(scale / own)) < tolerance:
                    break
        if measured is None:
            log.warning("no nucleus found on %d input(s) to measure their size: inputs are not rescaled", len(samples))
            info["scale_note"] = "no nucleus found to measure"
            return None, info
        info.update(estimate_reliability(measured_areas))
        if not info["estimate_reliable"]:
            low, high = info["nucleus_diameter_quartiles_px"]
            log.warning("the nucleus size estimate is unreliable (%d nuclei measured, diameters %.1f-%.1f px between "
                        "the quartiles): look at the masks, and give the diameter (--nucleus-diameter) if they are "
                        "wrong", info["nuclei_measured"], low, high)
    scale = float(np.clip(trained / measured, *SCALE_LIMITS))
    if abs(math.log(scale / own)) < tolerance:
        scale = None
    note = (diameter_source if nucleus_diameter is not None else "measured on the model's detections"
            + (" of shrunk frames" if searched is not None else ""))
    info.update(movie_nucleus_diameter_px=round(measured, 2), scale=round(own if scale is None else scale, 4),
                scale_note=note)
    log.info("nuclei about %.1f px across (%s), the model was trained on %.1f px: inputs %s", measured,
             info["scale_note"], trained,
             "kept as the model takes them" if scale is None else f"resized by {scale:.3f}")
    return scale, info
