"""Pre-annotation: a model's predictions written as VIA 2 and COCO annotations.

Correcting a model's outlines is much faster than drawing every nucleus, so
``preannotate`` runs a trained model on new frames and writes what it found
as files an annotation tool opens (VIA 2 for polygons with a phase attribute,
COCO for most others). Once corrected, the same files are training data:
``DATASETS.FORMAT via2`` (or ``coco``) with ``DATASETS.ROOT`` the images'
dataset folder and ``DATASETS.ANNOTATIONS`` the written file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import CfgNode
from .data.channels import channel_files, channel_sources, read_channels
from .engine.predictor import Predictor
from .engine.scale import input_scale, predict_scaled
from .errors import PcnacycleError
from .io import write_json
from .safeguards import check_output_folder

log = logging.getLogger(__name__)

#: File names of the annotations written into the output folder.
OUTPUT_NAMES = {"via2": "via_region_data.json", "coco": "coco_annotations.json"}


def object_outline(mask: np.ndarray) -> np.ndarray:
    """The outline of the largest part of ``mask`` as a polygon.

    Parameters
    ----------
    mask : (H, W) bool, not all False

    Returns
    -------
    (P, 2) float64 ``(row, col)`` vertices in pixel-centre coordinates (the
    contour at half height between object and background pixel centres,
    simplified to within half a pixel), P >= 3, not repeating the first
    vertex. Rasterising it with
    ``skimage.draw.polygon`` gives back the mask's part.
    """
    from skimage.measure import approximate_polygon, find_contours

    # The zero border closes contours of objects touching the image edge.
    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    contour = max(contours, key=len) - 1  # the outer outline of the largest part; holes are shorter
    simplified = approximate_polygon(contour, tolerance=0.5)
    outline = simplified if len(simplified) >= 4 else contour  # keep at least a triangle (plus closure)
    return outline[:-1]  # find_contours closes the loop by repeating the first point


def predicted_objects(result: dict) -> list[dict]:
    """The objects of a :meth:`~pcnacycle.engine.predictor.Predictor.predict` result, outlined.

    Returns
    -------
    list of ``{"outline": (P, 2) (row, col) pixel-centre vertices in the frame,
    "bbox": [x, y, width, height] of its pixels, "area": pixel count,
    "label": class id, "score"}``, in the result's order.
    """
    from scipy import ndimage as ndi

    label_image = result["label_image"]
    objects = []
    for index, box in enumerate(ndi.find_objects(label_image, max_label=len(result["labels"]))):
        if box is None:  # painted over entirely by more confident objects
            continue
        mask = label_image[box] == index + 1
        objects.append({"outline": object_outline(mask) + (box[0].start, box[1].start),
                        "bbox": [box[1].start, box[0].start, box[1].stop - box[1].start, box[0].stop - box[0].start],
                        "area": int(mask.sum()), "label": int(result["labels"][index]),
                        "score": float(result["scores"][index])})
    return objects


def via2_entry(path: Path, objects: Sequence[dict], class_names: Sequence[str], attribute: str) -> dict:
    """One image's VIA 2 entry: polygons (pixel-centre coordinates) with a class attribute."""
    regions = [{"shape_attributes": {"name": "polygon",
                                     "all_points_x": np.round(o["outline"][:, 1], 2).tolist(),
                                     "all_points_y": np.round(o["outline"][:, 0], 2).tolist()},
                "region_attributes": {attribute: class_names[o["label"] - 1]}}
               for o in objects]
    return {"filename": path.name, "size": path.stat().st_size, "regions": regions, "file_attributes": {}}


def coco_annotations(objects: Sequence[dict], image_id: int, first_id: int) -> list[dict]:
    """One image's COCO annotations; polygons in COCO's pixel-edge coordinates (centre + 0.5)."""
    return [{"id": first_id + k, "image_id": image_id, "category_id": o["label"],
             "segmentation": [np.round(o["outline"][:, ::-1] + 0.5, 2).ravel().tolist()],  # x0, y0, x1, y1, ...
             "area": o["area"], "bbox": o["bbox"], "iscrowd": 0, "score": round(o["score"], 4)}
            for k, o in enumerate(objects)]


def _dataset_root(folder: Path, cfg: CfgNode) -> Path:
    """The dataset folder (``DATASETS.ROOT``) whose readers look for annotated images in ``folder``.

    That is ``folder`` itself or its parent (``<root>/pcna/``, with
    ``<root>/dic/`` beside it), whichever the channel layout rules accept.
    """
    problems = []
    for root in (folder, folder.parent):
        try:
            if channel_sources(root, cfg)[0][0].resolve() == folder.resolve():
                return root
        except PcnacycleError as exc:
            problems.append(str(exc))
    raise PcnacycleError(f"{folder}: the readers would not look for these images there with INPUT.CHANNELS "
                         f"{list(cfg.INPUT.CHANNELS)}" + (f" ({'; '.join(problems)})" if problems else ""))


