"""Dataset readers: from files on disk to records and samples.

Each format has a pair of functions: ``read_<fmt>_records`` lists the images
and checks their annotations (so that bad input fails before training
starts, not hours into it), and ``load_<fmt>_sample`` loads one record's
pixels and masks. :mod:`pcnacycle.data` calls the pair ``DATASETS.FORMAT``
names.

==========  =================================================================
dsb2018     Kaggle DSB2018: ``<id>/images/<id>.png``, ``<id>/masks/*.png``
labelmask   ``<root>/<channel>/<name>.tif``, ``<root>/labels/<name>.tif``,
            ``<root>/classes.csv`` (the simulator's ``annotated/`` folder)
deepcell    DeepCell ``.npz`` files holding ``X`` (images) and ``y`` (labels)
via2        VIA 2 polygon annotations (JSON) of images under ``ROOT``
coco        COCO instance annotations (polygons or RLE) of images under ``ROOT``
==========  =================================================================

Where labelmask, via2 and coco find an image's channels
--------------------------------------------------------
Each stored channel of ``INPUT.CHANNELS`` (``otsu`` is derived, not stored)
is a single-channel file with the image's name in that channel's folder:
the ``CHANNEL=FOLDER`` entry of ``DATASETS.CHANNEL_DIRS`` (relative to
``ROOT``) if there is one, else ``<ROOT>/<channel>/`` if it exists; the first
stored channel (the annotated one: ``pcna`` or ``gray``) may also lie in
``ROOT`` itself. When ``INPUT.STORED_CHANNELS`` is set, one multichannel file,
``(C, H, W)`` or ``(H, W, C)``, holds the channels in that order (e.g.
``[pcna, pcna, bf]``, pcnaDeep's composites) and lies where the first one's
files would. ``bf`` (bright field) and ``dic`` are just channel names.

The sample format is described in :mod:`pcnacycle.data`.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import CfgNode
from .errors import PcnacycleError
from .io import read_image

log = logging.getLogger(__name__)

#: Channels computed from stored ones rather than read from files.
DERIVED_CHANNELS = ("otsu",)


def _size(shape: Sequence[int]) -> str:
    """``(H, W)`` as the ``W×H`` people say."""
    return f"{shape[1]}×{shape[0]}"


def _dataset_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise PcnacycleError(f"{root}: dataset folder does not exist (DATASETS.ROOT)")
    return root


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PcnacycleError(f"{path}: not a readable JSON file ({exc})") from exc


def _log_unannotated(source: Path, names: list[str]) -> None:
    if names:
        log.warning("%s: skipped %d image(s) without annotations: %s", source, len(names), ", ".join(names[:5]))


# ---------------------------------------------------------------- channels on disk


def stored_channels(channels: Sequence[str]) -> list[str]:
    """The channels of ``channels`` read from files, each once, in order."""
    return list(dict.fromkeys(c for c in channels if c not in DERIVED_CHANNELS))


def parse_assignments(entries: Sequence[str], key: str) -> dict[str, str]:
    """``["A=B", ...]`` as ``{"A": "B"}``; an entry without ``=`` is an error naming ``key``."""
    out = {}
    for entry in entries:
        name, sep, value = str(entry).partition("=")
        if not sep or not name.strip() or not value.strip():
            raise PcnacycleError(f"config key {key!r}: {entry!r} is not of the form NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def channel_sources(root: Path, cfg: CfgNode) -> list[tuple[Path, tuple[str, ...]]]:
    """Where an image's channels are: ``[(folder, names of the channels one file there holds)]``.

    The first entry holds the annotated channel. See the module docstring
    for the rules.
    """
    wanted = stored_channels(cfg.INPUT.CHANNELS)
    composite = tuple(str(c) for c in cfg.INPUT.STORED_CHANNELS)
    if composite:
        missing = [c for c in wanted if c not in composite]
        if missing:
            raise PcnacycleError(f"config key 'INPUT.STORED_CHANNELS' {list(composite)} lacks {missing}, "
                                 f"which INPUT.CHANNELS {list(cfg.INPUT.CHANNELS)} needs")
        groups = [composite]
    elif wanted:
        groups = [(c,) for c in wanted]
    else:
        raise PcnacycleError(f"config key 'INPUT.CHANNELS' {list(cfg.INPUT.CHANNELS)} names no stored channel")
    folders = parse_assignments(cfg.DATASETS.CHANNEL_DIRS, "DATASETS.CHANNEL_DIRS")
    sources = []
    for position, names in enumerate(groups):
        name = names[0]
        if name in folders:
            folder = root / folders[name]
            if not folder.is_dir():
                raise PcnacycleError(f"{folder}: no such folder (DATASETS.CHANNEL_DIRS {name}={folders[name]})")
        elif (root / name).is_dir():
            folder = root / name
        elif position == 0:
            folder = root
        else:
            raise PcnacycleError(f"{root}: no folder for channel {name!r}; expected {root / name} "
                                 f"or an entry '{name}=FOLDER' in DATASETS.CHANNEL_DIRS")
        sources.append((folder, names))
    return sources


def channel_files(sources: list[tuple[Path, tuple[str, ...]]], filename: str) -> list[tuple[str, tuple[str, ...]]]:
    """The files holding the channels of the image called ``filename``."""
    return [(str(folder / filename), names) for folder, names in sources]


def _channel_axis(shape: Sequence[int], count: int, path) -> int | None:
    """The axis of an image of ``shape`` holding its ``count`` channels; None for a plain (H, W) image."""
    if len(shape) == 2 and count == 1:
        return None
    if len(shape) == 3:
        if shape[0] == count:
            return 0
        if shape[-1] == count or (count == 3 and shape[-1] == 4):  # RGBA: the alpha channel is dropped
            return 2
    expected = "(H, W)" if count == 1 else f"({count}, H, W) or (H, W, {count})"
    hint = "; set INPUT.STORED_CHANNELS to name the channels of a multichannel file" if count == 1 else ""
    raise PcnacycleError(f"{path}: image of shape {tuple(shape)}, expected {expected}{hint}")


def _plane_shape(shape: Sequence[int], count: int, path) -> tuple[int, int]:
    """``(H, W)`` of one channel of an image of ``shape`` holding ``count`` channels."""
    axis = _channel_axis(shape, count, path)
    return tuple(shape) if axis is None else tuple(shape[1:]) if axis == 0 else tuple(shape[:2])


def _split_channels(image: np.ndarray, names: Sequence[str], path) -> dict[str, np.ndarray]:
    """``{name: (H, W) plane}`` of an image holding the channels ``names`` in order."""
    axis = _channel_axis(image.shape, len(names), path)
    if axis is None:
        return {names[0]: image}
    planes = image if axis == 0 else np.moveaxis(image, 2, 0)
    return dict(zip(names, planes))


def read_channels(files: Sequence[tuple[str, Sequence[str]]]) -> dict[str, np.ndarray]:
    """Read ``[(path, channel names)]`` into ``{name: (H, W) ndarray}`` in the files' dtypes.

    Raises
    ------
    PcnacycleError
        If a file is unreadable, has an unexpected shape, or its channels'
        shape differs from the first file's (naming both files).
    """
    channels, first = {}, None
    for path, names in files:
        planes = _split_channels(read_image(path), names, path)
        shape = next(iter(planes.values())).shape
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise PcnacycleError(f"{path}: image is {_size(shape)} but {first[0]} is {_size(first[1])}; "
                                 "all channels of an image must have one shape")
        channels.update(planes)
    return channels


def _stored_shape(path: Path) -> tuple[int, ...]:
    """The array shape :func:`~pcnacycle.io.read_image` would return, from the file's header alone."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(tif.series[0].shape)
        from PIL import Image

        with Image.open(path) as image:
            bands = len(image.getbands())
            return (image.height, image.width) + ((bands,) if bands > 1 else ())
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise PcnacycleError(f"{path}: cannot be read as an image ({exc})") from exc


