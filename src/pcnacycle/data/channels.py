"""Where an image's channels are on disk, and reading them.

The formats labelmask, via2 and coco find them so:
each stored channel of ``INPUT.CHANNELS`` (``otsu`` is derived, not stored)
is a single-channel file with the image's name in that channel's folder:
the ``CHANNEL=FOLDER`` entry of ``DATASETS.CHANNEL_DIRS`` (relative to
``ROOT``) if there is one, else ``<ROOT>/<channel>/`` if it exists; the first
stored channel (the annotated one: ``pcna`` or ``gray``) may also lie in
``ROOT`` itself. When ``INPUT.STORED_CHANNELS`` is set, one multichannel file,
``(C, H, W)`` or ``(H, W, C)``, holds the channels in that order (e.g.
``[pcna, pcna, bf]``, pcnaDeep's composites) and lies where the first one's
files would. ``bf`` (bright field) and ``dic`` are just channel names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import CfgNode
from ..errors import PcnacycleError
from ..io import read_image

#: Channels computed from stored ones rather than read from files.
DERIVED_CHANNELS = ("otsu",)


def _size(shape: Sequence[int]) -> str:
    """``(H, W)`` as the ``W×H`` people say."""
    return f"{shape[1]}×{shape[0]}"


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