def preannotate(weights: str | os.PathLike, images: Sequence[str | os.PathLike], output: str | os.PathLike,
                cfg: CfgNode | None = None, fmt: Sequence[str] = ("via2", "coco"),
                overwrite: bool = False, nucleus_diameter: float | None = None,
                rescale: bool = True) -> dict[str, Path]:
    """Predict nuclei and phases in ``images`` and write them as annotations.

    Parameters
    ----------
    weights : a checkpoint, or a training folder (its ``model_final.pt``)
    images : files of the annotated channel (``pcna`` or ``gray``), all in
        one folder; their other channels (e.g. ``dic``) are found beside them
        as the readers find them (see :mod:`pcnacycle.data.channels`).
    output : folder for the annotation files (:data:`OUTPUT_NAMES`)
    cfg : the model's config; None: the one saved in the checkpoint
    fmt : any of ``"via2"`` and ``"coco"``
    overwrite : replace annotation files already in ``output`` (they may hold
        hours of hand corrections, so they are refused by default)
    nucleus_diameter, rescale : as ``pcnacycle run``: images are resized so their nuclei look
        the size the model was trained on (one factor, measured on the model's detections in
        three of the images unless ``nucleus_diameter`` is given in px; ``rescale`` False:
        never); outlines are written at the images' own pixels.

    Returns
    -------
    {format: path of the file written}. Every image is listed, with no
    regions when nothing was found, so an annotator sees them all.

    Raises
    ------
    PcnacycleError
        For unknown formats, no images, images in several folders, or a
        missing or unreadable image or channel file.
    """
    unknown = sorted(set(fmt) - set(OUTPUT_NAMES))
    if unknown or not fmt:
        raise PcnacycleError(f"annotation format(s) {unknown or list(fmt)}: choose from {sorted(OUTPUT_NAMES)}")
    paths = [Path(p) for p in images]
    if not paths:
        raise PcnacycleError("no images to pre-annotate")
    folders = sorted({str(p.parent.resolve()) for p in paths})
    if len(folders) > 1:
        raise PcnacycleError(f"images come from {len(folders)} folders ({folders[0]}, {folders[1]}, ...); "
                             "annotation files name images by file name, so pre-annotate one folder at a time")
    for path in paths:
        if not path.is_file():
            raise PcnacycleError(f"{path}: no such image file")
    output = check_output_folder(output)
    existing = [output / OUTPUT_NAMES[f] for f in fmt if (output / OUTPUT_NAMES[f]).exists()]
    if existing and not overwrite:
        raise PcnacycleError(f"{existing[0]} already exists (perhaps with your corrections); choose another --output "
                             "or pass --overwrite to replace it")
    predictor = Predictor(weights, cfg)
    cfg = predictor.cfg
    root = _dataset_root(paths[0].parent, cfg)
    sources = channel_sources(root, cfg)
    class_names = list(cfg.MODEL.CLASS_NAMES)
    attribute = cfg.DATASETS.CLASS_ATTRIBUTE
    spread = sorted({0, len(paths) // 2, len(paths) - 1})
    samples = [read_channels(channel_files(sources, paths[i].name)) for i in spread]
    scale, _ = input_scale(predictor, samples, nucleus_diameter, rescale)
    via, coco_images, coco_objects = {}, [], []
    for image_id, path in enumerate(paths, start=1):
        channels = read_channels(channel_files(sources, path.name))
        result = predict_scaled(predictor, channels, scale)
        objects = predicted_objects(result)
        via[f"{path.name}{path.stat().st_size}"] = via2_entry(path, objects, class_names, attribute)  # VIA's key
        height, width = result["label_image"].shape
        coco_images.append({"id": image_id, "file_name": path.name, "height": int(height), "width": int(width)})
        coco_objects += coco_annotations(objects, image_id, first_id=len(coco_objects) + 1)
        log.info("%s: %d nuclei", path, len(objects))
    written = {}
    if "via2" in fmt:
        written["via2"] = output / OUTPUT_NAMES["via2"]
        write_json(written["via2"], via)
    if "coco" in fmt:
        written["coco"] = output / OUTPUT_NAMES["coco"]
        write_json(written["coco"], {
            "images": coco_images, "annotations": coco_objects,
            "categories": [{"id": i + 1, "name": name, "supercategory": "nucleus"}
                           for i, name in enumerate(class_names)],
        })
    for name, path in written.items():
        log.info("wrote %s; read it back with DATASETS.FORMAT %s DATASETS.ROOT %s DATASETS.ANNOTATIONS %s",
                 path, name, root.resolve(), path.resolve())
    return written