def check_channel_files(files: Sequence[tuple[str, Sequence[str]]], where: str) -> tuple[int, int]:
    """``(H, W)`` shared by an image's channel files, checked from their headers.

    ``where`` names the annotation (file and image) for a missing file.
    """
    first = None
    for path, names in files:
        if not Path(path).is_file():
            raise PcnacycleError(f"{where}: image file {path} not found")
        shape = _plane_shape(_stored_shape(Path(path)), len(names), path)
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise PcnacycleError(f"{path}: image is {_size(shape)} but {first[0]} is {_size(first[1])}; "
                                 "all channels of an image must have one shape")
    return first[1]


# ---------------------------------------------------------------- classes


def class_lookup(cfg: CfgNode, what: str) -> Callable[[object, str], int]:
    """A function ``(name found in an annotation, where) -> class id 1..K``.

    Names are renamed by ``DATASETS.CLASS_MAP`` first, then looked up in
    ``MODEL.CLASS_NAMES``. With a single class every object is class 1,
    whatever it is called (a phase-annotated set trains a nucleus model).
    ``what`` says where names come from, for the error messages.
    """
    names = list(cfg.MODEL.CLASS_NAMES)
    renames = parse_assignments(cfg.DATASETS.CLASS_MAP, "DATASETS.CLASS_MAP")

    def lookup(value, where: str) -> int:
        if len(names) == 1:
            return 1
        if value is None or value == "":
            raise PcnacycleError(f"{where}: no class ({what}); expected one of MODEL.CLASS_NAMES {names}")
        name = renames.get(str(value), str(value))
        if name not in names:
            raise PcnacycleError(f"{where}: class {value!r} is not in MODEL.CLASS_NAMES {names} "
                                 f"(nor renamed to one by DATASETS.CLASS_MAP {cfg.DATASETS.CLASS_MAP})")
        return names.index(name) + 1

    return lookup


