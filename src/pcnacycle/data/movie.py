"""Reading movies frame by frame: TIFF / OME-TIFF / ImageJ stacks, any axis layout.

A movie is opened once and read one frame at a time, so a long movie never
has to fit in memory. Accepted layouts: a single frame (Y X), a stack (T Y X,
or Z/I/Q for stacks whose third axis is unnamed) and a hyperstack with
channels (T C Y X, C T Y X, ...), of which one channel is chosen.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import PcnacycleError

# Axis letters tifffile uses for the time-like axis of a stack (T first).
_TIME_AXES = "TZIQ"


class MovieReader:
    """One channel of a TIFF movie, read frame by frame.

    Parameters
    ----------
    path : TIFF or OME-TIFF file.
    channel : index along the file's channel axis (C or S), required when the
        file holds several channels, refused when it holds one.

    Attributes
    ----------
    frames : number of frames T (1 for a single image)
    shape : (H, W) of a frame
    dtype : the stored dtype (uint8, uint16, float32, ...)
    frame_interval : minutes between frames from the file's metadata, or None
    """

    def __init__(self, path: str | os.PathLike, channel: int | None = None):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise PcnacycleError(f"{self.path}: no such file")
        try:
            self._tiff = tifffile.TiffFile(self.path)
            series = self._tiff.series[0]
        except Exception as exc:
            raise PcnacycleError(f"{self.path}: not a readable TIFF ({exc})") from exc
        self._series = series
        axes, shape = series.axes, series.shape
        # Singleton axes (a Z of 1, a single channel...) carry no information.
        kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
        names = "".join(a for a, _ in kept)
        if names[-2:] != "YX":
            raise PcnacycleError(f"{self.path}: cannot find the image plane in axes {axes!r} (shape {shape})")
        self.shape = (kept[-2][1], kept[-1][1])
        self.dtype = series.dtype
        leading = kept[:-2]
        channel_axes = [i for i, (a, _) in enumerate(leading) if a in "CS"]
        time_axes = [i for i, (a, _) in enumerate(leading) if a in _TIME_AXES]
        if len(channel_axes) > 1 or len(time_axes) > 1 or len(leading) > len(channel_axes) + len(time_axes):
            raise PcnacycleError(f"{self.path}: axes {names!r} (shape {shape}) are not a movie (T Y X) or a "
                                 "hyperstack (T C Y X); split it into one stack per channel first")
        self.frames = leading[time_axes[0]][1] if time_axes else 1
        n_channels = leading[channel_axes[0]][1] if channel_axes else 1
        if channel_axes and channel is None:
            hint = (" If these are frames, the file was saved as RGB colour: re-save it as a greyscale stack."
                    if "S" in names else "")
            raise PcnacycleError(f"{self.path} holds {n_channels} channels (axes {names!r}); choose one with the "
                                 f"channel option (e.g. --pcna-channel 0).{hint}")
        if channel is not None and not 0 <= channel < n_channels:
            raise PcnacycleError(f"{self.path}: channel {channel} does not exist; the file holds {n_channels}")
        self.channel = channel or 0
        self._leading = leading
        self._channel_pos = channel_axes[0] if channel_axes else None
        self._time_pos = time_axes[0] if time_axes else None
        planes = math.prod(n for _, n in leading)
        # One page per plane: read pages directly. Otherwise (e.g. ImageJ's
        # contiguous >4 GB layout) fall back to a memory map of the series.
        self._by_page = len(series.pages) == planes and all(p is not None for p in series.pages)
        self._array = None if self._by_page else self._memmap()
        self.frame_interval = self._metadata_interval()

    def _memmap(self) -> np.ndarray:
        import tifffile

        try:
            return tifffile.memmap(self.path).reshape([n for _, n in self._leading] + list(self.shape))
        except Exception:
            return self._series.asarray().reshape([n for _, n in self._leading] + list(self.shape))

    def _metadata_interval(self) -> float | None:
        imagej = self._tiff.imagej_metadata or {}
        if imagej.get("finterval"):
            unit = str(imagej.get("tunit", "sec")).lower()
            minutes_per_unit = {"min": 1.0, "minute": 1.0, "minutes": 1.0, "h": 60.0, "hour": 60.0, "hours": 60.0}
            scale = minutes_per_unit.get(unit, 1 / 60)
            return float(imagej["finterval"]) * scale
        if self._tiff.is_ome:
            import re

            match = re.search(r'TimeIncrement="([0-9.eE+-]+)"(?:\s+TimeIncrementUnit="(\w+)")?',
                              self._tiff.ome_metadata or "")
            if match:
                unit = (match.group(2) or "s").lower()
                return float(match.group(1)) * {"min": 1.0, "h": 60.0, "ms": 1 / 60000}.get(unit, 1 / 60)
        return None

    def __len__(self) -> int:
        return self.frames

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as an (H, W) array of the stored dtype."""
        index = [0] * len(self._leading)
        if self._time_pos is not None:
            index[self._time_pos] = t
        if self._channel_pos is not None:
            index[self._channel_pos] = self.channel
        if self._array is not None:
            return np.asarray(self._array[tuple(index)])
        page = int(np.ravel_multi_index(index, [n for _, n in self._leading])) if index else 0
        return self._series.pages[page].asarray().reshape(self.shape)

    def __iter__(self):
        for t in range(self.frames):
            yield self.frame(t)

    def close(self) -> None:
        self._tiff.close()
