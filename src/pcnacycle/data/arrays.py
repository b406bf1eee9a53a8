"""Training data held in memory: images, label images and classes given as arrays, not files.

:func:`pcnacycle.train` takes them as ``images=``, ``label_images=`` and
``classes=``; the records built here carry their samples, so they train (and
are scored during training) exactly as records read from a dataset folder.
Such a run's config says ``DATASETS.FORMAT arrays``: there is nothing to read
back from disk.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError


def _channels_of(image, index: int, channel: str) -> dict[str, np.ndarray]:
    """``{name: (H, W) array}`` of one given image (a mapping, or one (H, W) array named ``channel``)."""
    channels = dict(image) if isinstance(image, Mapping) else {channel: image}
    if not channels:
        raise PcnacycleError(f"images[{index}]: no channel")
    planes = {}
    for name, plane in channels.items():
        plane = np.asarray(plane)
        if plane.ndim != 2 or not np.issubdtype(plane.dtype, np.number):
            raise PcnacycleError(f"images[{index}][{name!r}]: expected an (H, W) array of numbers, got shape "
                                 f"{plane.shape} and dtype {plane.dtype}")
        planes[str(name)] = plane
    shapes = {plane.shape for plane in planes.values()}
    if len(shapes) > 1:
        raise PcnacycleError(f"images[{index}]: channels of different shapes {sorted(shapes)}")
    return planes


def _class_ids(classes, ids: np.ndarray, index: int, class_names: list[str]) -> np.ndarray:
    """Class id 1..K of each label in ``ids``, from ``{label: class name}`` (all 1 for a one-class model)."""
    if len(class_names) == 1:
        return np.ones(len(ids), np.int64)
    if classes is None:
        raise PcnacycleError(f"classes: needed for the {len(class_names)} classes of MODEL.CLASS_NAMES {class_names}; "
                             "give one {label: class name} mapping per image")
    given = {int(label): str(name) for label, name in dict(classes[index]).items()}
    out = []
    for label in ids.tolist():
        if label not in given:
            raise PcnacycleError(f"classes[{index}]: no class for label {label}")
        if given[label] not in class_names:
            raise PcnacycleError(f"classes[{index}]: class {given[label]!r} of label {label} is not in "
                                 f"MODEL.CLASS_NAMES {class_names}")
        out.append(class_names.index(given[label]) + 1)
    return np.asarray(out, np.int64)


def array_records(cfg: CfgNode, images: Sequence, label_images: Sequence,
                  classes: Sequence[Mapping[int, str]] | None = None, channel: str = "pcna") -> list[dict]:
    """Records of images given in memory, checked.

    Parameters
    ----------
    cfg : the training config (``MODEL.CLASS_NAMES`` names the classes).
    images : one entry per image: a mapping ``{channel name: (H, W) array}``
        (e.g. ``{"pcna": ..., "dic": ...}``), or an ``(H, W)`` array, the
        channel ``channel``.
    label_images : one ``(H, W)`` integer array per image: 0 background,
        one label per nucleus.
    classes : one ``{label: class name}`` mapping per image; needed when
        ``MODEL.CLASS_NAMES`` has more than one class.

    Returns
    -------
    list of dict
        ``{"image_id": "array/<i>", "sample": sample}``, the sample as
        :mod:`pcnacycle.data.dataset` describes it.

    Raises
    ------
    PcnacycleError
        Naming the argument and image index of a mismatch.
    """
    if len(images) != len(label_images):
        raise PcnacycleError(f"images has {len(images)} entries but label_images has {len(label_images)}")
    if classes is not None and len(classes) != len(images):
        raise PcnacycleError(f"classes has {len(classes)} entries but images has {len(images)}")
    if not len(images):
        raise PcnacycleError("images is empty: there is nothing to train on")
    class_names = list(cfg.MODEL.CLASS_NAMES)
    records = []
    for index, (image, label_image) in enumerate(zip(images, label_images)):
        channels = _channels_of(image, index, channel)
        label_image = np.asarray(label_image)
        shape = next(iter(channels.values())).shape
        if label_image.shape != shape or not np.issubdtype(label_image.dtype, np.integer):
            raise PcnacycleError(f"label_images[{index}]: expected integer labels of shape {shape} (its image's), "
                                 f"got shape {label_image.shape} and dtype {label_image.dtype}")
        ids = np.unique(label_image)
        ids = ids[ids > 0]
        sample = {"image_id": f"array/{index}", "channels": channels, "masks": label_image[None] == ids[:, None, None],
                  "labels": _class_ids(classes, ids, index, class_names)}
        records.append({"image_id": sample["image_id"], "sample": sample})
    return records


def load_array_sample(record: dict) -> dict:
    """The sample an in-memory record carries."""
    return record["sample"]


def read_array_records(root, cfg: CfgNode) -> list[dict]:
    """Refuse: in-memory images are given to :func:`pcnacycle.train`, not read from ``DATASETS.ROOT``."""
    raise PcnacycleError("config key 'DATASETS.FORMAT' is 'arrays': that run trained on images given in memory "
                         "(pcnacycle.train(..., images=...)); set DATASETS.FORMAT and DATASETS.ROOT to a dataset "
                         "on disk to read images from files")
