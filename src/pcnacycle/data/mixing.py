"""What training draws: images repeated by their rarest class, and a second dataset of nuclei without phases.

``DATALOADER.SAMPLER_TRAIN`` "RepeatFactorTrainingSampler" repeats each image of the phase
dataset by its rarest class, as detectron2 does for LVIS (:func:`repeat_factors`,
:class:`RepeatFactorSampler`): M, in few frames of a movie, is seen more often.

``DATASETS.NUCLEI_ONLY`` names a second dataset (e.g. DSB2018) whose images are mixed into
training at ``FRACTION`` of the draws (:class:`MixedSampler`). Its nuclei are labelled
:data:`~pcnacycle.data.classes.UNKNOWN_PHASE`: they teach the detector real nuclei (boxes, masks,
nucleus against background) while the phases come from the first dataset alone
(:func:`pcnacycle.modeling.roi_heads.phase_classification_loss`). This is how the report's recipe
keeps what stage 1 learnt of real nuclei when stage 3 trains on simulated PCNA.

Every sampler yields ``(index, seed)`` pairs fixed by the draw's number alone, so a resumed run
(``start`` draws skipped) sees exactly what an uninterrupted one would.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..config import CfgNode
from ..errors import PcnacycleError
from ..settings import median_diameter
from .catalog import load_sample, read_records
from .classes import UNKNOWN_PHASE
from .dataset import TrainingSampler, median_nucleus_diameter, read_split, select

log = logging.getLogger(__name__)

#: The most a nuclei-only image is resized to bring its nuclei to the training size.
SIZE_MATCH_LIMITS = (0.25, 4.0)


def nuclei_only_config(cfg: CfgNode) -> CfgNode | None:
    """``cfg`` with ``DATASETS.FORMAT`` and ``ROOT`` those of ``DATASETS.NUCLEI_ONLY``; None when it names none."""
    extra = cfg.DATASETS.NUCLEI_ONLY
    if not extra.ROOT:
        return None
    other = copy.deepcopy(cfg)
    other.DATASETS["FORMAT"], other.DATASETS["ROOT"] = extra.FORMAT, extra.ROOT
    other.MODEL["CLASS_NAMES"] = ["nucleus"]  # every nucleus is one class to its reader, whatever it is called
    return other


def nuclei_only_data(cfg: CfgNode) -> tuple[list[dict], Callable[[dict], tuple[dict, float]]] | None:
    """The records of ``DATASETS.NUCLEI_ONLY`` to train on (the ``train`` ids of its ``SPLIT_FILE``, if
    any), and their loader (:func:`nuclei_only_sample`), as :class:`~pcnacycle.data.dataset.InstanceDataset`
    takes them; None when the config names no such dataset. Reads ``INPUT.NUCLEUS_DIAMETER`` from ``cfg``:
    call it once that is measured.

    ``DATASETS.NUCLEI_ONLY.SIZE_MATCH`` "dataset" resizes every image by one factor, which brings the
    dataset's median nucleus (of up to 20 images) to the training size, as ``run`` and ``evaluate`` resize
    a movie or a split: its nuclei keep their spread of sizes. "image" brings each image's own median
    nucleus to that size. Neither resizes when the model resizes images itself (``INPUT.MIN_SIZE_TRAIN``
    not [0]) or a size is unknown.
    """
    other = nuclei_only_config(cfg)
    if other is None:
        return None
    records = read_records(other)
    split_file = cfg.DATASETS.NUCLEI_ONLY.SPLIT_FILE
    if split_file:
        records = select(records, read_split(split_file)["train"], f"{split_file} (train)")
    if not records:
        raise PcnacycleError(f"config key 'DATASETS.NUCLEI_ONLY.ROOT': {other.DATASETS.ROOT} holds no image "
                             "to train on")
    trained = cfg.INPUT.NUCLEUS_DIAMETER if list(cfg.INPUT.MIN_SIZE_TRAIN) == [0] else 0.0
    resize = None if trained else 1.0  # None: per image
    if trained and cfg.DATASETS.NUCLEI_ONLY.SIZE_MATCH == "dataset":
        own = median_nucleus_diameter(other, records)
        resize = _size_match(trained, own)
        log.info("nuclei-only images: median nucleus %.1f px, all resized by %.3f to the training size %.1f px",
                 own, resize, trained)
    return records, functools.partial(nuclei_only_sample, other, trained=trained, resize=resize)


def nuclei_only_sample(other: CfgNode, record: dict, trained: float, resize: float | None) -> tuple[dict, float]:
    """One nuclei-only image, every nucleus labelled :data:`UNKNOWN_PHASE`, and the factor it is resized by:
    ``resize``, or (None) the one that brings its own median nucleus to ``trained`` px."""
    sample = load_sample(other, record)
    sample["labels"] = np.full(len(sample["masks"]), UNKNOWN_PHASE, np.int64)
    if resize is None:
        resize = _size_match(trained, median_diameter(sample["masks"].sum(axis=(1, 2))))
    return sample, resize


def _size_match(trained: float, own: float | None) -> float:
    """The factor that brings nuclei of ``own`` px to ``trained`` px, within :data:`SIZE_MATCH_LIMITS`; 1.0
    when ``own`` is unknown (no nucleus)."""
    return float(np.clip(trained / own, *SIZE_MATCH_LIMITS)) if own else 1.0


def repeat_factors(labels: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """LVIS's repeat factor of each image: the largest, over the classes it holds, of
    ``max(1, sqrt(threshold / f))``, ``f`` the share of images holding the class.

    Parameters
    ----------
    labels : per image, the (N,) class ids of its instances
    threshold : ``DATALOADER.REPEAT_THRESHOLD`` (a share of images; classes in fewer are repeated)

    Returns
    -------
    (n_images,) float64, at least 1 (an image without instances: 1).
    """
    present = [set(np.unique(image_labels).tolist()) for image_labels in labels]
    classes = set().union(*present) if present else set()
    share = {c: sum(c in image for image in present) / len(present) for c in classes}
    factor = {c: max(1.0, math.sqrt(threshold / share[c])) for c in classes}
    return np.array([max((factor[c] for c in image), default=1.0) for image in present], np.float64)


class RepeatFactorSampler(torch.utils.data.Sampler):
    """An endless stream of ``(index, seed)``: per epoch each image ``i`` is repeated ``factors[i]``
    times, rounded up or down at random (stochastic rounding, as detectron2's
    ``RepeatFactorTrainingSampler``), in a fresh seeded order."""

    def __init__(self, factors: np.ndarray, seed: int, start: int = 0):
        self.factors, self.seed, self.start = np.asarray(factors, np.float64), seed, start

    def _epoch(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        whole = np.floor(self.factors)
        repeats = (whole + (rng.random(len(self.factors)) < self.factors - whole)).astype(int)
        return rng.permutation(np.repeat(np.arange(len(self.factors)), repeats))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, draw = 0, 0
        order = self._epoch(epoch)
        while draw + len(order) <= self.start:  # skip whole epochs already drawn
            draw, epoch = draw + len(order), epoch + 1
            order = self._epoch(epoch)
        position = self.start - draw
        draw = self.start
        while True:
            for index in order[position:]:
                yield int(index), int(np.random.SeedSequence([self.seed, draw]).generate_state(1)[0])
                draw += 1
            epoch, position = epoch + 1, 0
            order = self._epoch(epoch)


class MixedSampler(torch.utils.data.Sampler):
    """An endless stream of ``(index, seed)`` from two datasets: indices ``0..first-1`` from
    ``first_stream(start)`` (a sampler of the first dataset that skips ``start`` draws), and
    ``first..first+second-1`` in the seeded order of a :class:`TrainingSampler` of the second.

    Draw ``d`` comes from the second dataset when ``floor((d + 1) f) > floor(d f)``
    (``f`` = ``fraction``): every stretch of draws holds that share, whatever the batch
    size, and a run resumed at draw ``start`` sees exactly what an uninterrupted one would.
    """

    def __init__(self, first: int, second: int, fraction: float, seed: int, start: int = 0,
                 first_stream: Callable[[int], Iterable[tuple[int, int]]] | None = None):
        self.first, self.second, self.fraction, self.seed, self.start = first, second, fraction, seed, start
        self.first_stream = first_stream or functools.partial(TrainingSampler, first, seed)

    def _from_second(self, draw: int) -> bool:
        return math.floor((draw + 1) * self.fraction) > math.floor(draw * self.fraction)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        taken = math.floor(self.start * self.fraction)  # draws of the second dataset before ``start``
        first = iter(self.first_stream(self.start - taken))
        second = iter(TrainingSampler(self.second, self.seed + 1, taken))
        draw = self.start
        while True:
            if self._from_second(draw):
                index, seed = next(second)
                yield self.first + index, seed
            else:
                yield next(first)
            draw += 1


def training_sampler(cfg: CfgNode, records: Sequence[dict], nuclei_only_count: int, start: int):
    """The sampler of a training run: ``DATALOADER.SAMPLER_TRAIN`` over ``records``, mixed with
    ``nuclei_only_count`` images of ``DATASETS.NUCLEI_ONLY`` when there are any; ``start`` draws skipped."""
    first = functools.partial(TrainingSampler, len(records), cfg.SEED)
    if cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler":
        factors = repeat_factors([load_sample(cfg, record)["labels"] for record in records],
                                 cfg.DATALOADER.REPEAT_THRESHOLD)
        log.info("repeat factors (DATALOADER.REPEAT_THRESHOLD %g): %d of %d images repeated, up to %.2f times; "
                 "%.0f draws per epoch", cfg.DATALOADER.REPEAT_THRESHOLD, int((factors > 1).sum()), len(factors),
                 factors.max(initial=1.0), factors.sum())
        first = functools.partial(RepeatFactorSampler, factors, cfg.SEED)
    if nuclei_only_count:
        return MixedSampler(len(records), nuclei_only_count, cfg.DATASETS.NUCLEI_ONLY.FRACTION, cfg.SEED, start,
                            first_stream=first)
    return first(start)
