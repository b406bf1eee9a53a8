"""Second looks at a nucleus' phase besides the detector's call: log-likelihood ratios learnt from the movie.

Each reads a nucleus against its own cell's other frames and learns what the
classes look like from the detector's confident calls in the same movie, so
that nothing about a microscope is assumed:

* :func:`texture_log_ratio`: replication foci make S nuclei grainy;
* :func:`mitosis_log_ratio`: a cell's p_M leaves its own level as it enters M.

:mod:`pcnacycle.tracking.resolve` adds them to the emissions of its hidden Markov model.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..settings import RunSettings

__all__ = ["CONFIDENT_CALL", "CONFIDENT_LEVELS", "confidence_levels", "confident_calls", "mitosis_log_ratio",
           "texture_calls", "texture_log_ratio"]

#: A confident call: a class probability at least this; the texture evidence is learnt from such calls first.
CONFIDENT_CALL = 0.9
_MIN_CONFIDENT = 20
_EVIDENCE_LIMIT = 4.0
#: Rows before a nucleus whose median p_M (log odds) is its cell's level when M evidence reads it.
_ONSET_WINDOW = 5
#: How many nuclei's worth the movie's smooth texture weighs in a track's own baseline (set beforehand, not swept).
_TRACK_PSEUDO_COUNT = 3.0


def texture_log_ratio(texture: np.ndarray, p_s: np.ndarray, track: np.ndarray | None = None,
                      confident: Sequence[float] | None = None, min_count: int = _MIN_CONFIDENT,
                      limit: float = _EVIDENCE_LIMIT) -> np.ndarray:
    """Log-likelihood ratio of S against not-S from each nucleus' texture, learnt from the movie's confident calls.

    Parameters
    ----------
    texture : (n,) float
        :func:`~pcnacycle.tracking.detections.nuclear_texture` per nucleus (NaN: none).
    p_s : (n,) float
        The detector's S probability per nucleus.
    track : (n,) int, optional
        Each nucleus' track. Texture is then read against the track's own
        smooth frames: how grainy a G1 nucleus looks differs from cell to
        cell more than from frame to frame, so the faint first and last foci
        of S stand out against the cell's own G1 or G2 where they would not
        against all cells'.
    confident : levels of p_S, highest first (default :data:`CONFIDENT_LEVELS`)
        The classes are learnt from the nuclei called S with ``p_s ≥ level``
        and not S with ``p_s ≤ 1 - level``, at the first level where the
        movie has ``min_count`` of each (:func:`confident_calls`): a model
        unsure of a movie unlike its training movies seldom reaches 0.9, yet
        its calls at 0.8 are still mostly right.

    Returns
    -------
    (n,) float64
        ``log p(texture | S) - log p(texture | not S)``, 0 where texture is missing,
        bounded to ±``limit``. Each class is a Gaussian of log texture with
        the median and robust spread of its calls. Smooth nuclei vary
        little, S nuclei a lot (early, mid and late S foci), so the two spreads
        differ; beyond the texture where the ratio of the two Gaussians would
        turn back, it is held (it never rises as a nucleus gets smoother, nor
        falls as it gets grainier).
        With ``track``, each nucleus' log texture is first shifted by its
        track's median over the confident not-S calls, shrunk towards the
        movie's (:data:`_TRACK_PSEUDO_COUNT` nuclei' worth); a track without
        such calls keeps the movie's. S's Gaussian is mixed with not-S's in
        the share of the S calls that are smoother than the midpoint between
        the two: an S nucleus need not show foci (they are faint or below
        resolution as S begins and ends), while foci do show S, so where the
        S calls include smooth nuclei, smoothness weighs less against S (never
        below the log of that share), and graininess as much for it. Not-S is
        not mixed: the grainy nuclei a detector confidently calls G1/G2 are the
        early S it misses, which is what the texture is there to find. All 0
        when either class has fewer than ``min_count`` calls at every level
        or S is not the grainier.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.asarray(texture, np.float64))
    valid = np.isfinite(x)
    calls = texture_calls(texture, p_s, CONFIDENT_LEVELS if confident is None else confident, min_count)
    if calls is None:
        return np.zeros(len(x))
    s_phase, other, _ = calls
    if track is not None:
        movie = np.median(x[other])
        smooth_calls = pd.Series(np.where(other, x, np.nan)).groupby(np.asarray(track))
        count = smooth_calls.transform("count").to_numpy()
        median = np.nan_to_num(smooth_calls.transform("median").to_numpy())
        x = x - (count * median + _TRACK_PSEUDO_COUNT * movie) / (count + _TRACK_PSEUDO_COUNT) + movie
    (centre_s, sd_s), (centre_other, sd_other) = _robust_gaussian(x[s_phase]), _robust_gaussian(x[other])
    if centre_s <= centre_other:
        return np.zeros(len(x))
    held = np.where(valid, x, centre_other)
    if sd_s != sd_other:  # the quadratic log ratio turns where its slope is 0: outside the two centres
        turn = (centre_other / sd_other ** 2 - centre_s / sd_s ** 2) / (1 / sd_other ** 2 - 1 / sd_s ** 2)
        held = np.maximum(held, turn) if sd_s > sd_other else np.minimum(held, turn)
    gaussian = _gaussian_log_ratio(held, (centre_s, sd_s), (centre_other, sd_other))
    smooth_s = float(np.mean(x[s_phase] < (centre_s + centre_other) / 2))
    # log of [(1 - a) N_S + a N_O] / N_O, with N_S / N_O = exp(gaussian)
    llr = np.log((1 - smooth_s) * np.exp(np.clip(gaussian, -50, 50)) + smooth_s)
    return np.where(valid, np.clip(llr, -limit, limit), 0.0)