def _unique_image_id(filename: str, source: Path, seen: dict[str, str]) -> str:
    """The image id of an annotated file: its name without extension, unique within ``source``."""
    image_id = Path(filename).with_suffix("").as_posix()
    if image_id in seen:
        raise PcnacycleError(f"{source}: images {seen[image_id]} and {filename} would share the id {image_id!r}")
    seen[image_id] = filename
    return image_id


# ---------------------------------------------------------------- dsb2018


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
        records.append({"image_id": folder.name, "image_path": str(image_path), "mask_paths": [str(p) for p in mask_paths]})
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


# ---------------------------------------------------------------- labelmask


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


# ---------------------------------------------------------------- deepcell

# Arrays of .npz files, per (path, key), for the life of the process (each
# DataLoader worker builds its own). Files must not change while a run reads them.
_NPZ_CACHE: dict[tuple[str, str], np.ndarray] = {}


def npz_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, read lazily.

    ``np.load`` ignores ``mmap_mode`` for ``.npz`` files and reads a whole
    array on every ``npz[key]``, so a frame would cost the whole movie set.
    An array stored uncompressed (``np.savez``) is memory-mapped instead, so
    reading a frame touches only that frame; a compressed one
    (``np.savez_compressed``) cannot be, and is loaded once and kept.

    Raises
    ------
    PcnacycleError
        If the file is not a readable ``.npz`` or lacks ``key`` (naming both).
    """
    cache_key = (str(path), key)
    if cache_key not in _NPZ_CACHE:
        _NPZ_CACHE[cache_key] = _read_npz_member(Path(path), key)
    return _NPZ_CACHE[cache_key]


def _read_npz_member(path: Path, key: str) -> np.ndarray:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(f"{key}.npy")
            except KeyError:
                held = [n.removesuffix(".npy") for n in archive.namelist()]
                raise PcnacycleError(f"{path}: no array {key!r} (it holds {held}); DeepCell files hold "
                                     "X (images) and y (label images)") from None
            if info.compress_type == zipfile.ZIP_STORED:
                return _memmap_npz_member(path, info)
            log.warning("%s: %s is compressed, so it is read whole into memory (%.1f GB); re-save it with "
                        "numpy.savez to read frames from disk instead", path, key, info.file_size / 1e9)
            with archive.open(info) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)
    except (OSError, zipfile.BadZipFile, ValueError, struct.error) as exc:
        raise PcnacycleError(f"{path}: not a readable .npz file ({exc})") from exc


def _memmap_npz_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray:
    """Memory-map an uncompressed ``.npy`` member of a zip file in place."""
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local_header = handle.read(30)
        if local_header[:4] != b"PK\x03\x04":
            raise ValueError(f"bad zip entry header for {info.filename}")
        # The local header's name and extra fields can differ in length from the central directory's.
        name_length, extra_length = struct.unpack("<HH", local_header[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"{info.filename} holds Python objects, not numbers")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def deepcell_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` of a DeepCell file, their shapes checked, read lazily.

    Returns
    -------
    X : (frames, H, W, C) or (movies, frames, H, W, C), any real dtype
    y : the same shape with C = 1, integer instance labels (0 = background)
    """
    images, labels = npz_array(path, "X"), npz_array(path, "y")
    if images.ndim not in (4, 5) or 0 in images.shape:
        raise PcnacycleError(f"{path}: X has shape {images.shape}; expected (frames, H, W, C) or "
                             "(movies, frames, H, W, C)")
    if labels.shape != images.shape[:-1] + (1,):
        raise PcnacycleError(f"{path}: y has shape {labels.shape} but X has {images.shape}; "
                             "expected y of X's shape with one channel")
    return images, labels


