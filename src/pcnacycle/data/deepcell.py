"""DeepCell ``.npz`` files holding ``X`` (images) and ``y`` (label images)."""

from __future__ import annotations

import logging
import os
import struct
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import PcnacycleError
from .cache import FileCache

log = logging.getLogger(__name__)


# Arrays of .npz files, per (path, key), until the file changes.
_NPZ_CACHE = FileCache()


def npz_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, read lazily.

    ``np.load`` ignores ``mmap_mode`` for ``.npz`` files and reads a whole
    array on every ``npz[key]``, so a frame would cost the whole movie set.
    An array stored uncompressed (``np.savez``) is memory-mapped instead, so
    reading a frame touches only that frame; a compressed one
    (``np.savez_compressed``) cannot be, and is loaded once and kept until
    the file's modification time or size changes.

    Raises
    ------
    PcnacycleError
        If the file is not a readable ``.npz`` or lacks ``key`` (naming both).
    """
    return _NPZ_CACHE.get(path, key, lambda: _read_npz_member(Path(path), key))


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