def confidence_levels(lowest: float) -> tuple[float, ...]:
    """The levels :func:`confident_calls` tries: 0.9, 0.8, … down to ``lowest``, which ends them (alone above 0.9)."""
    tenths = np.round(np.arange(CONFIDENT_CALL, 0.5, -0.1), 1)
    return (*(float(level) for level in tenths if level > lowest + 1e-9), float(lowest))


#: Texture evidence: the levels of the detector's calls it is learnt from by default (the first at which the movie
#: has enough calls of both classes; none below ``RunSettings.texture_min_confidence``, 0.7, as the median and robust
#: spread hold with up to about a quarter of the calls wrong).
CONFIDENT_LEVELS = confidence_levels(RunSettings.texture_min_confidence)


def texture_calls(texture: np.ndarray, p_s: np.ndarray, levels: Sequence[float] | float = CONFIDENT_LEVELS,
                  min_count: int = _MIN_CONFIDENT) -> tuple[np.ndarray, np.ndarray, float] | None:
    """:func:`confident_calls` among the nuclei whose texture was measured (finite and above 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = np.isfinite(np.log(np.asarray(texture, np.float64)))
    return confident_calls(np.where(measured, np.asarray(p_s, np.float64), np.nan), levels, min_count)


def confident_calls(p_s: np.ndarray, levels: Sequence[float] | float = CONFIDENT_LEVELS,
                    min_count: int = _MIN_CONFIDENT) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The nuclei confidently called S and not S, at the highest level that gives ``min_count`` of each.

    Parameters
    ----------
    p_s : (n,) float
        The detector's S probability per nucleus (NaN: left out).
    levels : float or sequence of floats
        Confidence levels to try, highest first: S is ``p_s ≥ level``, not S ``p_s ≤ 1 - level``.

    Returns
    -------
    (s_calls, other_calls, level) : (n,) bool, (n,) bool, float
        Or None when no level gives ``min_count`` calls of both classes.
    """
    p_s = np.asarray(p_s, np.float64)
    for level in np.atleast_1d(np.asarray(levels, np.float64)):
        s_calls, other_calls = p_s >= level, p_s <= 1 - level
        if s_calls.sum() >= min_count and other_calls.sum() >= min_count:
            return s_calls, other_calls, float(level)
    return None


def mitosis_log_ratio(p_m: np.ndarray, track: np.ndarray, frame: np.ndarray, min_probability: float = 1e-3,
                      min_count: int = _MIN_CONFIDENT, limit: float = _EVIDENCE_LIMIT) -> np.ndarray:
    """Log-likelihood ratio of M against not-M from each nucleus' p_M read against its track's own frames.

    A cell's p_M stays near a level of its own and leaves it as the cell
    enters M, often a frame before the detector's call crosses one half. So
    each nucleus' log odds of M are taken less the median of its track's
    previous ``_ONSET_WINDOW`` rows (a track's first row gets 0). Not-M is a
    Gaussian of that shift (median and robust spread over the calls of
    p_M < 0.5), and so is M
    (over the calls of p_M ≥ 0.5). The ratio is held below not-M's centre
    and above M's (it never rises as p_M falls), and bounded to ±``limit``.

    Parameters
    ----------
    p_m : (n,) float
        The detector's M probability per nucleus (NaN: none).
    track, frame : (n,) int
        Each nucleus' track and frame.
    min_probability : float
        Probabilities are clipped to ``[min_probability, 1 - min_probability]``.

    Returns
    -------
    (n,) float64
        0 where p_M is missing or nothing comes before in the track, and
        everywhere when either class has fewer than ``min_count`` calls or
        M's centre is not above not-M's.
    """
    p = np.clip(np.asarray(p_m, np.float64), min_probability, 1 - min_probability)
    x = np.log(p / (1 - p))
    # the level the cell was at just before: the median of its previous rows (none for a track's first)
    order = np.lexsort((np.asarray(frame), np.asarray(track)))
    by_track = pd.Series(x[order]).groupby(np.asarray(track)[order])
    level = np.empty(len(x))
    level[order] = by_track.transform(lambda v: v.shift(1).rolling(_ONSET_WINDOW, min_periods=1).median())
    valid = np.isfinite(x) & np.isfinite(level)
    mitotic, other = valid & (p >= 0.5), valid & (p < 0.5)
    if mitotic.sum() < min_count or other.sum() < min_count:
        return np.zeros(len(x))
    shift = x - level
    (centre_m, sd_m), (centre_other, sd_other) = _robust_gaussian(shift[mitotic]), _robust_gaussian(shift[other])
    if centre_m <= centre_other:
        return np.zeros(len(x))
    held = np.clip(np.where(valid, shift, centre_other), centre_other, centre_m)
    llr = _gaussian_log_ratio(held, (centre_m, sd_m), (centre_other, sd_other))
    return np.where(valid, np.clip(llr, -limit, limit), 0.0)


def _robust_gaussian(values: np.ndarray) -> tuple[float, float]:
    """Median and robust sd (1.4826 × the median absolute deviation, at least 1e-3) of ``values``."""
    centre = float(np.median(values))
    return centre, max(1.4826 * float(np.median(np.abs(values - centre))), 1e-3)


def _gaussian_log_ratio(x: np.ndarray, first: tuple[float, float], second: tuple[float, float]) -> np.ndarray:
    """``log N(x; first) - log N(x; second)`` for two (centre, sd) Gaussians."""
    (centre_a, sd_a), (centre_b, sd_b) = first, second
    return 0.5 * ((x - centre_b) / sd_b) ** 2 - 0.5 * ((x - centre_a) / sd_a) ** 2 + math.log(sd_b / sd_a)
