"""VIA 2 polygon annotations (JSON) of images under ``DATASETS.ROOT``."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError
from .annotations import (
    _dataset_folder,
    _log_unannotated,
    _read_json,
    _unique_image_id,
    annotation_file,
    check_polygon,
    polygon_fault,
)
from .channels import channel_files, channel_sources, check_channel_files, read_channels
from .classes import class_lookup

log = logging.getLogger(__name__)


def read_via2_records(root: str | os.PathLike, cfg: CfgNode) -> list[dict]:
    """Index VIA 2 polygon annotations ("Export annotations as json", or a project file).

    The JSON maps a key per image to ``{"filename", "regions": [{"shape_attributes":
    {"name": "polygon", "all_points_x", "all_points_y"}, "region_attributes":
    {<DATASETS.CLASS_ATTRIBUTE>: class}}]}``; regions may be a dict keyed by
    index (older exports) and the whole may be wrapped in ``_via_img_metadata``
    (project files). Coordinates are pixel-centre based: pixels whose centres
    lie inside a polygon belong to it (``skimage.draw.polygon``). Images
    without regions are skipped and logged. Polygons that are
    self-intersecting, have no area or enclose no pixel centre are skipped
    and listed in one warning (file, image, region): they outline no
    nucleus anyone could train on, and one slip of the mouse should not
    stop a dataset of thousands of regions.

    Returns
    -------
    list of dict
        ``{"image_id", "channel_files", "shape", "polygons", "labels"}``,
        sorted by id; ``image_id`` is the file name without extension.

    Raises
    ------
    PcnacycleError
        Naming the JSON file, the image and the region index for a missing
        image, a non-polygon shape, a polygon of fewer than 3 points or
        outside its image, or a class not in MODEL.CLASS_NAMES.
    """
    from skimage.draw import polygon as draw_polygon

    root = _dataset_folder(root)
    json_path = annotation_file(root, cfg.DATASETS.ANNOTATIONS)
    data = _read_json(json_path)
    entries = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise PcnacycleError(f"{json_path}: not a VIA 2 annotation file (expected an object keyed by image)")
    sources = channel_sources(root, cfg)
    attribute = cfg.DATASETS.CLASS_ATTRIBUTE
    classify = class_lookup(cfg, f"region attribute {attribute!r}, DATASETS.CLASS_ATTRIBUTE")
    records, unannotated, seen, faulty = [], [], {}, []
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not entry.get("filename"):
            raise PcnacycleError(f"{json_path}: entry {key!r} names no image file")
        filename = entry["filename"]
        regions = entry.get("regions") or []
        if isinstance(regions, dict):  # older VIA 2 exports key regions by their index
            regions = [regions[k] for k in sorted(regions, key=int)]
        if not regions:
            unannotated.append(filename)
            continue
        where = f"{json_path}: image {filename}"
        files = channel_files(sources, filename)
        shape = check_channel_files(files, where)
        polygons, labels = [], []
        for index, region in enumerate(regions):
            at = f"{where}, region {index}"
            outline = region.get("shape_attributes") or {}
            if outline.get("name") != "polygon":
                raise PcnacycleError(f"{at}: a {outline.get('name')!r} shape; only polygons are read")
            xs, ys = check_polygon(outline.get("all_points_x") or [], outline.get("all_points_y") or [], shape, at)
            fault = polygon_fault(xs, ys) or (None if draw_polygon(ys, xs, shape)[0].size else "no pixel inside")
            if fault:
                faulty.append(f"image {filename} region {index} ({fault})")
                continue
            polygons.append([xs.tolist(), ys.tolist()])
            labels.append(classify((region.get("region_attributes") or {}).get(attribute), at))
        if not polygons:
            unannotated.append(filename)
            continue
        records.append({"image_id": _unique_image_id(filename, json_path, seen), "channel_files": files,
                        "shape": list(shape), "polygons": polygons, "labels": labels})
    if faulty:
        log.warning("%s: skipped %d polygon(s) that outline no nucleus: %s%s", json_path, len(faulty),
                    ", ".join(faulty[:10]), ", ..." if len(faulty) > 10 else "")
    _log_unannotated(json_path, unannotated)
    if not records:
        raise PcnacycleError(f"{json_path}: no image has any annotated region"
                             + (f" that outlines a nucleus ({len(faulty)} skipped)" if faulty else ""))
    return sorted(records, key=lambda r: r["image_id"])


def load_via2_sample(record: dict) -> dict:
    """Pixels of one VIA 2 record and its polygons rasterised (pixel centres inside)."""
    from skimage.draw import polygon as draw_polygon

    channels = read_channels(record["channel_files"])
    shape = tuple(record["shape"])
    masks = np.zeros((len(record["polygons"]),) + shape, bool)
    for mask, (xs, ys) in zip(masks, record["polygons"]):
        mask[draw_polygon(ys, xs, shape)] = True
    return {"image_id": record["image_id"], "channels": channels, "masks": masks,
            "labels": np.asarray(record["labels"], np.int64)}
