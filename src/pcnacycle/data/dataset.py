"""Datasets: reading annotated images, splitting them, and feeding the trainer.

The flow is :func:`~pcnacycle.data.catalog.read_records` (what images exist, cheap) → ``split_records``
(which subset each belongs to, saved as ``split.json``) → :func:`~pcnacycle.data.catalog.load_sample`
(pixels and instance masks of one image) → :class:`InstanceDataset` (channel
composition, cropping, flipping, tensors for torchvision). The readers of
each ``DATASETS.FORMAT`` are listed in :mod:`pcnacycle.data.catalog`.

A *record* is a dict with at least ``image_id`` (unique, stable across runs),
optionally ``group`` (the movie it comes from, which splits keep whole), and
whatever its reader needs to load it. A *sample* is a dict::

    {"image_id": str,
     "channels": {name: (H, W) ndarray, raw dtype},  # what the files hold
     "masks": (N, H, W) bool ndarray,                 # one per instance
     "labels": (N,) int64 ndarray}                    # class ids 1..K
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..config import CfgNode
from ..errors import PcnacycleError
from ..io import write_json
from .catalog import load_sample
from .channels import DERIVED_CHANNELS

# ---------------------------------------------------------------- splits


def resize_factor(size: float, max_size: float, height: int, width: int) -> float:
    """torchvision's (and detectron2's) resize: shorter side to ``size``, longer side at most ``max_size``.

    Returns 1.0 for ``size`` 0 (images kept at their own scale).
    """
    if not size:
        return 1.0
    return min(size / min(height, width), max_size / max(height, width))


def training_resize_factor(cfg: CfgNode, height: int, width: int) -> float:
    """The mean factor by which the model resizes a ``height`` × ``width`` training image (``INPUT.MIN_SIZE_TRAIN``)."""
    sizes = cfg.INPUT.MIN_SIZE_TRAIN
    if cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING == "range":
        sizes = [(sizes[0] + sizes[1]) / 2]
    return float(np.mean([resize_factor(size, cfg.INPUT.MAX_SIZE_TRAIN, height, width) for size in sizes]))


def median_nucleus_diameter(cfg: CfgNode, records: Sequence[dict], max_records: int = 20,
                            network: bool = False) -> float:
    """Median equivalent diameter (pixels) of the nuclei of up to ``max_records`` records spread over the list.

    ``network``: in the pixels the network sees in training, after the resize of
    ``INPUT.MIN_SIZE_TRAIN`` (the images' own pixels when that is 0). Returns 0.0
    when they hold no nucleus.
    """
    from ..settings import median_diameter

    step = max(1, len(records) // max_records)
    areas = []
    for record in list(records)[::step][:max_records]:
        masks = load_sample(cfg, record)["masks"]
        factor = training_resize_factor(cfg, *masks.shape[1:]) if network and masks.size else 1.0
        areas.append(masks.sum(axis=(1, 2)) * factor**2)
    return median_diameter(np.concatenate(areas) if areas else []) or 0.0


def split_records(records: Sequence[dict], val_size: float, seed: int, by: str = "group") -> dict[str, list[str]]:
    """Seeded random split of image ids into ``train`` and ``val``.

    ``val_size`` is a count (>= 1) or a fraction (< 1) of the images. The same
    ids and seed always give the same split, whatever order the ids come in.

    ``by="group"`` (``DATASETS.SPLIT_BY``) keeps all frames of a movie in one
    subset when records carry a ``group`` (frames of one movie are near
    copies, so splitting them would score memory, not generalisation); the
    validation size is then as close to ``val_size`` as whole movies allow.
    Without groups, or with ``by="image"``, frames are shuffled one by one.
    """
    ids = sorted(r["image_id"] for r in records)
    count = int(round(val_size * len(ids))) if val_size < 1 else int(val_size)
    if count >= len(ids):
        raise PcnacycleError(
            f"DATASETS.VAL_SIZE={val_size} leaves no training images out of {len(ids)}"
        )
    if by == "group" and any("group" in r for r in records):
        return _split_groups(records, count, seed)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:count])
    train = sorted(ids[i] for i in order[count:])
    return {"train": train, "val": val}


def _split_groups(records: Sequence[dict], count: int, seed: int) -> dict[str, list[str]]:
    """Whole groups to ``val`` until it holds about ``count`` images, at least one group each side."""
    members: dict[str, list[str]] = {}
    for record in records:
        members.setdefault(str(record.get("group", record["image_id"])), []).append(record["image_id"])
    names = sorted(members)
    if count and len(names) < 2:
        raise PcnacycleError(f"DATASETS.SPLIT_BY group: all {len(records)} images come from one movie "
                             f"({names[0]}); set DATASETS.SPLIT_BY image to split its frames")
    val_groups, taken = [], 0
    for i in np.random.default_rng(seed).permutation(len(names)) if count else []:
        size = len(members[names[i]])
        # A group joins when it brings val closer to the asked size; one group always stays for training.
        if abs(taken + size - count) < abs(taken - count) and len(val_groups) + 1 < len(names):
            val_groups.append(names[i])
            taken += size
    if count and not val_groups:  # every movie is over twice the asked size: val gets one anyway
        val_groups = [min(names, key=lambda name: (len(members[name]), name))]
    val = sorted(i for name in val_groups for i in members[name])
    train = sorted(i for name in names if name not in val_groups for i in members[name])
    return {"train": train, "val": val}


def write_split(path: str | os.PathLike, split: dict[str, list[str]], cfg: CfgNode) -> None:
    """Save a split with what produced it, so evaluation reuses it exactly."""
    write_json(path, {"dataset_root": cfg.DATASETS.ROOT, "format": cfg.DATASETS.FORMAT,
                      "seed": cfg.DATASETS.SPLIT_SEED, "val_size": cfg.DATASETS.VAL_SIZE,
                      "split_by": cfg.DATASETS.SPLIT_BY, **split})


def read_split(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a ``split.json`` written by :func:`write_split`."""
    try:
        data = json.loads(Path(path).read_text())
        return {"train": list(data["train"]), "val": list(data["val"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PcnacycleError(f"{path}: not a readable split file ({exc})") from exc


def select(records: Sequence[dict], ids: Sequence[str], what: str) -> list[dict]:
    """The records whose ids are listed, in the listed order."""
    by_id = {r["image_id"]: r for r in records}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PcnacycleError(f"{what}: image id(s) not in the dataset: {', '.join(missing[:5])}")
    chosen = [by_id[i] for i in ids]
    if not chosen:
        raise PcnacycleError(f"{what}: the split is empty")
    return chosen


# ---------------------------------------------------------------- channels

def normalize_intensity(image: np.ndarray, percentiles: Sequence[float] = (1.0, 99.8),
                        gamma: float = 1.0) -> np.ndarray:
    """Scale ``image`` so the given percentiles map to 0 and 1, then apply gamma.

    Parameters
    ----------
    image : (H, W) ndarray, any real dtype
    percentiles : (low, high) in percent
    gamma : exponent applied after clipping to [0, 1]

    Returns
    -------
    (H, W) float32 ndarray in [0, 1]. A constant image maps to zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = (float(v) for v in np.percentile(image, percentiles))
    if high <= low:
        return np.zeros_like(image)
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)
    return (scaled ** gamma if gamma != 1.0 else scaled).astype(np.float32, copy=False)


def lowered_otsu_mask(image: np.ndarray, factor: float = 0.6) -> np.ndarray:
    """Binary mask above a lowered Otsu threshold, as the report's third channel.

    The threshold is ``factor`` times Otsu's on a lightly smoothed image, so
    dim (e.g. mitotic) nuclei that plain Otsu misses are still covered.

    Returns
    -------
    (H, W) float32 ndarray of 0 and 1.
    """
    from skimage.filters import gaussian, threshold_otsu

    smooth = gaussian(np.asarray(image, np.float32), sigma=1.0, preserve_range=True)
    if smooth.max() <= smooth.min():
        return np.zeros(smooth.shape, np.float32)
    low = smooth.min()
    threshold = low + factor * (threshold_otsu(smooth) - low)
    return (smooth > threshold).astype(np.float32)


def compose_channels(channels: dict[str, np.ndarray], names: Sequence[str], cfg: CfgNode) -> np.ndarray:
    """Stack the requested channels into the network's input.

    Parameters
    ----------
    channels : {name: (H, W) ndarray}
        What the reader loaded, in the files' own dtypes.
    names : channel names in input order (``INPUT.CHANNELS``); ``otsu`` is
        derived from ``pcna`` (or ``gray``) at ``INPUT.OTSU_FACTOR``.

    Returns
    -------
    (C, H, W) float32 ndarray, each stored channel normalised to [0, 1].
    """
    norm = cfg.INPUT.NORMALIZE
    out = []
    for name in names:
        if name == "otsu":
            source = channels.get("pcna", channels.get("gray"))
            if source is None:
                raise PcnacycleError("channel 'otsu' needs a 'pcna' or 'gray' channel to threshold")
            out.append(lowered_otsu_mask(source, cfg.INPUT.OTSU_FACTOR))
        elif name in channels:
            out.append(normalize_intensity(channels[name], norm.PERCENTILES, norm.GAMMA))
        else:
            raise PcnacycleError(
                f"INPUT.CHANNELS names {name!r}, but this dataset provides {sorted(channels)} "
                f"(and derived {list(DERIVED_CHANNELS)})"
            )
    return np.stack(out)


# ---------------------------------------------------------------- augmentation


def random_crop_window(height: int, width: int, cfg: CfgNode, rng: np.random.Generator,
                       resize: float = 1.0) -> tuple[int, int, int, int]:
    """A crop window ``(top, left, crop_h, crop_w)`` as detectron2's RandomCrop draws it; an absolute
    one ``1 / resize`` times ``INPUT.CROP.SIZE``, for an image to be resized by ``resize`` after cropping."""
    crop = cfg.INPUT.CROP
    if crop.TYPE == "absolute":
        crop_h, crop_w = round(crop.SIZE[0] / resize), round(crop.SIZE[1] / resize)
    elif crop.TYPE == "relative":
        crop_h, crop_w = int(height * crop.SIZE[0] + 0.5), int(width * crop.SIZE[1] + 0.5)
    else:  # relative_range: each side a fraction between SIZE and 1
        frac = np.asarray(crop.SIZE) + rng.random(2) * (1 - np.asarray(crop.SIZE))
        crop_h, crop_w = int(height * frac[0] + 0.5), int(width * frac[1] + 0.5)
    crop_h, crop_w = max(1, min(crop_h, height)), max(1, min(crop_w, width))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return top, left, crop_h, crop_w


#: Instances with fewer visible pixels than this after a crop are dropped:
#: a sliver at the crop edge is not a nucleus anyone could label.
MIN_INSTANCE_PIXELS = 4


def jitter_intensity(image: np.ndarray, names: Sequence[str], magnitude: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Random gain and offset per channel, so the model does not learn one exposure.

    Parameters
    ----------
    image : (C, H, W) float32 in [0, 1], channels named ``names``
    magnitude : gains are drawn from ``1 ± magnitude``, offsets from ``± magnitude``

    Returns
    -------
    (C, H, W) float32, clipped to [0, 1] (the range the model is fed);
    derived channels (binary masks such as ``otsu``) are left unchanged.
    """
    gains = 1 + rng.uniform(-magnitude, magnitude, len(names))
    offsets = rng.uniform(-magnitude, magnitude, len(names))
    out = image.astype(np.float32, copy=True)
    for i, name in enumerate(names):
        if name not in DERIVED_CHANNELS:
            out[i] = np.clip(out[i] * gains[i] + offsets[i], 0.0, 1.0)
    return out


def augment(image: np.ndarray, masks: np.ndarray, labels: np.ndarray, cfg: CfgNode,
            rng: np.random.Generator, resize: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop, flip, rotate and jitter an image with its masks, identically.

    Parameters
    ----------
    image : (C, H, W) float32, channels as named by ``INPUT.CHANNELS``
    masks : (N, H, W) bool
    labels : (N,) int64
    resize : a factor the image is resized by besides the random one (nuclei-only images brought to
        the training nuclei's size); an absolute crop is taken ``1 / resize`` as large, so the
        network still sees crops of ``INPUT.CROP.SIZE``.

    Returns
    -------
    image, masks, labels after the same crop, flips and quarter turns
    (``INPUT.ROTATE_90``; an odd turn swaps H and W), the image's
    intensity jittered (``INPUT.INTENSITY_JITTER``) and image and masks
    resized by a random factor (``INPUT.RANDOM_SCALE``); instances left with
    fewer than :data:`MIN_INSTANCE_PIXELS` pixels are removed. Random draws
    for the optional steps come after the others, so turning them on does
    not change the crops and flips a seed gives.
    """
    if cfg.INPUT.CROP.ENABLED:
        top, left, crop_h, crop_w = random_crop_window(*image.shape[1:], cfg, rng, resize)
        image = image[:, top:top + crop_h, left:left + crop_w]
        masks = masks[:, top:top + crop_h, left:left + crop_w]
        keep = masks.sum(axis=(1, 2)) >= MIN_INSTANCE_PIXELS
        masks, labels = masks[keep], labels[keep]
    flip = cfg.INPUT.RANDOM_FLIP
    if flip in ("horizontal", "both") and rng.random() < 0.5:
        image, masks = image[:, :, ::-1], masks[:, :, ::-1]
    if flip in ("vertical", "both") and rng.random() < 0.5:
        image, masks = image[:, ::-1, :], masks[:, ::-1, :]
    if cfg.INPUT.ROTATE_90:
        turns = int(rng.integers(4))
        image, masks = np.rot90(image, turns, axes=(1, 2)), np.rot90(masks, turns, axes=(1, 2))
    if cfg.INPUT.INTENSITY_JITTER > 0:
        image = jitter_intensity(image, cfg.INPUT.CHANNELS, cfg.INPUT.INTENSITY_JITTER, rng)
    low, high = cfg.INPUT.RANDOM_SCALE
    factor = resize
    if (low, high) != (1.0, 1.0):
        factor *= float(np.exp(rng.uniform(np.log(low), np.log(high))))
    if factor != 1.0:
        image, masks, labels = random_rescale(image, masks, labels, factor)
    return np.ascontiguousarray(image), np.ascontiguousarray(masks), labels


def random_rescale(image: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                   factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image and masks resized by ``factor`` (sides rounded to whole pixels, at least 1).

    Parameters
    ----------
    image : (C, H, W) float32; masks : (N, H, W) bool; labels : (N,) int64

    Returns
    -------
    image (C, h, w) float32 (bilinear, antialiased when shrinking), masks
    (N, h, w) bool (nearest neighbour, so each stays one solid object) and
    labels, without the instances left with fewer than
    :data:`MIN_INSTANCE_PIXELS` pixels.
    """
    height, width = (max(1, round(side * factor)) for side in image.shape[1:])
    # torch's bilinear resize: an order of magnitude faster than scikit-image's on a training image
    image = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
                                            size=(height, width), mode="bilinear", align_corners=False,
                                            antialias=factor < 1)[0].numpy()
    # nearest neighbour by indexing: the centre of each new pixel in the old grid (many times faster
    # than resizing each mask)
    rows = np.minimum(((np.arange(height) + 0.5) * masks.shape[1] / height).astype(int), masks.shape[1] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * masks.shape[2] / width).astype(int), masks.shape[2] - 1)
    masks = masks[:, rows][:, :, cols]
    keep = masks.sum(axis=(1, 2)) >= MIN_INSTANCE_PIXELS
    return image, masks[keep], labels[keep]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes ``(x0, y0, x1, y1)`` enclosing each mask, pixel edges included.

    Parameters
    ----------
    masks : (N, H, W) bool

    Returns
    -------
    (N, 4) float32; ``x1 = last column + 1`` so a one-pixel mask has width 1.
    """
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


# ---------------------------------------------------------------- torch glue


class InstanceDataset(torch.utils.data.Dataset):
    """Records → ``(image, target)`` pairs in torchvision's detection format.

    Indexed by ``(position, seed)`` pairs from :class:`TrainingSampler` when
    augmenting, so that every crop and flip is reproducible from the
    iteration alone (which is what makes ``--resume`` exact); a plain integer
    index means no augmentation.
    """

    def __init__(self, records: Sequence[dict], cfg: CfgNode, augment: bool,
                 nuclei_only: tuple[Sequence[dict], Callable[[dict], tuple[dict, float]]] | None = None):
        self.records = list(records)
        self.cfg = cfg
        self.augment = augment
        # DATASETS.NUCLEI_ONLY, indexed after ``records``: its records, and their loader, which gives a
        # sample and the factor that brings its nuclei to the training size (pcnacycle.data.mixing)
        self.nuclei_only, self.load_nuclei_only = nuclei_only or ([], None)

    def __len__(self) -> int:
        return len(self.records) + len(self.nuclei_only)

    def __getitem__(self, index) -> tuple[torch.Tensor, dict]:
        position, seed = index if isinstance(index, tuple) else (index, None)
        resize = 1.0
        if position < len(self.records):
            sample = load_sample(self.cfg, self.records[position])
        else:
            sample, resize = self.load_nuclei_only(self.nuclei_only[position - len(self.records)])
        image = compose_channels(sample["channels"], self.cfg.INPUT.CHANNELS, self.cfg)
        masks, labels = sample["masks"], sample["labels"]
        if self.augment and seed is not None:
            image, masks, labels = augment(image, masks, labels, self.cfg, np.random.default_rng(seed), resize)
        target = {
            "boxes": torch.from_numpy(masks_to_boxes(masks)).reshape(-1, 4),
            "labels": torch.from_numpy(labels),
            "masks": torch.from_numpy(masks.astype(np.uint8)),
            "image_id": sample["image_id"],
        }
        return torch.from_numpy(image), target


class TrainingSampler(torch.utils.data.Sampler):
    """An endless stream of ``(index, seed)``: a fresh seeded permutation per epoch.

    ``start`` skips that many draws, so a resumed run sees exactly the images
    (and augmentation seeds) that an uninterrupted run would have.
    """

    def __init__(self, size: int, seed: int, start: int = 0):
        self.size, self.seed, self.start = size, seed, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.size)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            for position in range(offset, self.size):
                draw = epoch * self.size + position
                yield int(order[position]), int(np.random.SeedSequence([self.seed, draw]).generate_state(1)[0])
            epoch, offset = epoch + 1, 0


def next_batch(batches: Iterator):
    """The next batch of a DataLoader iterator.

    A :class:`PcnacycleError` raised in a worker process reaches the main
    process with the worker's whole traceback as its message; it is raised
    again with the original one-line message alone.
    """
    try:
        return next(batches)
    except PcnacycleError as exc:
        text = str(exc)
        marker = f"{PcnacycleError.__module__}.{PcnacycleError.__qualname__}: "
        if "DataLoader worker" in text and marker in text:
            raise PcnacycleError(text.rsplit(marker, 1)[1].strip()) from None
        raise


def collate(batch):
    """Keep images of different sizes as a list (torchvision pads them itself)."""
    return tuple(zip(*batch))