def read_deepcell_records(root: str | os.PathLike, stored: Sequence[str] = ()) -> list[dict]:
    """Index DeepCell ``.npz`` files: ``root`` is one file or a folder of them.

    A 5-D file (DeepCell's tracked data, ``(batch, frames, H, W, C)``) holds
    one movie per batch entry; a 4-D file ``(frames, H, W, C)`` is one movie.
    Every labelled frame is a record with image id
    ``<file stem>/<movie>/<frame>`` and group ``<file stem>/<movie>``, so a
    split by group keeps movies whole. Frames without any label (the padding
    after a movie shorter than its batch) are skipped and counted.

    Parameters
    ----------
    stored : ``INPUT.STORED_CHANNELS``, names for X's channels; empty: X has
        one channel, read as ``gray`` and also as ``pcna`` so PCNA configs work.
    """
    path = Path(root)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.npz"))
    else:
        raise PcnacycleError(f"{path}: no such file or folder (DATASETS.ROOT)")
    if not files:
        raise PcnacycleError(f"{path}: no .npz files")
    records, unlabelled = [], 0
    for file in files:
        images, labels = deepcell_arrays(file)
        names = _deepcell_channel_names(images.shape[-1], stored, file)
        movies = [(m, labels[m]) for m in range(len(labels))] if labels.ndim == 5 else [(0, labels)]
        for movie, frames in movies:
            for frame in range(len(frames)):
                if not frames[frame].any():
                    unlabelled += 1
                    continue
                records.append({"image_id": f"{file.stem}/{movie}/{frame}", "group": f"{file.stem}/{movie}",
                                "npz_path": str(file), "index": [movie, frame] if labels.ndim == 5 else [frame],
                                "channel_names": names})
    if unlabelled:
        log.warning("%s: skipped %d frame(s) without labels", path, unlabelled)
    if not records:
        raise PcnacycleError(f"{path}: no labelled frames in {len(files)} .npz file(s)")
    return records


def _deepcell_channel_names(count: int, stored: Sequence[str], path: Path) -> list[str]:
    if stored:
        if len(stored) != count:
            raise PcnacycleError(f"{path}: X has {count} channel(s) but INPUT.STORED_CHANNELS names "
                                 f"{len(stored)}: {list(stored)}")
        return [str(name) for name in stored]
    if count != 1:
        raise PcnacycleError(f"{path}: X has {count} channels; name them with INPUT.STORED_CHANNELS")
    return ["gray"]


