"""Label masks: ``<root>/<channel>/<name>.tif``, ``<root>/labels/<name>.tif``, ``<root>/classes.csv``.

The simulator's ``annotated/`` folder is one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError
from ..io import read_image
from .cache import FileCache
from .channels import _size, channel_sources, check_channel_files, read_channels

log = logging.getLogger(__name__)


def read_labelmask_records(root: str | os.PathLike, cfg: CfgNode) -> list[dict]:
    """Index a label-mask dataset (the simulator's ``annotated/`` folder).

    Layout: ``<root>/labels/<name>.tif`` (uint16 instance labels, 0 =
    background), each channel's ``<name>.tif`` where the module docstring
    says, and optionally ``<root>/classes.csv`` with columns
    ``image,label,class`` (without it every instance is class 1).

    Every label image is read here, and every channel file's header, so that
    a missing or unreadable file, a shape mismatch or a label without a
    class stops the run before training starts. Label images holding no
    instance are skipped and counted in a warning; a dataset of nothing but
    empty labels is refused.
    """
    root = Path(root)
    labels_dir = root / "labels"
    if not labels_dir.is_dir():
        raise PcnacycleError(f"{root}: no labels/ folder (expected <root>/labels/<name>.tif)")
    sources = channel_sources(root, cfg)
    records, empty = [], []
    label_paths = sorted(labels_dir.glob("*.tif*"))
    for label_path in label_paths:
        name = label_path.name.split(".")[0]
        files = []
        for folder, names in sources:
            candidates = sorted(folder.glob(f"{name}.tif*"))
            if not candidates:
                raise PcnacycleError(f"{label_path}: no matching image {folder / (name + '.tif')}")
            files.append((str(candidates[0]), names))
        record = {"image_id": name, "label_path": str(label_path), "channel_files": files,
                  "classes_path": str(root / "classes.csv")}
        label_image = _read_label_image(label_path)
        shape = check_channel_files(files, str(label_path))
        if shape != label_image.shape:
            raise PcnacycleError(f"{files[0][0]}: image is {_size(shape)} but its labels {label_path} are "
                                 f"{_size(label_image.shape)}")
        ids, _ = _labelmask_instances(label_image, record, cfg.MODEL.CLASS_NAMES)
        if len(ids):
            records.append(record)
        else:
            empty.append(name)
    if not label_paths:
        raise PcnacycleError(f"{labels_dir}: no label images (*.tif)")
    if not records:
        raise PcnacycleError(f"{labels_dir}: all {len(empty)} label image(s) are empty (only 0, no instance): "
                             "nothing to train on")
    if empty:
        log.warning("%s: skipped %d of %d label image(s) that hold no instance: %s", labels_dir, len(empty),
                    len(label_paths), ", ".join(empty[:5]))
    return records


def _read_label_image(path: str | os.PathLike) -> np.ndarray:
    """A 2-D integer label image, or an error naming the file."""
    label_image = read_image(path)
    if label_image.ndim != 2:
        raise PcnacycleError(f"{path}: expected a 2-D label image, got shape {label_image.shape}")
    if not np.issubdtype(label_image.dtype, np.integer):
        raise PcnacycleError(f"{path}: labels must be integers, got {label_image.dtype}")
    return label_image


def _labelmask_instances(label_image: np.ndarray, record: dict,
                         class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The instance ids of a label image (ascending, 0 excluded) and their class ids 1..K.

    With one class every instance is class 1, whatever classes.csv calls it
    (a phase-annotated set trains a nucleus model), as for the other formats.
    """
    ids = np.unique(label_image)
    ids = ids[ids > 0]
    classes = None
    if len(ids) and len(class_names) > 1:
        classes = _read_classes(record["classes_path"], record["image_id"], class_names)
    if classes is None:
        return ids, np.ones(len(ids), np.int64)
    unclassed = [int(label) for label in ids if int(label) not in classes]
    if unclassed:
        raise PcnacycleError(f"{record['classes_path']}: no class for label {unclassed[0]} of image "
                             f"{record['image_id']}")
    return ids, np.asarray([classes[int(label)] for label in ids], np.int64)


def load_labelmask_sample(record: dict, class_names: Sequence[str]) -> dict:
    """Pixels and masks of one label-mask record; classes by name from classes.csv."""
    label_image = _read_label_image(record["label_path"])
    channels = read_channels(record["channel_files"])
    shape = next(iter(channels.values())).shape
    if shape != label_image.shape:
        raise PcnacycleError(f"{record['channel_files'][0][0]}: image shape {shape} differs from its labels "
                             f"{record['label_path']} {label_image.shape}")
    ids, labels = _labelmask_instances(label_image, record, class_names)
    masks = label_image[None] == ids[:, None, None]
    return {"image_id": record["image_id"], "channels": channels, "masks": masks, "labels": labels}


def _read_classes(path: str, image_id: str, class_names: Sequence[str]) -> dict[int, int]:
    if not Path(path).is_file():
        raise PcnacycleError(f"{path}: missing; it must give a class for every label when there are "
                             f"{len(class_names)} classes")
    table = _cached_csv(path)
    missing = {"image", "label", "class"} - set(table.columns)
    if missing:
        raise PcnacycleError(f"{path}: missing column(s) {sorted(missing)}")
    rows = table[table["image"].astype(str) == image_id]
    index = {name: i + 1 for i, name in enumerate(class_names)}
    unknown = sorted(set(rows["class"]) - set(index))
    if unknown:
        raise PcnacycleError(f"{path}: class {unknown[0]!r} (image {image_id}) is not in MODEL.CLASS_NAMES "
                             f"{list(class_names)}")
    return {int(label): index[name] for label, name in zip(rows["label"], rows["class"])}


# classes.csv tables, read once per file until the file changes.
_CSV_CACHE = FileCache()


def _cached_csv(path: str):
    import pandas as pd

    return _CSV_CACHE.get(path, "table", lambda: pd.read_csv(path, dtype={"image": str, "class": str}))


