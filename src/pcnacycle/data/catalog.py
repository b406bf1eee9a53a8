"""The dataset format catalog: ``DATASETS.FORMAT`` name → the pair of functions that read it.

Each format has a reader of records (``read_records(root, cfg)``: lists the
images and checks their annotations, so that bad input fails before training
starts, not hours into it) and a loader of samples (``load_sample(record,
cfg)``: one record's pixels and masks). A name the catalog does not hold is
an error naming the key, never a silent fall-back to another format.

==========  =================================================================
dsb2018     Kaggle DSB2018: ``<id>/images/<id>.png``, ``<id>/masks/*.png``
labelmask   ``<root>/<channel>/<name>.tif``, ``<root>/labels/<name>.tif``,
            ``<root>/classes.csv`` (the simulator's ``annotated/`` folder)
deepcell    DeepCell ``.npz`` files holding ``X`` (images) and ``y`` (labels)
via2        VIA 2 polygon annotations (JSON) of images under ``ROOT``
coco        COCO instance annotations (polygons or RLE) of images under ``ROOT``
arrays      images held in memory, given to :func:`pcnacycle.train` (nothing on disk)
==========  =================================================================

Where labelmask, via2 and coco find an image's channels is described in
:mod:`pcnacycle.data.channels`; the sample format in :mod:`pcnacycle.data.dataset`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..config import CfgNode
from ..errors import PcnacycleError
from .arrays import load_array_sample, read_array_records
from .coco import load_coco_sample, read_coco_records
from .deepcell import load_deepcell_sample, read_deepcell_records
from .dsb2018 import load_dsb2018_sample, read_dsb2018_records
from .labelmask import load_labelmask_sample, read_labelmask_records
from .via2 import load_via2_sample, read_via2_records


@dataclass(frozen=True)
class DatasetFormat:
    """How one ``DATASETS.FORMAT`` is read.

    Attributes
    ----------
    read_records : ``(root, cfg) -> list of record dicts``
    load_sample : ``(record, cfg) -> sample dict``
    """

    read_records: Callable[[str | os.PathLike, CfgNode], list[dict]]
    load_sample: Callable[[dict, CfgNode], dict]


#: Every format the package reads, by its ``DATASETS.FORMAT`` name.
FORMATS: dict[str, DatasetFormat] = {
    "dsb2018": DatasetFormat(lambda root, cfg: read_dsb2018_records(root),
                             lambda record, cfg: load_dsb2018_sample(record)),
    "labelmask": DatasetFormat(read_labelmask_records,
                               lambda record, cfg: load_labelmask_sample(record, cfg.MODEL.CLASS_NAMES)),
    "deepcell": DatasetFormat(lambda root, cfg: read_deepcell_records(root, cfg.INPUT.STORED_CHANNELS),
                              lambda record, cfg: load_deepcell_sample(record)),
    "via2": DatasetFormat(read_via2_records, lambda record, cfg: load_via2_sample(record)),
    "coco": DatasetFormat(read_coco_records, lambda record, cfg: load_coco_sample(record)),
    "arrays": DatasetFormat(read_array_records, lambda record, cfg: load_array_sample(record)),
}


def dataset_format(cfg: CfgNode) -> DatasetFormat:
    """The readers of ``cfg.DATASETS.FORMAT``; an unknown name is an error listing the known ones."""
    name = cfg.DATASETS.FORMAT
    if name not in FORMATS:
        raise PcnacycleError(f"config key 'DATASETS.FORMAT': {name!r} is not a dataset format; "
                             f"expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def read_records(cfg: CfgNode) -> list[dict]:
    """Index the dataset that ``DATASETS.FORMAT`` and ``DATASETS.ROOT`` name."""
    reader = dataset_format(cfg)
    root = cfg.DATASETS.ROOT
    if not root and reader is not FORMATS["arrays"]:  # arrays have no folder, and say so themselves
        raise PcnacycleError("config key 'DATASETS.ROOT' is empty: set it to the dataset folder")
    return reader.read_records(root, cfg)


def load_sample(cfg: CfgNode, record: dict) -> dict:
    """Load one record with the reader of ``DATASETS.FORMAT``."""
    return dataset_format(cfg).load_sample(record, cfg)
