"""Kaggle DSB2018: ``<id>/images/<id>.png``, ``<id>/masks/*.png``."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import PcnacycleError
from ..io import read_image
from .annotations import _dataset_folder
from .channels import _size, _stored_shape

log = logging.getLogger(__name__)


def read_dsb2018_records(root: str | os.PathLike) -> list[dict]:
    """Index a Kaggle DSB2018 ``stage1_train`` folder.

    Layout: ``<root>/<id>/images/<id>.png`` and ``<root>/<id>/masks/*.png``,
    one binary PNG per nucleus. Images without any mask are skipped, counted
    and logged (they carry nothing to learn from). Every image and mask
    header is read here, so an unreadable file or a mask of another size
    than its image stops the run before training starts.

    Returns
    -------
    list of dict
        ``{"image_id", "image_path", "mask_paths"}``, sorted by id.
    """
    root = _dataset_folder(root)
    records, no_masks = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        image_path = folder / "images" / f"{folder.name}.png"
        if not image_path.is_file():
            raise PcnacycleError(f"{folder}: expected the image at {image_path}")
        mask_paths = sorted((folder / "masks").glob("*.png"))
        if not mask_paths:
            no_masks.append(folder.name)
            continue
        size = _stored_shape(image_path)[:2]
        for path in mask_paths:
            if _stored_shape(path)[:2] != size:
                raise PcnacycleError(f"{path}: mask is {_size(_stored_shape(path))} but its image {image_path} is "
                                     f"{_size(size)}")
        records.append({"image_id": folder.name, "image_path": str(image_path),
                        "mask_paths": [str(p) for p in mask_paths]})
    if no_masks:
        log.warning("%s: skipped %d image(s) without masks: %s", root, len(no_masks), ", ".join(no_masks[:5]))
    if not records:
        raise PcnacycleError(f"{root}: no DSB2018 images found (expected <id>/images/<id>.png with <id>/masks/*.png)")
    return records


def load_dsb2018_sample(record: dict) -> dict:
    """Pixels and masks of one DSB2018 record.

    Channels: ``gray`` (mean of the colour channels, as stored: uint8), also
    readable as ``pcna`` so a PCNA-only model can be scored on these nuclei,
    and ``red``, ``green``, ``blue``. Empty mask files are skipped and logged;
    a mask of another size than its image is an error naming the file.
    """
    image = read_image(record["image_path"])
    if image.ndim == 3:
        rgb = image[..., :3]  # drop the alpha channel the PNGs carry
        channels = {"red": rgb[..., 0], "green": rgb[..., 1], "blue": rgb[..., 2],
                    "gray": rgb.mean(axis=-1).astype(np.float32)}
    else:
        channels = {name: image for name in ("gray", "red", "green", "blue")}
    channels["pcna"] = channels["gray"]
    height, width = image.shape[:2]
    masks = []
    for path in record["mask_paths"]:
        mask = read_image(path)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != (height, width):
            raise PcnacycleError(
                f"{path}: mask is {_size(mask.shape)} but its image {record['image_path']} is {width}×{height}"
            )
        if mask.any():
            masks.append(mask > 0)
        else:
            log.warning("%s: empty mask skipped", path)
    mask_array = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    return {"image_id": record["image_id"], "channels": channels, "masks": mask_array,
            "labels": np.ones(len(masks), np.int64)}
