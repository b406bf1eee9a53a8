"""Training frames to annotate: exported from a movie, read from (pre-)annotations, saved as label masks (no napari).

The loop (README, "Correcting and annotating in napari"):

1. :func:`export_frames` writes chosen frames of a movie as a dataset
   folder (``pcna/frame_NNN.tif``, ``dic/frame_NNN.tif``);
2. ``pcnacycle annotate`` pre-annotates them (VIA 2 / COCO JSON);
3. :func:`load_annotations` reads those annotations with the trainer's own
   dataset readers into one label stack, the annotation widget shows it
   and the user corrects masks and phase classes;
4. :func:`save_labelmask` writes ``labels/<name>.tif``, the channel images
   and ``classes.csv`` (``DATASETS.FORMAT labelmask``), which ``pcnacycle
   train`` reads to fine-tune.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import CfgNode
from ..errors import PcnacycleError
from ..io import MANIFEST_KEY, read_manifest, remove_outputs, write_json, write_text, write_tiff

#: Marker of a folder :func:`save_labelmask` wrote, listing its files.
ANNOTATION_MARKER = "annotation.json"


@dataclass
class AnnotationStack:
    """Annotated frames of one size, stacked for a viewer.

    Attributes
    ----------
    image_ids : (N,) names of the frames (file names without extension)
    channels : {channel: (N, H, W) array} for each stored channel of the config's ``INPUT.CHANNELS``
    labels : (N, H, W) uint16; a nucleus's label is unique in the whole stack (0 background)
    classes : {label: class name of ``MODEL.CLASS_NAMES``}
    """

    image_ids: list[str]
    channels: dict[str, np.ndarray]
    labels: np.ndarray
    classes: dict[int, str]


def parse_frames(text: str, count: int) -> list[int]:
    """Frames ``"0, 10, 20-23"`` of a ``count``-frame movie as sorted unique indices.

    Raises
    ------
    PcnacycleError
        For a malformed entry or a frame outside 0..count-1.
    """
    frames = set()
    for entry in filter(None, (part.strip() for part in text.split(","))):
        first, sep, last = entry.partition("-")
        try:
            span = range(int(first), int(last) + 1) if sep else [int(first)]
        except ValueError:
            raise PcnacycleError(f"frames {text!r}: {entry!r} is not a frame number or a range like 20-23") from None
        bad = [t for t in span if not 0 <= t < count]
        if bad or not span:
            raise PcnacycleError(f"frames {text!r}: {entry!r} lies outside the movie's frames 0-{count - 1}")
        frames.update(span)
    if not frames:
        raise PcnacycleError(f"frames {text!r}: no frame given (e.g. 0, 10, 20-23)")
    return sorted(frames)


def export_frames(movies: dict[str, np.ndarray], frames: Sequence[int], output: str | os.PathLike,
                  overwrite: bool = False) -> list[Path]:
    """Write frames of movies as a dataset folder: ``<output>/<channel>/frame_NNN.tif``.

    Parameters
    ----------
    movies : {channel name (``pcna``, ``dic``...): (T, H, W) array}
    frames : frame indices
    output : the dataset folder (``DATASETS.ROOT`` for annotate and train)
    overwrite : replace frame files already there

    Returns
    -------
    The first channel's files, to give ``pcnacycle annotate --images``.
    """
    output = Path(output)
    written = []
    for position, (channel, movie) in enumerate(movies.items()):
        for t in frames:
            path = output / channel / f"frame_{t:03d}.tif"
            if path.exists() and not overwrite:
                raise PcnacycleError(f"{path} already exists; choose another folder or allow overwriting")
            write_tiff(path, np.asarray(movie[t]))
            if position == 0:
                written.append(path)
    return written


def annotation_config(cfg: CfgNode, root: str | os.PathLike, annotations: str | os.PathLike) -> CfgNode:
    """``cfg`` reading the VIA 2 or COCO file ``annotations`` (format from its content) of images under ``root``."""
    import json

    try:
        content = json.loads(Path(annotations).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PcnacycleError(f"{annotations}: not a readable JSON annotation file ({exc})") from None
    fmt = "coco" if isinstance(content, dict) and "annotations" in content and "images" in content else "via2"
    from ..config import config_from_dict, set_value

    cfg = config_from_dict(cfg.to_dict())
    for key, value in (("FORMAT", fmt), ("ROOT", str(root)), ("ANNOTATIONS", str(annotations))):
        set_value(cfg, f"DATASETS.{key}", value)
    return cfg


def load_annotations(cfg: CfgNode) -> AnnotationStack:
    """Every annotated image of the dataset ``cfg`` names, read by the trainer's readers, as one stack.

    Raises
    ------
    PcnacycleError
        From the readers, or when the frames are not all of one size.
    """
    from ..data.catalog import load_sample, read_records
    from ..data.channels import stored_channels

    names = list(cfg.MODEL.CLASS_NAMES)
    image_ids, planes, stacked, classes = [], {c: [] for c in stored_channels(cfg.INPUT.CHANNELS)}, [], {}
    next_label = 1
    for record in read_records(cfg):
        sample = load_sample(cfg, record)
        masks, labels = sample["masks"], sample["labels"]
        if next_label + len(masks) > np.iinfo(np.uint16).max:
            raise PcnacycleError(f"{cfg.DATASETS.ANNOTATIONS}: more than 65535 nuclei; annotate fewer frames at a "
                                 "time")
        label_image = np.zeros(masks.shape[1:], np.uint16)
        for mask, class_id in zip(masks, labels):
            label_image[mask] = next_label
            classes[next_label] = names[int(class_id) - 1]
            next_label += 1
        if stacked and label_image.shape != stacked[0].shape:
            raise PcnacycleError(f"{cfg.DATASETS.ANNOTATIONS}: image {sample['image_id']} is "
                                 f"{label_image.shape[1]}×{label_image.shape[0]}, {image_ids[0]} "
                                 f"{stacked[0].shape[1]}×{stacked[0].shape[0]}: annotate frames of one size together")
        image_ids.append(str(sample["image_id"]).replace("/", "_"))
        stacked.append(label_image)
        for channel, frames in planes.items():
            frames.append(sample["channels"][channel])
    return AnnotationStack(image_ids, {c: np.stack(p) for c, p in planes.items()}, np.stack(stacked), classes)


def class_table(stack: AnnotationStack) -> pd.DataFrame:
    """``classes.csv`` rows (``image, label, class``) of every nucleus in the stack's label images.

    Raises
    ------
    PcnacycleError
        Naming the frame and label of a nucleus without a class (painted but not classified).
    """
    rows = []
    for image_id, label_image in zip(stack.image_ids, stack.labels):
        for label in np.unique(label_image[label_image > 0]):
            if int(label) not in stack.classes:
                raise PcnacycleError(f"frame {image_id}: nucleus {label} has no class; select it and set its class")
            rows.append({"image": image_id, "label": int(label), "class": stack.classes[int(label)]})
    return pd.DataFrame(rows, columns=["image", "label", "class"])


def save_labelmask(stack: AnnotationStack, output: str | os.PathLike, cfg: CfgNode) -> Path:
    """Write ``stack`` as a label-mask dataset the trainer reads (``DATASETS.FORMAT labelmask``).

    Layout: ``labels/<name>.tif`` (uint16), each stored channel's
    ``<channel>/<name>.tif`` (one composite file in the first channel's
    folder when ``INPUT.STORED_CHANNELS`` is set), ``classes.csv``
    (``image,label,class``) and ``annotation.json`` listing these files. A
    folder holding other files is refused; one written here before has only
    its own listed files replaced (saving again after more corrections).

    Returns
    -------
    ``output``
    """
    output = Path(output)
    table = class_table(stack)  # checked before anything is written
    previous = []
    if output.exists() and any(output.iterdir()):
        previous = read_manifest(output, ANNOTATION_MARKER)
    composite = [str(c) for c in cfg.INPUT.STORED_CHANNELS]
    written = []

    def write(relative: str, array: np.ndarray) -> None:
        write_tiff(output / relative, array)
        written.append(relative)

    for index, image_id in enumerate(stack.image_ids):
        write(f"labels/{image_id}.tif", stack.labels[index].astype(np.uint16))
        if composite:
            write(f"{composite[0]}/{image_id}.tif", np.stack([stack.channels[c][index] for c in composite]))
        else:
            for channel, movie in stack.channels.items():
                write(f"{channel}/{image_id}.tif", movie[index])
    write_text(output / "classes.csv", table.to_csv(index=False))
    written += ["classes.csv", ANNOTATION_MARKER]
    # files of the previous save that this one did not rewrite (frames dropped since) go
    remove_outputs(output, sorted(set(previous) - set(written)))
    write_json(output / ANNOTATION_MARKER, {"image_ids": stack.image_ids, "class_names": list(cfg.MODEL.CLASS_NAMES),
                                            MANIFEST_KEY: sorted(written)})
    return output
