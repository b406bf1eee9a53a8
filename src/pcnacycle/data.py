"""Datasets: reading annotated images, splitting them, and feeding the trainer.

The flow is ``read_records`` (what images exist, cheap) → ``split_records``
(which subset each belongs to, saved as ``split.json``) → ``load_sample``
(pixels and instance masks of one image) → :class:`InstanceDataset` (channel
composition, cropping, flipping, tensors for torchvision).

A *record* is a dict with at least ``image_id`` (unique, stable across runs)
and whatever its reader needs to load it. A *sample* is a dict::

    {"image_id": str,
     "channels": {name: (H, W) ndarray, raw dtype},  # what the files hold
     "masks": (N, H, W) bool ndarray,                 # one per instance
     "labels": (N,) int64 ndarray}                    # class ids 1..K
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .config import CfgNode
from .errors import PcnacycleError
from .io import read_image, write_json

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- readers


def read_dsb2018_records(root: str | os.PathLike) -> list[dict]:
    """Index a Kaggle DSB2018 ``stage1_train`` folder.

    Layout: ``<root>/<id>/images/<id>.png`` and ``<root>/<id>/masks/*.png``,
    one binary PNG per nucleus. Images without any mask are skipped, counted
    and logged (they carry nothing to learn from).

    Returns
    -------
    list of dict
        ``{"image_id", "image_path", "mask_paths"}``, sorted by id.
    """
    root = Path(root)
    if not root.is_dir():
        raise PcnacycleError(f"{root}: dataset folder does not exist (DATASETS.ROOT)")
    records, no_masks = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        image_path = folder / "images" / f"{folder.name}.png"
        if not image_path.is_file():
            raise PcnacycleError(f"{folder}: expected the image at {image_path}")
        mask_paths = sorted((folder / "masks").glob("*.png"))
        if not mask_paths:
            no_masks.append(folder.name)
            continue
        records.append({"image_id": folder.name, "image_path": str(image_path), "mask_paths": [str(p) for p in mask_paths]})
    if no_masks:
        log.warning("%s: skipped %d image(s) without masks: %s", root, len(no_masks), ", ".join(no_masks[:5]))
    if not records:
        raise PcnacycleError(f"{root}: no DSB2018 images found (expected <id>/images/<id>.png with <id>/masks/*.png)")
    return records


def load_dsb2018_sample(record: dict) -> dict:
    """Pixels and masks of one DSB2018 record.

    Channels: ``gray`` (mean of the colour channels, as stored: uint8) and
    ``red``, ``green``, ``blue``. Empty mask files are skipped and logged;
    a mask of another size than its image is an error naming the file.
    """
    image = read_image(record["image_path"])
    if image.ndim == 3:
        rgb = image[..., :3]  # drop the alpha channel the PNGs carry
        channels = {"red": rgb[..., 0], "green": rgb[..., 1], "blue": rgb[..., 2],
                    "gray": rgb.mean(axis=-1).astype(np.float32)}
    else:
        channels = {name: image for name in ("gray", "red", "green", "blue")}
    height, width = image.shape[:2]
    masks = []
    for path in record["mask_paths"]:
        mask = read_image(path)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != (height, width):
            raise PcnacycleError(
                f"{path}: mask is {mask.shape[1]}×{mask.shape[0]} but its image "
                f"{record['image_path']} is {width}×{height}"
            )
        if mask.any():
            masks.append(mask > 0)
        else:
            log.warning("%s: empty mask skipped", path)
    mask_array = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    return {"image_id": record["image_id"], "channels": channels, "masks": mask_array,
            "labels": np.ones(len(masks), np.int64)}


def read_labelmask_records(root: str | os.PathLike, channels: Sequence[str]) -> list[dict]:
    """Index a label-mask dataset (the simulator's ``annotated/`` folder).

    Layout: ``<root>/<channel>/<name>.tif`` for each stored channel, with the
    same names in every channel folder, ``<root>/labels/<name>.tif`` (uint16
    instance labels, 0 = background) and optionally ``<root>/classes.csv``
    with columns ``image,label,class`` (without it every instance is class 1).
    """
    root = Path(root)
    labels_dir = root / "labels"
    if not labels_dir.is_dir():
        raise PcnacycleError(f"{root}: no labels/ folder (expected <root>/labels/<name>.tif)")
    stored = [c for c in channels if c not in DERIVED_CHANNELS]
    records = []
    for label_path in sorted(labels_dir.glob("*.tif*")):
        name = label_path.name.split(".")[0]
        paths = {}
        for channel in stored:
            candidates = sorted((root / channel).glob(f"{name}.tif*"))
            if not candidates:
                raise PcnacycleError(f"{label_path}: no matching image {root / channel / (name + '.tif')}")
            paths[channel] = str(candidates[0])
        records.append({"image_id": name, "label_path": str(label_path), "channel_paths": paths,
                        "classes_path": str(root / "classes.csv")})
    if not records:
        raise PcnacycleError(f"{labels_dir}: no label images (*.tif)")
    return records


def load_labelmask_sample(record: dict, class_names: Sequence[str]) -> dict:
    """Pixels and masks of one label-mask record; classes by name from classes.csv."""
    label_image = read_image(record["label_path"])
    if label_image.ndim != 2:
        raise PcnacycleError(f"{record['label_path']}: expected a 2-D label image, got shape {label_image.shape}")
    channels = {}
    for name, path in record["channel_paths"].items():
        channels[name] = read_image(path)
        if channels[name].shape != label_image.shape:
            raise PcnacycleError(
                f"{path}: image shape {channels[name].shape} differs from its labels "
                f"{record['label_path']} {label_image.shape}"
            )
    ids = np.unique(label_image)
    ids = ids[ids > 0]
    classes = _read_classes(record["classes_path"], record["image_id"], class_names)
    labels = []
    for label in ids:
        if classes is None:
            labels.append(1)
        elif int(label) not in classes:
            raise PcnacycleError(f"{record['classes_path']}: no class for label {label} of image {record['image_id']}")
        else:
            labels.append(classes[int(label)])
    masks = label_image[None] == ids[:, None, None]
    return {"image_id": record["image_id"], "channels": channels, "masks": masks,
            "labels": np.asarray(labels, np.int64)}


def _read_classes(path: str, image_id: str, class_names: Sequence[str]) -> dict[int, int] | None:
    if not Path(path).is_file():
        if len(class_names) > 1:
            raise PcnacycleError(f"{path}: missing; it must give a class for every label when there are {len(class_names)} classes")
        return None
    table = _cached_csv(path)
    missing = {"image", "label", "class"} - set(table.columns)
    if missing:
        raise PcnacycleError(f"{path}: missing column(s) {sorted(missing)}")
    rows = table[table["image"].astype(str) == image_id]
    index = {name: i + 1 for i, name in enumerate(class_names)}
    unknown = sorted(set(rows["class"]) - set(index))
    if unknown:
        raise PcnacycleError(f"{path}: class {unknown[0]!r} (image {image_id}) is not in MODEL.CLASS_NAMES {list(class_names)}")
    return {int(label): index[name] for label, name in zip(rows["label"], rows["class"])}


_CSV_CACHE: dict[str, object] = {}


def _cached_csv(path: str):
    import pandas as pd

    if path not in _CSV_CACHE:
        _CSV_CACHE[path] = pd.read_csv(path, dtype={"image": str, "class": str})
    return _CSV_CACHE[path]


def read_records(cfg: CfgNode) -> list[dict]:
    """Index the dataset that ``DATASETS.FORMAT`` and ``DATASETS.ROOT`` name."""
    root = cfg.DATASETS.ROOT
    if not root:
        raise PcnacycleError("config key 'DATASETS.ROOT' is empty: set it to the dataset folder")
    if cfg.DATASETS.FORMAT == "dsb2018":
        return read_dsb2018_records(root)
    return read_labelmask_records(root, cfg.INPUT.CHANNELS)


def load_sample(cfg: CfgNode, record: dict) -> dict:
    """Load one record with the reader of ``DATASETS.FORMAT``."""
    if cfg.DATASETS.FORMAT == "dsb2018":
        return load_dsb2018_sample(record)
    return load_labelmask_sample(record, cfg.MODEL.CLASS_NAMES)


# ---------------------------------------------------------------- splits


def split_records(records: Sequence[dict], val_size: float, seed: int) -> dict[str, list[str]]:
    """Seeded random split of image ids into ``train`` and ``val``.

    ``val_size`` is a count (>= 1) or a fraction (< 1) of the images. The same
    ids and seed always give the same split, whatever order the ids come in.
    """
    ids = sorted(r["image_id"] for r in records)
    count = int(round(val_size * len(ids))) if val_size < 1 else int(val_size)
    if count >= len(ids):
        raise PcnacycleError(
            f"DATASETS.VAL_SIZE={val_size} leaves no training images out of {len(ids)}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:count])
    train = sorted(ids[i] for i in order[count:])
    return {"train": train, "val": val}


def write_split(path: str | os.PathLike, split: dict[str, list[str]], cfg: CfgNode) -> None:
    """Save a split with what produced it, so evaluation reuses it exactly."""
    write_json(path, {"dataset_root": cfg.DATASETS.ROOT, "format": cfg.DATASETS.FORMAT,
                      "seed": cfg.DATASETS.SPLIT_SEED, "val_size": cfg.DATASETS.VAL_SIZE, **split})


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

#: Channels computed from stored ones rather than read from files.
DERIVED_CHANNELS = ("otsu",)


def normalize_intensity(image: np.ndarray, percentiles: Sequence[float] = (1.0, 99.8), gamma: float = 1.0) -> np.ndarray:
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


def lowered_otsu_mask(image: np.ndarray, factor: float = 0.5) -> np.ndarray:
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
        derived from the first stored fluorescence channel (``pcna`` if present).

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
            out.append(lowered_otsu_mask(source))
        elif name in channels:
            out.append(normalize_intensity(channels[name], norm.PERCENTILES, norm.GAMMA))
        else:
            raise PcnacycleError(
                f"INPUT.CHANNELS names {name!r}, but this dataset provides {sorted(channels)} (and derived {list(DERIVED_CHANNELS)})"
            )
    return np.stack(out)


# ---------------------------------------------------------------- augmentation


def random_crop_window(height: int, width: int, cfg: CfgNode, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A crop window ``(top, left, crop_h, crop_w)`` as detectron2's RandomCrop draws it."""
    crop = cfg.INPUT.CROP
    if crop.TYPE == "absolute":
        crop_h, crop_w = int(crop.SIZE[0]), int(crop.SIZE[1])
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


def augment(image: np.ndarray, masks: np.ndarray, labels: np.ndarray, cfg: CfgNode,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop and flip an image with its masks, identically.

    Parameters
    ----------
    image : (C, H, W) float32
    masks : (N, H, W) bool
    labels : (N,) int64

    Returns
    -------
    image, masks, labels after the same crop and flips; instances left with
    fewer than :data:`MIN_INSTANCE_PIXELS` pixels are removed.
    """
    if cfg.INPUT.CROP.ENABLED:
        top, left, crop_h, crop_w = random_crop_window(*image.shape[1:], cfg, rng)
        image = image[:, top:top + crop_h, left:left + crop_w]
        masks = masks[:, top:top + crop_h, left:left + crop_w]
        keep = masks.sum(axis=(1, 2)) >= MIN_INSTANCE_PIXELS
        masks, labels = masks[keep], labels[keep]
    flip = cfg.INPUT.RANDOM_FLIP
    if flip in ("horizontal", "both") and rng.random() < 0.5:
        image, masks = image[:, :, ::-1], masks[:, :, ::-1]
    if flip in ("vertical", "both") and rng.random() < 0.5:
        image, masks = image[:, ::-1, :], masks[:, ::-1, :]
    return np.ascontiguousarray(image), np.ascontiguousarray(masks), labels


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

    def __init__(self, records: Sequence[dict], cfg: CfgNode, augment: bool):
        self.records = list(records)
        self.cfg = cfg
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index) -> tuple[torch.Tensor, dict]:
        position, seed = index if isinstance(index, tuple) else (index, None)
        sample = load_sample(self.cfg, self.records[position])
        image = compose_channels(sample["channels"], self.cfg.INPUT.CHANNELS, self.cfg)
        masks, labels = sample["masks"], sample["labels"]
        if self.augment and seed is not None:
            image, masks, labels = augment(image, masks, labels, self.cfg, np.random.default_rng(seed))
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


def collate(batch):
    """Keep images of different sizes as a list (torchvision pads them itself)."""
    return tuple(zip(*batch))