def load_deepcell_sample(record: dict) -> dict:
    """Pixels and masks of one DeepCell frame (every instance is class 1)."""
    images, labels = deepcell_arrays(record["npz_path"])
    index = tuple(record["index"])
    pixels = np.asarray(images[index])
    label_image = np.asarray(labels[index])[..., 0]
    channels = {name: pixels[..., i] for i, name in enumerate(record["channel_names"])}
    if record["channel_names"] == ["gray"]:
        channels["pcna"] = channels["gray"]
    ids = np.unique(label_image)
    ids = ids[ids > 0]
    return {"image_id": record["image_id"], "channels": channels,
            "masks": label_image[None] == ids[:, None, None], "labels": np.ones(len(ids), np.int64)}


# ---------------------------------------------------------------- via2 and coco


def annotation_file(root: Path, name: str) -> Path:
    """``DATASETS.ANNOTATIONS`` (relative to ``root``, or absolute), else the one ``*.json`` in ``root``."""
    if name:
        path = root / name
        if not path.is_file():
            raise PcnacycleError(f"{path}: annotation file not found (DATASETS.ANNOTATIONS)")
        return path
    found = sorted(root.glob("*.json"))
    if len(found) != 1:
        listed = f": {', '.join(p.name for p in found)}" if found else ""
        raise PcnacycleError(f"{root}: {len(found)} *.json files{listed}; set DATASETS.ANNOTATIONS to the "
                             "annotation file")
    return found[0]


def check_polygon(xs, ys, shape: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """A polygon's vertex coordinates as float arrays, checked.

    It needs three or more points, all finite and at most one pixel outside
    the ``(H, W)`` image (outlines drawn along the border stray a little);
    points further out mean the annotation belongs to an image of another
    size, such as a resized copy.
    """
    try:
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    except (TypeError, ValueError):
        raise PcnacycleError(f"{where}: polygon coordinates are not numbers") from None
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise PcnacycleError(f"{where}: polygon has {xs.size} x and {ys.size} y coordinates")
    if len(xs) < 3:
        raise PcnacycleError(f"{where}: polygon has {len(xs)} point(s); at least 3 are needed")
    height, width = shape
    outside = ~(np.isfinite(xs) & np.isfinite(ys) & (xs >= -1) & (xs <= width + 1) & (ys >= -1) & (ys <= height + 1))
    if outside.any():
        i = int(np.argmax(outside))
        raise PcnacycleError(f"{where}: polygon point ({xs[i]:g}, {ys[i]:g}) lies outside the "
                             f"{width}×{height} image")
    return xs, ys


def read_via2_records(root: str | os.PathLike, cfg: CfgNode) -> list[dict]:
    """Index VIA 2 polygon annotations ("Export annotations as json", or a project file).

    The JSON maps a key per image to ``{"filename", "regions": [{"shape_attributes":
    {"name": "polygon", "all_points_x", "all_points_y"}, "region_attributes":
    {<DATASETS.CLASS_ATTRIBUTE>: class}}]}``; regions may be a dict keyed by
    index (older exports) and the whole may be wrapped in ``_via_img_metadata``
    (project files). Coordinates are pixel-centre based: pixels whose centres
    lie inside a polygon belong to it (``skimage.draw.polygon``). Images
    without regions are skipped and logged.

    Returns
    -------
    list of dict
        ``{"image_id", "channel_files", "shape", "polygons", "labels"}``,
        sorted by id; ``image_id`` is the file name without extension.

    Raises
    ------
    PcnacycleError
        Naming the JSON file, the image and the region index for a missing
        image, a non-polygon shape, a polygon of fewer than 3 points, outside
        its image or enclosing no pixel, or a class not in MODEL.CLASS_NAMES.
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
    records, unannotated, seen = [], [], {}
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
            if draw_polygon(ys, xs, shape)[0].size == 0:
                raise PcnacycleError(f"{at}: polygon encloses no pixel centre")
            polygons.append([xs.tolist(), ys.tolist()])
            labels.append(classify((region.get("region_attributes") or {}).get(attribute), at))
        records.append({"image_id": _unique_image_id(filename, json_path, seen), "channel_files": files,
                        "shape": list(shape), "polygons": polygons, "labels": labels})
    _log_unannotated(json_path, unannotated)
    if not records:
        raise PcnacycleError(f"{json_path}: no image has any annotated region")
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
