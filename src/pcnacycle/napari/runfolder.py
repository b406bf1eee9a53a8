"""A run folder as napari layer data: no Qt, no display (napari only for a colormap object).

:func:`run_layers` turns the folder ``pcnacycle run`` (or ``correct``) wrote
into napari ``LayerData`` tuples ``(data, kwargs, layer_type)``:

=========  ========  ================================================================
name       type      what
=========  ========  ================================================================
PCNA       image     the movie recorded in ``run.json`` (skipped, with a warning, if moved)
DIC        image     the DIC movie, when the run had one
phase      labels    every nucleus painted with its phase's code (:data:`PHASE_CODES`)
tracks     labels    ``masks.tif``: label = track id (edit and pick cells here)
lineage    tracks    centroids per track, ``graph`` daughter → [mother]
=========  ========  ================================================================
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PcnacycleError

#: Phase names → the value painted in the ``phase`` labels layer (0 is background).
PHASE_CODES = {"G1": 1, "S": 2, "G2": 3, "M": 4, "G1/G2": 5}
#: Code of a nucleus whose phase is not one of :data:`PHASE_CODES` (a model with other classes).
OTHER_CODE = len(PHASE_CODES) + 1
#: Layer names the reader gives and the widgets look for.
LAYER_NAMES = {"pcna": "PCNA", "dic": "DIC", "phase": "phase", "labels": "tracks", "tracks": "lineage"}
#: Layer metadata keys: the run folder a layer shows, and the original run it is a correction of.
RUN_KEY = "pcnacycle_run"
SOURCE_KEY = "pcnacycle_source"


@dataclass
class RunFolder:
    """What a run folder holds, read once.

    Attributes
    ----------
    path : the run folder
    masks : (T, H, W) uint16, label = track id
    objects : ``objects.csv``: one row per nucleus per frame (``frame, track, parent, centroid_y, centroid_x``,
        ``phase`` when resolved, else ``predicted_phase``)
    info : ``run.json``
    movies : {"pcna"/"dic": path of the movie found on disk}
    problems : one-line messages about inputs that could not be found
    """

    path: Path
    masks: np.ndarray
    objects: pd.DataFrame
    info: dict
    movies: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def is_run_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding ``run.json`` and ``masks.tif`` (a complete run)."""
    path = Path(path)
    return path.is_dir() and (path / "run.json").is_file() and (path / "masks.tif").is_file()


def locate_movie(recorded: str, run_dir: Path) -> Path | None:
    """Where the movie ``run.json`` recorded is now, or None.

    A relative path was relative to the directory ``pcnacycle run`` ran in,
    so it is tried there (the current directory), then below each folder
    above the run folder, then by file name beside and above the run folder
    (a project moved as a whole, or the movie copied next to its run).
    """
    recorded_path = Path(recorded)
    candidates = [recorded_path]
    if not recorded_path.is_absolute():
        candidates += [parent / recorded_path for parent in run_dir.resolve().parents]
    candidates += [run_dir / recorded_path.name, run_dir.parent / recorded_path.name]
    return next((c for c in candidates if c.is_file()), None)


