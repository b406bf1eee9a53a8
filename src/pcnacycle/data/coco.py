"""COCO instance annotations (polygons or RLE) of images under ``DATASETS.ROOT``."""

from __future__ import annotations

import os

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError
from .annotations import _dataset_folder, _log_unannotated, _read_json, _unique_image_id, annotation_file, check_polygon
from .channels import _size, channel_files, channel_sources, check_channel_files, read_channels
from .classes import class_lookup


def _coco_rle(segmentation, shape: tuple[int, int]) -> dict:
    """One COCO segmentation (polygon parts, or RLE) as a compressed RLE for pycocotools."""
    from pycocotools import mask as mask_utils

    height, width = shape
    if isinstance(segmentation, list):
        parts = [list(map(float, part)) for part in segmentation]
        return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    if isinstance(segmentation["counts"], list):  # uncompressed RLE
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def check_coco_segmentation(segmentation, shape: tuple[int, int], where: str):
    """A COCO ``segmentation`` checked against its ``(H, W)`` image; returned as given.

    Polygons are flat ``[x0, y0, x1, y1, ...]`` lists in pixel-edge
    coordinates (pixel ``(0, 0)`` spans ``[0, 1)²``); RLEs are
    ``{"size": [H, W], "counts": ...}``.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list) and segmentation:
        for part in segmentation:
            if not isinstance(part, list) or len(part) % 2:
                raise PcnacycleError(f"{where}: a polygon must be a flat list [x0, y0, x1, y1, ...]")
            check_polygon(part[0::2], part[1::2], shape, where)
    elif isinstance(segmentation, dict) and {"size", "counts"} <= set(segmentation):
        if list(segmentation["size"]) != list(shape):
            raise PcnacycleError(f"{where}: RLE of size {segmentation['size']} but the image is "
                                 f"{_size(shape)} (size is [H, W])")
    else:
        raise PcnacycleError(f"{where}: segmentation is neither polygons nor an RLE")
    try:
        area = int(mask_utils.area(_coco_rle(segmentation, shape)))
    except (TypeError, ValueError) as exc:
        raise PcnacycleError(f"{where}: segmentation cannot be decoded ({exc})") from exc
    if area == 0:
        raise PcnacycleError(f"{where}: segmentation covers no pixel")
    return segmentation


def read_coco_records(root: str | os.PathLike, cfg: CfgNode) -> list[dict]:
    """Index COCO instance annotations of images under ``root``.

    ``file_name`` is the annotated channel's file (found as the module
    docstring says); category names go through ``DATASETS.CLASS_MAP`` to
    ``MODEL.CLASS_NAMES``. Crowd annotations (``iscrowd``) are skipped: they
    do not outline one nucleus. Images without annotations are skipped and
    logged.

    Returns
    -------
    list of dict
        ``{"image_id", "channel_files", "shape", "segmentations", "labels"}``,
        sorted by id; ``image_id`` is ``file_name`` without extension.

    Raises
    ------
    PcnacycleError
        Naming the JSON file, the image and the annotation id for a missing
        image, an unknown category or class, a bad polygon or RLE.
    """
    root = _dataset_folder(root)
    json_path = annotation_file(root, cfg.DATASETS.ANNOTATIONS)
    data = _read_json(json_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise PcnacycleError(f"{json_path}: no {key!r} list; not a COCO instance annotation file")
    try:
        categories = {c["id"]: c["name"] for c in data["categories"]}
        images = {image["id"]: image for image in data["images"]}
    except (KeyError, TypeError) as exc:
        raise PcnacycleError(f"{json_path}: a category or image lacks its {exc} field") from None
    by_image: dict = {}
    for index, annotation in enumerate(data["annotations"]):
        if annotation.get("image_id") not in images:
            raise PcnacycleError(f"{json_path}: annotation {annotation.get('id', index)} names image id "
                                 f"{annotation.get('image_id')!r}, which 'images' lacks")
        if not annotation.get("iscrowd"):
            by_image.setdefault(annotation["image_id"], []).append(annotation)
    sources = channel_sources(root, cfg)
    classify = class_lookup(cfg, "category")
    records, unannotated, seen = [], [], {}
    for image in images.values():
        filename = image.get("file_name")
        if not filename:
            raise PcnacycleError(f"{json_path}: image id {image['id']!r} has no file_name")
        if image["id"] not in by_image:
            unannotated.append(filename)
            continue
        where = f"{json_path}: image {filename}"
        files = channel_files(sources, filename)
        shape = check_channel_files(files, where)
        declared = (image.get("height"), image.get("width"))
        if None not in declared and tuple(declared) != shape:
            raise PcnacycleError(f"{where}: 'images' says {_size(declared)} but {files[0][0]} is {_size(shape)}")
        segmentations, labels = [], []
        for annotation in by_image[image["id"]]:
            at = f"{where}, annotation {annotation.get('id')}"
            category = annotation.get("category_id")
            if category not in categories:
                raise PcnacycleError(f"{at}: category id {category!r} is not in 'categories'")
            labels.append(classify(categories[category], at))
            segmentations.append(check_coco_segmentation(annotation.get("segmentation"), shape, at))
        records.append({"image_id": _unique_image_id(filename, json_path, seen), "channel_files": files,
                        "shape": list(shape), "segmentations": segmentations, "labels": labels})
    _log_unannotated(json_path, unannotated)
    if not records:
        raise PcnacycleError(f"{json_path}: no image has any annotation")
    return sorted(records, key=lambda r: r["image_id"])


def load_coco_sample(record: dict) -> dict:
    """Pixels of one COCO record and its segmentations rasterised by pycocotools."""
    from pycocotools import mask as mask_utils

    channels = read_channels(record["channel_files"])
    shape = tuple(record["shape"])
    masks = np.zeros((len(record["segmentations"]),) + shape, bool)
    for mask, segmentation in zip(masks, record["segmentations"]):
        mask[:] = mask_utils.decode(_coco_rle(segmentation, shape)) > 0
    return {"image_id": record["image_id"], "channels": channels, "masks": masks,
            "labels": np.asarray(record["labels"], np.int64)}
