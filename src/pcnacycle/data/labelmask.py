"""Label masks: ``<root>/<channel>/<name>.tif``, ``<root>/labels/<name>.tif``, ``<root>/classes.csv``.

The simulator's ``annotated/`` folder is one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError
from ..io import read_image
from .cache import FileCache
from .channels import channel_sources, read_channels


def read_labelmask_records(root: str | os.PathLike, cfg: CfgNode) -> list[dict]:
    """Index a label-mask dataset (the simulator's ``annotated/`` folder).

    Layout: ``<root>/labels/<name>.tif`` (uint16 instance labels, 0 =
    background), each channel's ``<name>.tif`` where the module docstring
    says, and optionally ``<root>/classes.csv`` with columns
    ``image,label,class`` (without it every instance is class 1).
    """
    root = Path(root)
    labels_dir = root / "labels"
    if not labels_dir.is_dir():
        raise PcnacycleError(f"{root}: no labels/ folder (expected <root>/labels/<name>.tif)")
    sources = channel_sources(root, cfg)
    records = []
    for label_path in sorted(labels_dir.glob("*.tif*")):
        name = label_path.name.split(".")[0]
        files = []
        for folder, names in sources:
            candidates = sorted(folder.glob(f"{name}.tif*"))
            if not candidates:
                raise PcnacycleError(f"{label_path}: no matching image {folder / (name + '.tif')}")
            files.append((str(candidates[0]), names))
        records.append({"image_id": name, "label_path": str(label_path), "channel_files": files,
                        "classes_path": str(root / "classes.csv")})
    if not records:
        raise PcnacycleError(f"{labels_dir}: no label images (*.tif)")
    return records


def load_labelmask_sample(record: dict, class_names: Sequence[str]) -> dict:
    """Pixels and masks of one label-mask record; classes by name from classes.csv."""
    label_image = read_image(record["label_path"])
    if label_image.ndim != 2:
        raise PcnacycleError(f"{record['label_path']}: expected a 2-D label image, got shape {label_image.shape}")
    channels = read_channels(record["channel_files"])
    shape = next(iter(channels.values())).shape
    if shape != label_image.shape:
        raise PcnacycleError(f"{record['channel_files'][0][0]}: image shape {shape} differs from its labels "
                             f"{record['label_path']} {label_image.shape}")
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
            raise PcnacycleError(f"{path}: missing; it must give a class for every label when there are "
                                 f"{len(class_names)} classes")
        return None
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