def read_run_folder(path: str | os.PathLike) -> RunFolder:
    """Read a run folder's masks, objects and ``run.json`` and find its movies.

    Raises
    ------
    PcnacycleError
        When the folder is not a complete run or a file in it is unreadable.
    """
    import tifffile

    path = Path(path)
    if not is_run_folder(path):
        raise PcnacycleError(f"{path}: not a pcnacycle run folder (expected run.json and masks.tif in it)")
    try:
        info = json.loads((path / "run.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PcnacycleError(f"{path / 'run.json'}: unreadable ({exc})") from exc
    try:
        masks = tifffile.imread(path / "masks.tif")
    except Exception as exc:  # tifffile raises many types; name the file
        raise PcnacycleError(f"{path / 'masks.tif'}: not a readable TIFF ({exc})") from exc
    masks = masks[None] if masks.ndim == 2 else masks
    try:
        objects = pd.read_csv(path / "objects.csv")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PcnacycleError(f"{path / 'objects.csv'}: unreadable ({exc})") from exc
    missing = {"frame", "track", "parent", "centroid_y", "centroid_x"} - set(objects.columns)
    if missing:
        raise PcnacycleError(f"{path / 'objects.csv'}: missing column(s) {sorted(missing)}")
    folder = RunFolder(path, masks, objects, info)
    for channel in ("pcna", "dic"):
        recorded = info.get(channel)
        if not recorded:
            continue
        found = locate_movie(recorded, path)
        if found is None:
            folder.problems.append(
                f"{path / 'run.json'}: the {channel.upper()} movie it names, {recorded}, is not there any more "
                f"(nor beside the run folder): the run opens without it; open the movie with File > Open, or put "
                f"it back / correct '{channel}' in run.json")
        else:
            folder.movies[channel] = found
    return folder


def object_phases(objects: pd.DataFrame) -> pd.Series:
    """Each nucleus's phase: the resolved one, else the detector's class."""
    if "phase" in objects and objects["phase"].notna().any():
        phases = objects["phase"]
        if "predicted_phase" in objects:
            phases = phases.fillna(objects["predicted_phase"])
        return phases.fillna("")
    if "predicted_phase" in objects:
        return objects["predicted_phase"].fillna("")
    return pd.Series("", index=objects.index)


def phase_image(masks: np.ndarray, objects: pd.DataFrame) -> np.ndarray:
    """Paint each nucleus with its phase's code.

    Parameters
    ----------
    masks : (T, H, W) uint16, label = track id
    objects : one row per nucleus per frame with ``frame`` and ``track``

    Returns
    -------
    (T, H, W) uint8: :data:`PHASE_CODES` value per pixel, :data:`OTHER_CODE`
    for other classes, 0 for background.
    """
    codes = object_phases(objects).map(PHASE_CODES).fillna(OTHER_CODE).astype(np.uint8).to_numpy()
    frames = objects["frame"].to_numpy(int)
    tracks = objects["track"].to_numpy(int)
    out = np.zeros(masks.shape, np.uint8)
    size = int(masks.max()) + 1 if masks.size else 1
    for t in range(masks.shape[0]):
        in_frame = (frames == t) & (tracks < size)
        lookup = np.zeros(size, np.uint8)
        lookup[tracks[in_frame]] = codes[in_frame]
        out[t] = lookup[masks[t]]
    return out


def phase_rgba(name: str | None) -> tuple[float, float, float, float]:
    """The package's colour of a phase class as RGBA in 0-1 (the fallback grey for other names and None)."""
    from ..phases import PHASE_COLOURS, UNKNOWN_PHASE_COLOUR

    return tuple(c / 255 for c in PHASE_COLOURS.get(name, UNKNOWN_PHASE_COLOUR)) + (1.0,)


def phase_colours() -> dict:
    """{code: RGBA in 0-1} for the ``phase`` layer, in the package's phase colours; 0 and None transparent."""
    colours = {0: (0.0, 0.0, 0.0, 0.0), None: (0.0, 0.0, 0.0, 0.0)}
    colours.update({code: phase_rgba(name) for name, code in PHASE_CODES.items()})
    colours[OTHER_CODE] = phase_rgba(None)
    return colours


def lineage_tracks(objects: pd.DataFrame) -> tuple[np.ndarray, dict[int, list[int]], dict[str, np.ndarray]]:
    """napari Tracks data for the run's tracks.

    Returns
    -------
    data : (N, 4) float64 ``[track, frame, y, x]``, sorted by track then frame
    graph : {daughter track: [mother track]} for mothers present in ``data``
    properties : {"phase": (N,) int phase codes, "phase_colour": (N,) float their place in
        :func:`tracks_colormap`}
    """
    table = objects.assign(code=object_phases(objects).map(PHASE_CODES).fillna(OTHER_CODE).astype(int))
    table = table.sort_values(["track", "frame"], kind="stable")
    data = table[["track", "frame", "centroid_y", "centroid_x"]].to_numpy(np.float64)
    present = set(table["track"].astype(int))
    parents = table.groupby("track")["parent"].first().astype(int)
    graph = {int(t): [int(p)] for t, p in parents.items() if p > 0 and p in present and p != t}
    codes = table["code"].to_numpy()
    return data, graph, {"phase": codes, "phase_colour": phase_position(codes)}


def _movie(path: Path, channel, shape: tuple[int, ...], name: str, problems: list[str],
           z_project: str | None = None) -> np.ndarray | None:
    """The whole movie as (T, H, W), or None (with a problem noted) when unreadable or of another shape."""
    from ..data.movie import MovieReader

    try:
        reader = MovieReader(path, channel, z_project)  # the projection the run used (run.json)
        try:
            movie = np.stack([reader.frame(t) for t in range(reader.frames)])
        finally:
            reader.close()
    except PcnacycleError as exc:
        problems.append(f"{name} movie not shown: {exc}")
        return None
    if movie.shape != shape:
        problems.append(f"{path}: {movie.shape[0]} frame(s) of {movie.shape[1]}×{movie.shape[2]}, but the run's "
                        f"masks.tif is {shape[0]} of {shape[1]}×{shape[2]}: not the movie of this run, not shown")
        return None
    return movie


def run_layers(path: str | os.PathLike) -> list[tuple]:
    """napari ``LayerData`` tuples for a run folder (see the module docstring).

    Each problem (a moved movie...) is issued as a ``UserWarning``, which
    napari shows as a notification.

    Returns
    -------
    list of ``(data, kwargs, layer_type)``; every layer's ``metadata`` holds
    ``{RUN_KEY: path}`` so the widgets find the run they show.
    """
    folder = read_run_folder(path)
    metadata = {RUN_KEY: str(folder.path)}
    layers = []
    for channel, colormap in (("pcna", "gray"), ("dic", "gray")):
        if channel not in folder.movies:
            continue
        movie = _movie(folder.movies[channel], folder.info.get(f"{channel}_channel"), folder.masks.shape,
                       channel.upper(), folder.problems, folder.info.get("z_project"))
        if movie is not None:
            layers.append((movie, {"name": LAYER_NAMES[channel], "colormap": colormap, "metadata": metadata,
                                   "visible": channel == "pcna", "blending": "additive"}, "image"))
    layers.append((phase_image(folder.masks, folder.objects),
                   {"name": LAYER_NAMES["phase"], "colormap": phase_colours(), "opacity": 0.45,
                    "metadata": metadata}, "labels"))
    # hidden: the phase layer shows the nuclei; the correction widget shows this one as outlines
    layers.append((folder.masks, {"name": LAYER_NAMES["labels"], "visible": False, "metadata": metadata}, "labels"))
    if len(folder.objects):
        data, graph, properties = lineage_tracks(folder.objects)
        layers.append((data, {"name": LAYER_NAMES["tracks"], "graph": graph, "properties": properties,
                              "color_by": "phase_colour", "colormaps_dict": {"phase_colour": tracks_colormap()},
                              "tail_length": 10, "metadata": metadata}, "tracks"))
    for problem in folder.problems:
        warnings.warn(problem, UserWarning, stacklevel=2)
    return layers


def tracks_colormap():
    """A napari ``Colormap`` giving each phase code its phase colour.

    The Tracks layer looks a property with its own colormap up as it is (no
    rescaling), so the map is a step function over 0-1 with one step per code
    0..:data:`OTHER_CODE`, read at :func:`phase_position`.
    """
    from napari.utils.colormaps import Colormap

    colours = phase_colours()
    steps = [colours[code] if code else (1.0, 1.0, 1.0, 1.0) for code in range(OTHER_CODE + 1)]
    return Colormap(colors=steps, controls=np.linspace(0, 1, len(steps) + 1), interpolation="zero",
                    name="pcnacycle phase")


def phase_position(codes: np.ndarray) -> np.ndarray:
    """Where :func:`tracks_colormap` holds each phase code's colour: the middle of its step, in 0-1."""
    return (np.asarray(codes, np.float64) + 0.5) / (OTHER_CODE + 1)


def lineage_order(objects: pd.DataFrame) -> list[int]:
    """Track ids ordered so each mother is followed by her daughters (depth first, by first frame)."""
    first = objects.groupby("track").agg(parent=("parent", "first"), start=("frame", "min")).sort_values("start")
    children: dict[int, list[int]] = {}
    for track, parent in first["parent"].astype(int).items():
        # a mother missing from the table (deleted) leaves her daughters at the top level
        children.setdefault(parent if parent in first.index and parent != track else 0, []).append(int(track))
    order, stack = [], list(reversed(children.get(0, [])))
    while stack:
        track = stack.pop()
        order.append(track)
        stack.extend(reversed(children.get(track, [])))
    return order


def track_phase_runs(objects: pd.DataFrame) -> pd.DataFrame:
    """Each track's stretches of one phase.

    Returns
    -------
    DataFrame with ``track, first, last`` (frames, inclusive) and ``code``
    (:data:`PHASE_CODES`), one row per stretch, by track then frame.
    """
    table = objects.assign(code=object_phases(objects).map(PHASE_CODES).fillna(OTHER_CODE).astype(int))
    table = table.sort_values(["track", "frame"], kind="stable")
    new_run = (table["track"].ne(table["track"].shift()) | table["code"].ne(table["code"].shift())).cumsum()
    runs = table.groupby(new_run).agg(track=("track", "first"), first=("frame", "min"), last=("frame", "max"),
                                      code=("code", "first"))
    return runs.reset_index(drop=True)
