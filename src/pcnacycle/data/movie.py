"""Reading movies frame by frame: TIFF / OME-TIFF / ImageJ stacks, any axis layout.

A movie is opened once and read one frame at a time, so a long movie never
has to fit in memory. Accepted layouts: a single frame (Y X), a stack (T Y X,
or Z/I/Q for stacks whose third axis is unnamed), a hyperstack with channels
(T C Y X, C T Y X, ...), of which one channel is chosen, and z-stacks over
time (T Z Y X, T C Z Y X, ... as OME or ImageJ name their axes), whose focal
planes are projected into one frame per time point (``z_project``: max, mean
or sharpest). A stack whose only axis is Z is read as time, as ImageJ names a
plain time-lapse saved without hyperstack dimensions, unless a projection is
asked for.

Damaged or doubtful files are refused with one line naming the file: a
truncated file, a 4-D/5-D stack whose axes the file does not name (it is
never guessed which axis is time and which channel), frames too small to hold
a nucleus. NaN/inf pixels of a float movie are read as the frame's
lowest/highest finite value (a frame with none finite as empty), and empty,
constant or saturated movies are reported as warnings (they are valid files;
a run on them finds few or no nuclei, which is the right answer).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from ..errors import PcnacycleError
from ..io import quieter

# Axis letters tifffile uses for the time-like axis of a stack (T first).
_TIME_AXES = "TZIQ"
#: How the focal planes of a z-stack become one frame.
Z_PROJECTIONS = ("max", "mean", "sharpest")
#: The smallest frame side accepted: the smallest nucleus a run keeps (20 px, about 5 px across) with a border.
MIN_FRAME_SIDE = 8
#: Share of pixels at the dtype's maximum from which a movie is reported as saturated.
SATURATED_FRACTION = 0.01

log = logging.getLogger(__name__)


class MovieReader:
    """One channel of a TIFF movie, read frame by frame.

    Parameters
    ----------
    path : TIFF or OME-TIFF file.
    channel : index along the file's channel axis (C or S), required when the
        file holds several channels, refused when it holds one.
    z_project : "max", "mean" or "sharpest" (the plane with the most
        Laplacian variance, chosen anew in each frame): how the focal planes
        of a z-stack become one frame. None: "max" for a stack with both T
        and Z axes; a stack whose only axis is Z is then read as time.

    Attributes
    ----------
    frames : number of frames T (1 for a single image)
    shape : (H, W) of a frame
    dtype : the stored dtype (uint8, uint16, float32, ...)
    frame_interval : minutes between frames from the file's metadata, or None
    planes : focal planes projected into each frame (1: no z-stack)
    z_project : the projection used ("max", "mean", "sharpest"), or None when there are no planes to project
    """

    def __init__(self, path: str | os.PathLike, channel: int | None = None, z_project: str | None = None):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise PcnacycleError(f"{self.path}: no such file")
        try:
            # tifffile's warnings about a damaged file would precede our one line
            with quieter("tifffile", logging.CRITICAL):
                self._tiff = tifffile.TiffFile(self.path)
                series = self._tiff.series[0]
        except Exception as exc:
            raise PcnacycleError(f"{self.path}: not a readable TIFF ({exc})") from exc
        self._series = series
        axes, shape = series.axes, series.shape
        unnamed = [n for a, n in zip(axes, shape) if a == "Q" and n > 1]
        if len(unnamed) > 1:
            raise PcnacycleError(
                f"{self.path}: a {len(shape)}-D stack of shape {shape} whose axes the file does not name, so which "
                "axis is time and which is channel is unknown; save it with its axes (ImageJ hyperstack, OME-TIFF, "
                "or tifffile.imwrite(path, data, metadata={'axes': 'TCYX'})) or as one T×H×W stack per channel")
        # Singleton axes (a Z of 1, a single channel...) carry no information.
        kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
        names = "".join(a for a, _ in kept)
        if names[-2:] != "YX":
            raise PcnacycleError(f"{self.path}: cannot find the image plane in axes {axes!r} (shape {shape})")
        self.shape = (kept[-2][1], kept[-1][1])
        if min(self.shape) < MIN_FRAME_SIDE:
            raise PcnacycleError(f"{self.path}: frames of {self.shape[0]}×{self.shape[1]} pixels (file shape {shape}) "
                                 f"are too small to hold a nucleus (at least {MIN_FRAME_SIDE}×{MIN_FRAME_SIDE})")
        self.dtype = series.dtype
        if z_project is not None and z_project not in Z_PROJECTIONS:
            raise PcnacycleError(f"z projection {z_project!r}: choose one of {', '.join(Z_PROJECTIONS)}")
        leading = kept[:-2]
        z_axes = [i for i, (a, _) in enumerate(leading) if a == "Z"]
        others = [i for i, (a, _) in enumerate(leading) if a in "TIQ"]
        # Z is focal planes when time has its own axis or a projection is asked for; otherwise (ImageJ's
        # plain time-lapse is saved as slices) it is time, as it always was.
        self._z_pos = z_axes[0] if z_axes and (others or z_project is not None) else None
        self.planes = leading[self._z_pos][1] if self._z_pos is not None else 1
        self.z_project = (z_project or "max") if self._z_pos is not None else None
        channel_axes = [i for i, (a, _) in enumerate(leading) if a in "CS"]
        time_axes = [i for i, (a, _) in enumerate(leading) if a in _TIME_AXES and i != self._z_pos]
        projected = [self._z_pos] if self._z_pos is not None else []
        if len(channel_axes) > 1 or len(time_axes) > 1 or len(z_axes) > 1 or \
                len(leading) > len(channel_axes) + len(time_axes) + len(projected):
            raise PcnacycleError(f"{self.path}: axes {names!r} (shape {shape}) are not a movie pcnacycle reads: "
                                 "it reads time (T), one channel axis (C, chosen with the channel option) and focal "
                                 "planes (Z, projected with --z-project); save other axes as separate files")
        if self._z_pos is not None:
            log.info("%s: %d focal planes (Z) per frame, %s projection", self.path, self.planes, self.z_project)
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
        try:
            with quieter("tifffile", logging.CRITICAL):
                self._check_complete(planes)
                # One page per plane: read pages directly. Otherwise (e.g. ImageJ's
                # contiguous >4 GB layout) fall back to a memory map of the series.
                self._by_page = len(series.pages) == planes and all(p is not None for p in series.pages)
        except PcnacycleError:
            raise
        except Exception as exc:  # tifffile meets the damage while reading the pages' directories
            raise PcnacycleError(f"{self.path}: the file is truncated or damaged ({exc}); copy it again") from exc
        self._array = None if self._by_page else self._memmap()
        self.frame_interval = self._metadata_interval()
        self._non_finite_reported = False

    def _check_complete(self, planes: int) -> None:
        """Refuse a truncated file: fewer planes than its metadata declares, or data past its end."""
        declared = (self._tiff.imagej_metadata or {}).get("images")
        shaped = (self._tiff.shaped_metadata or ({},))[0]  # tifffile's own record of the first series' shape
        if shaped.get("shape"):
            declared = math.prod(shaped["shape"]) // (self.shape[0] * self.shape[1])
        if declared and declared > planes:
            raise PcnacycleError(f"{self.path}: the file is truncated or damaged (its metadata declares {declared} "
                                 f"plane(s), {planes} were found); copy it again")
        size = self.path.stat().st_size
        series = self._series
        end = series.dataoffset + series.nbytes if series.dataoffset is not None else 0
        if end <= size:  # a contiguous series ends inside the file: its last page can be looked at safely
            try:
                last = series.pages[-1]
            except IndexError:  # the metadata promises planes whose pages were cut off
                raise PcnacycleError(f"{self.path}: the file is truncated or damaged (its metadata declares {planes} "
                                     f"plane(s), {len(self._tiff.pages)} were found); copy it again") from None
            for page in (series.pages[0], last):
                if page is not None:
                    end = max([end] + [o + n for o, n in zip(page.dataoffsets, page.databytecounts)])
        if end > size:
            raise PcnacycleError(f"{self.path}: the file is truncated or damaged ({size} bytes long, its frames need "
                                 f"{end}); copy it again")

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
        """Frame ``t`` as an (H, W) array of the stored dtype.

        NaN and infinite pixels of a float movie are read as the frame's
        lowest (NaN, -inf) or highest (+inf) finite value, with a warning the
        first time: they mark missing data, which must not become a nucleus.

        A frame with no finite pixel at all is read as an empty (all-zero) frame.

        Raises
        ------
        PcnacycleError
            When the frame cannot be decoded.
        """
        try:
            frame = self._read(t)
        except Exception as exc:  # decoders raise many types; the user needs the file and frame
            raise PcnacycleError(f"{self.path}: frame {t} cannot be read ({exc}); the file may be truncated or "
                                 "damaged") from exc
        if frame.dtype.kind != "f":
            return frame
        finite = np.isfinite(frame)
        if finite.all():
            return frame
        if not finite.any():  # a frame the microscope lost: no nucleus there, tracks bridge it as a gap
            log.warning("%s: frame %d holds no finite value (all NaN or infinite); it is read as an empty frame",
                        self.path, t)
            return np.zeros_like(frame)
        if not self._non_finite_reported:
            log.warning("%s: frame %d holds %d NaN or infinite pixel(s); they are read as the frame's lowest "
                        "(NaN, -inf) or highest (+inf) finite value (later frames are not reported)",
                        self.path, t, int((~finite).sum()))
            self._non_finite_reported = True
        low, high = frame[finite].min(), frame[finite].max()
        return np.nan_to_num(frame, nan=low, posinf=high, neginf=low)

    def content_warnings(self) -> list[str]:
        """Warnings about what the movie shows, from its first, middle and last frames.

        An all-zero, constant or saturated movie is a valid file and is not
        refused (a blank control, a test), but a run on it finds few or no
        nuclei, and saturation hides the PCNA texture that tells S from G1/G2.
        """
        frames = [self.frame(t) for t in sorted({0, self.frames // 2, self.frames - 1})]
        low, high = min(f.min() for f in frames), max(f.max() for f in frames)
        if high == 0:
            return [f"{self.path}: every pixel is 0: an empty movie? nothing will be detected"]
        if low == high:
            return [f"{self.path}: every pixel holds the same value ({high}): nothing will be detected"]
        if self.dtype.kind in "ui":
            top = np.iinfo(self.dtype).max
            saturated = np.mean([np.mean(f == top) for f in frames])
            if saturated >= SATURATED_FRACTION:
                return [f"{self.path}: {saturated:.1%} of pixels are saturated (at {top}); phases are called from "
                        "PCNA texture, which saturation hides: lower the exposure if you can"]
        return []

    def _read(self, t: int) -> np.ndarray:
        index = [0] * len(self._leading)
        if self._time_pos is not None:
            index[self._time_pos] = t
        if self._channel_pos is not None:
            index[self._channel_pos] = self.channel
        if self._z_pos is None:
            return self._plane(index)
        planes = []
        for z in range(self.planes):
            index[self._z_pos] = z
            planes.append(self._plane(index))
        return project_planes(np.stack(planes), self.z_project)

    def _plane(self, index: list[int]) -> np.ndarray:
        if self._array is not None:
            return np.asarray(self._array[tuple(index)])
        page = int(np.ravel_multi_index(index, [n for _, n in self._leading])) if index else 0
        return self._series.pages[page].asarray().reshape(self.shape)

    def __iter__(self):
        for t in range(self.frames):
            yield self.frame(t)

    def close(self) -> None:
        self._tiff.close()


def project_planes(planes: np.ndarray, how: str) -> np.ndarray:
    """One frame from the focal planes of a z-stack.

    Parameters
    ----------
    planes : (Z, H, W) array, any dtype.
    how : "max" (brightest plane per pixel), "mean" (float32 average) or
        "sharpest" (the whole plane whose Laplacian varies most: in focus).

    Returns
    -------
    (H, W) array: the stored dtype for "max" and "sharpest", float32 for "mean".
    """
    if how == "max":
        return planes.max(axis=0)
    if how == "mean":
        return planes.mean(axis=0, dtype=np.float64).astype(np.float32)
    from scipy import ndimage

    focus = [ndimage.laplace(plane.astype(np.float32)).var() for plane in planes]
    return planes[int(np.argmax(focus))]

