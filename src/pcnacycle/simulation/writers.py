"""Writing a simulated movie: the movie files, the truth tables, CTC and annotated training frames."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage import measure

from ..errors import PcnacycleError
from ..io import MANIFEST_KEY, files_under, read_manifest, remove_outputs, write_json, write_text, write_tiff
from ..safeguards import check_free_space, check_memory, check_output_folder
from .params import Movie, SimulationParams, _check_annotated_frames

#: Written last, listing every file the simulation wrote: its presence marks a complete folder.
MARKER = "simulation.json"
#: What simulations wrote before the marker listed it (for --overwrite of such a folder).
_LEGACY_OUTPUTS = ("truth/**/*", "annotated/**/*", "pcna.tif", "dic.tif")
#: Frames written to annotated/ by default (all of them when the movie is shorter).
ANNOTATED_FRAMES = 25
# fastest zlib level: several times quicker than the default, files only ~3% larger (noisy pixels)
_TIFF = {"compressionargs": {"level": 1}}


def _check_output(output: Path, overwrite: bool) -> None:
    """Refuse a file, a folder that cannot be written, or a non-empty folder unless ``overwrite``."""
    check_output_folder(output)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise PcnacycleError(f"{output}: folder is not empty; pass overwrite=True (--overwrite) to replace it")


def _check_room(output: Path, params: SimulationParams) -> None:
    """Refuse a movie too large for memory or disk, before simulating it.

    The PCNA, DIC and label stacks are held in memory, (T, H, W) uint16 each;
    on disk PCNA is written twice (pcna.tif, truth/ctc/01/) and DIC once,
    noisy pixels that barely compress; the labels compress well.
    """
    frames, (height, width) = params.frames, params.size
    stack = frames * height * width * np.dtype(np.uint16).itemsize
    what = f"{frames} frames of {height}×{width}"
    check_memory(3 * stack, f"the simulated movie ({what}: PCNA, DIC and labels)",
                 "ask for fewer frames or a smaller size")
    check_free_space(output, 3 * stack, f"the movies and ground truth of {what}")


def _prepare_output(output: Path, overwrite: bool, marker: str = MARKER,
                    legacy: tuple[str, ...] = _LEGACY_OUTPUTS) -> set[str]:
    """Check the output folder, remove what an earlier simulation (with this ``marker``) wrote there, create it.

    Returns the files left in the folder (the user's), so that the manifest
    lists only what this simulation writes.
    """
    _check_output(output, overwrite)
    if output.is_dir() and any(output.iterdir()):
        previous = read_manifest(output, marker, legacy)
        # the marker of a complete folder goes first; stale frames of a longer
        # earlier movie would contradict the new truth
        (output / marker).unlink(missing_ok=True)
        remove_outputs(output, previous)
    output.mkdir(parents=True, exist_ok=True)
    return files_under(output)


def _frame_name(index: int, frames: int) -> str:
    """Three-digit frame index, four when the movie is longer than 1000 frames (CTC)."""
    return f"{index:0{4 if frames > 1000 else 3}d}"


def _mask_outline(mask: np.ndarray) -> np.ndarray:
    """Outline of a mask's largest part, a quarter pixel outside its edge pixels: (n, 2) float (row, col).

    At level 0.75 every vertex rounds to the centre of an edge pixel, so the
    integer polygon passes through the mask's outer pixels and rasterisers
    that include the boundary (skimage.draw.polygon, cv2.fillPoly) give the
    mask back exactly.
    """
    contours = measure.find_contours(np.pad(mask, 1).astype(np.float32), 0.75)
    return max(contours, key=len) - 1  # undo the padding that closes contours at the border


def _simplify(points: np.ndarray) -> np.ndarray:
    """Drop repeated points and points on a straight line between their neighbours: (m, 2)."""
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    before, after = points - np.roll(points, 1, axis=0), np.roll(points, -1, axis=0) - points
    turns = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] != 0
    return points[turns]


def _label_polygons(labels: np.ndarray) -> dict[int, tuple[list[int], list[int]]]:
    """Every labelled object's outline as a polygon: ``{label: (xs, ys)}``.

    Coordinates are integers inside the image (as VIA stores them), at least
    3 distinct points per polygon.
    """
    polygons = {}
    for index, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        # one pixel of margin lets the outline close around the object inside the crop
        rows = slice(max(box[0].start - 1, 0), box[0].stop + 1)
        cols = slice(max(box[1].start - 1, 0), box[1].stop + 1)
        outline = _mask_outline(labels[rows, cols] == index + 1) + (rows.start, cols.start)
        points = _simplify(np.clip(np.round(outline), 0, np.array(labels.shape) - 1).astype(int))
        if len(points) < 3:  # a one-pixel-wide sliver: the corners of its pixel box
            top, bottom, left, right = box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1
            points = np.array([[top, left], [top, right], [bottom, right], [bottom, left]])
        polygons[index + 1] = (points[:, 1].tolist(), points[:, 0].tolist())
    return polygons


def _write_ctc(movie: Movie, folder: Path) -> None:
    """Cell Tracking Challenge layout: raw frames, TRA and SEG masks, man_track.txt."""
    frames = movie.params.frames
    for t in range(frames):
        name = _frame_name(t, frames)
        write_tiff(folder / "01" / f"t{name}.tif", movie.pcna[t], **_TIFF)
        write_tiff(folder / "01_GT" / "TRA" / f"man_track{name}.tif", movie.labels[t], **_TIFF)
        write_tiff(folder / "01_GT" / "SEG" / f"man_seg{name}.tif", movie.labels[t], **_TIFF)
    lines = [f"{r.track} {r.first_frame} {r.last_frame} {r.parent}" for r in movie.tracks.itertuples()]
    write_text(folder / "01_GT" / "TRA" / "man_track.txt", "\n".join(lines) + "\n")


def _write_annotated(movie: Movie, folder: Path, annotated_frames: int) -> None:
    """Training frames: images, instance labels, classes.csv and VIA2 polygons."""
    frames = movie.params.frames
    chosen = np.unique(np.round(np.linspace(0, frames - 1, annotated_frames)).astype(int)) if annotated_frames else []
    classes, via = [], {}
    for t in chosen:
        name = f"frame_{_frame_name(int(t), frames)}"
        write_tiff(folder / "pcna" / f"{name}.tif", movie.pcna[t], **_TIFF)
        write_tiff(folder / "dic" / f"{name}.tif", movie.dic[t], **_TIFF)
        write_tiff(folder / "labels" / f"{name}.tif", movie.labels[t], **_TIFF)
        regions = []
        in_frame = movie.objects[movie.objects["frame"] == t]
        polygons = _label_polygons(movie.labels[t])
        for track, phase_class in zip(in_frame["track"].tolist(), in_frame["class"]):
            classes.append({"image": name, "label": track, "class": phase_class})
            xs, ys = polygons[track]
            regions.append({"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                            "region_attributes": {"phase": phase_class}})
        size = (folder / "pcna" / f"{name}.tif").stat().st_size
        via[f"{name}.tif{size}"] = {"filename": f"{name}.tif", "size": size, "regions": regions, "file_attributes": {}}
    table = pd.DataFrame(classes, columns=["image", "label", "class"])
    write_text(folder / "classes.csv", table.to_csv(index=False))
    write_json(folder / "via_region_data.json", via)


def _version() -> str:
    from .. import __version__  # imported late: the package imports this module

    return __version__


def write_movie(movie: Movie, output, annotated_frames: int | None = None, overwrite: bool = False) -> Path:
    """Write a movie and its ground truth to a folder; return the folder.

    Layout: ``pcna.tif``, ``dic.tif``, ``truth/`` (labels.tif, objects.csv,
    tracks.csv, phases.csv, ctc/), ``annotated/`` (``annotated_frames``
    frames spread evenly over the movie, default 25 or all of a shorter one)
    and ``simulation.json``, written last so that its presence marks a
    complete folder. When writing fails (a full disk), what was written is
    removed again and the user's files stay.

    Raises
    ------
    PcnacycleError
        If ``output`` is a non-empty folder and not ``overwrite``, or
        ``annotated_frames`` is not between 0 and the number of frames.
    """
    output = Path(output)
    if annotated_frames is None:
        annotated_frames = min(ANNOTATED_FRAMES, movie.params.frames)
    _check_annotated_frames(annotated_frames, movie.params.frames)
    users = _prepare_output(output, overwrite)
    try:
        _write_files(movie, output, annotated_frames, users)
    except BaseException:
        remove_outputs(output, files_under(output) - users)
        raise
    return output


def _write_files(movie: Movie, output: Path, annotated_frames: int, users: set[str]) -> None:
    """Every file of :func:`write_movie`; ``users`` are the files already in ``output``, not listed as ours."""
    truth = output / "truth"
    stack = {**_TIFF, "photometric": "minisblack", "metadata": {"axes": "TYX"}}
    write_tiff(truth / "labels.tif", movie.labels, **stack)
    # the movies carry their frame interval (ImageJ's finterval, seconds), which `pcnacycle run` reads
    movie_stack = {**_TIFF, "imagej": True,
                   "metadata": {"axes": "TYX", "finterval": movie.params.frame_interval * 60.0, "tunit": "sec"}}
    write_text(truth / "objects.csv", movie.objects.to_csv(index=False))
    write_text(truth / "tracks.csv", movie.tracks.to_csv(index=False))
    write_text(truth / "phases.csv", movie.durations.to_csv(index=False))
    _write_ctc(movie, truth / "ctc")
    _write_annotated(movie, output / "annotated", annotated_frames)
    write_tiff(output / "pcna.tif", movie.pcna, **movie_stack)
    write_tiff(output / "dic.tif", movie.dic, **movie_stack)
    randomisation = {"randomisation": movie.randomisation} if movie.randomisation else {}
    write_json(output / MARKER, {**asdict(movie.params), **randomisation, "annotated_frames": annotated_frames,
                                 "pcnacycle_version": _version(),
                                 MANIFEST_KEY: sorted((files_under(output) - users) | {MARKER})})


def pool_annotated(sources: dict[str, Path], destination: Path) -> None:
    """Pool several movies' ``annotated/`` folders into one training dataset.

    Every file keeps its sub-folder (``pcna/``, ``dic/``, ``labels/``) and is
    renamed ``<movie>_<name>``; ``classes.csv`` and ``via_region_data.json``
    are merged under the new names, so the pool reads as one label-mask or
    VIA 2 dataset (``DATASETS.ROOT``).

    Parameters
    ----------
    sources : {movie name: annotated folder}, at least one
    destination : folder to create; it must not exist yet.
    """
    classes, via = [], {}
    for movie, folder in sources.items():
        for name in sorted(files_under(folder) - {"classes.csv", "via_region_data.json"}):
            path = Path(name)
            target = destination / path.parent / f"{movie}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target)
        table = pd.read_csv(folder / "classes.csv")
        classes.append(table.assign(image=movie + "_" + table["image"].astype(str)))
        for entry in json.loads((folder / "via_region_data.json").read_text()).values():
            filename = f"{movie}_{entry['filename']}"
            via[f"{filename}{entry['size']}"] = {**entry, "filename": filename}
    write_text(destination / "classes.csv", pd.concat(classes, ignore_index=True).to_csv(index=False))
    write_json(destination / "via_region_data.json", via)
