"""``pcnacycle run``: from a PCNA movie to per-cell phase durations.

Stages, each with its progress bar: detect (frame by frame, streaming) →
track (laptrack, gap closing, division detection) → mitosis vetting →
phase resolving → outputs. Everything is written into a staging folder that
is renamed to the output folder only when complete, so a failed or killed run
never leaves files that look like results.

Outputs in the output folder::

    masks.tif        (T, H, W) uint16, label = track id
    objects.csv      one row per nucleus per frame
    phases.csv       one row per cell: G1/S/G2/M durations, flags
    ctc/             res_track.txt + maskNNN.tif (Cell Tracking Challenge layout)
    timeline.png     lineages coloured by phase
    run.json         inputs, settings, counts (written last)
    log.txt
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from tqdm import tqdm

from .config import CfgNode
from .data.movie import MovieReader
from .engine.predictor import Predictor, load_weights_path
from .engine.scale import input_scale, predict_scaled, typical_nucleus_area
from .errors import PcnacycleError
from .io import (
    MANIFEST_KEY,
    atomic_path,
    atomic_write,
    files_under,
    fresh_stage,
    log_to_file,
    publish,
    read_manifest,
    write_json,
)
from .phases import CLASSES, PHASE_COLOURS, PHASES
from .safeguards import check_free_space, check_output_folder, output_lock, reserve_disk_space
from .settings import RunSettings, median_diameter
from .tracking.detections import border_labels, frame_detections
from .tracking.evidence import CONFIDENT_CALL
from .tracking.merges import separate_merged_neighbours
from .tracking.resolve import check_frame_interval, phase_durations, resolve_phases
from .tracking.tracker import probability_column, relabel_masks, track, write_ctc

log = logging.getLogger(__name__)

#: Written last: its presence marks a complete run folder.
RUN_MARKER = "run.json"
DEFAULT_FRAME_INTERVAL = 10.0


def filter_objects(result: dict, score_threshold: float, min_area: int, exclude_border: bool) -> dict:
    """Drop low-score, small or border-touching objects and renumber the rest 1..N.

    Parameters
    ----------
    result : :func:`pcnacycle.engine.predictor.predict_image`'s dict.

    Returns
    -------
    The same dict layout with only the kept objects.
    """
    labels = result["label_image"]
    n = len(result["scores"])
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = (result["scores"] >= score_threshold) & (areas >= max(min_area, 1))
    if exclude_border:
        keep[border_labels(labels) - 1] = False
    new_ids = np.zeros(n + 1, np.int32)
    new_ids[1:][keep] = np.arange(1, keep.sum() + 1)
    out = {key: value[keep] for key, value in result.items() if key != "label_image"}
    out["label_image"] = new_ids[labels]
    return out


def _open_inputs(pcna: str | os.PathLike, dic, pcna_channel, dic_channel,
                 z_project: str | None = None) -> tuple[MovieReader, MovieReader | None]:
    pcna_movie = MovieReader(pcna, pcna_channel, z_project)
    dic_movie = None
    if dic is not None or dic_channel is not None:
        dic_movie = MovieReader(dic if dic is not None else pcna, dic_channel, z_project)
        if (dic_movie.frames, dic_movie.shape) != (pcna_movie.frames, pcna_movie.shape):
            raise PcnacycleError(
                f"PCNA {pcna_movie.path} is {pcna_movie.frames} frame(s) of "
                f"{pcna_movie.shape[0]}×{pcna_movie.shape[1]} "
                f"but DIC {dic_movie.path} is {dic_movie.frames} frame(s) of {dic_movie.shape[0]}×{dic_movie.shape[1]}"
                + (" (one is a single image, the other a movie)" if 1 in (pcna_movie.frames, dic_movie.frames) else "")
            )
    return pcna_movie, dic_movie


#: What runs wrote before run.json listed its outputs (for --overwrite of such a folder).
_LEGACY_OUTPUTS = ("masks.tif", "objects.csv", "phases.csv", "timeline.png", "log.txt", "ctc/res_track.txt",
                   "ctc/mask*.tif")


def prepare_output(output: Path, inputs: list[Path], overwrite: bool) -> tuple[Path, list[str] | None]:
    """The staging folder, and the files of the earlier run that ``overwrite`` replaces (None: no earlier run).

    A folder holding anything but an earlier run (its ``run.json`` lists what
    it wrote) is refused, and so is one holding an input.
    """
    previous = None
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise PcnacycleError(f"{output} holds a previous run or other files; choose another --output or "
                                 "pass --overwrite")
        previous = read_manifest(output, RUN_MARKER, _LEGACY_OUTPUTS)
    for path in inputs:
        if output.resolve() in path.resolve().parents or (previous and path.resolve() in
                                                           {(output / p).resolve() for p in previous}):
            raise PcnacycleError(f"input {path} lies inside the output folder {output}; choose another --output")
    return fresh_stage(output), previous


def run(weights: str | os.PathLike, pcna: str | os.PathLike, output: str | os.PathLike, *,
        dic: str | os.PathLike | None = None, frame_interval: float | None = None, cfg: CfgNode | None = None,
        pcna_channel: int | None = None, dic_channel: int | None = None, z_project: str | None = None,
        settings: RunSettings | None = None,
        overwrite: bool = False, progress: bool = True, predictor=None, **changes) -> Path:
    """Segment, classify, track and resolve a PCNA movie; return the output folder.

    Parameters
    ----------
    weights : checkpoint file or training folder; its saved config is used unless ``cfg`` is given.
    pcna, dic : TIFF/OME-TIFF movies (T×H×W), hyperstacks (T×C×H×W, with
        ``pcna_channel`` / ``dic_channel``; ``dic`` defaults to the PCNA file
        when only ``dic_channel`` is given), z-stacks over time (T×Z×H×W,
        T×C×Z×H×W), or single frames.
    z_project : "max" (default for z-stacks), "mean" or "sharpest": how a
        z-stack's focal planes become one frame (:class:`~pcnacycle.data.movie.MovieReader`).
    frame_interval : minutes between frames; default from the file's
        metadata, else 10 (logged as assumed).
    settings : :class:`~pcnacycle.settings.RunSettings`, everything decided
        after detection (filtering, tracking, divisions, phase priors); saved in ``run.json``.
    predictor : a :class:`~pcnacycle.engine.predictor.Predictor` already loaded from ``weights``, so that
        many movies share one loaded model (``pcnacycle batch``); ``cfg`` is then ignored.
    **changes : fields of ``settings`` to change, e.g. ``max_gap=3``.
    """
    settings = (settings or RunSettings()).replace(**changes) if changes else (settings or RunSettings())
    if frame_interval is not None:
        check_frame_interval(frame_interval)
    weights = load_weights_path(weights)
    output = check_output_folder(output)
    pcna_movie, dic_movie = _open_inputs(pcna, dic, pcna_channel, dic_channel, z_project)
    predictor = predictor if predictor is not None else Predictor(weights, cfg)
    cfg = predictor.cfg
    needs_dic = bool({"dic", "bf"} & set(cfg.INPUT.CHANNELS))
    if needs_dic and dic_movie is None:
        raise PcnacycleError(f"{weights} takes INPUT.CHANNELS {cfg.INPUT.CHANNELS}: give the DIC movie with --dic "
                             "(or --dic-channel for a hyperstack)")
    inputs = [pcna_movie.path] + ([dic_movie.path] if dic_movie else [])
    with output_lock(output):  # a second run into the same folder is refused, not mixed with this one
        frames, (height, width) = pcna_movie.frames, pcna_movie.shape
        # the detections memmap and masks.tif (at most its uncompressed size) exist together before the memmap goes
        check_free_space(output.parent, 2 * frames * height * width * np.dtype(np.uint16).itemsize,
                         f"the detections and masks of {frames} frame(s) of {height}×{width}")
        stage, previous = prepare_output(output, inputs, overwrite)
        try:
            with log_to_file(stage / "log.txt"):
                for warning in pcna_movie.content_warnings() + (dic_movie.content_warnings() if dic_movie else []):
                    log.warning(warning)
                if frame_interval is None:
                    frame_interval = pcna_movie.frame_interval
                    if frame_interval is None:
                        frame_interval = DEFAULT_FRAME_INTERVAL
                        log.warning("no frame interval given or found in %s: assuming %g minutes "
                                    "(use --frame-interval)", pcna_movie.path, frame_interval)
                check_frame_interval(frame_interval)
                class_names = list(cfg.MODEL.CLASS_NAMES)
                scale, scale_info = movie_scale(predictor, pcna_movie, dic_movie, settings)
                raw_labels, detections = _detect(predictor, pcna_movie, dic_movie, stage, settings, scale, progress)
                tracked, durations, summary = analyse(detections, frame_interval, settings, class_names, progress)
                write_outputs(stage, tracked, durations, raw_labels, frame_interval, class_names, progress)
                raw_labels.path.unlink()
                summary.update(scale_info)
                summary.update({"weights": str(weights), "pcna": str(pcna_movie.path),
                                "dic": str(dic_movie.path) if dic_movie else None, "frame_interval": frame_interval,
                                "pcna_channel": pcna_channel, "dic_channel": dic_channel,
                                "z_project": pcna_movie.z_project, "z_planes": pcna_movie.planes,
                                "onnx": str(predictor.onnx) if getattr(predictor, "onnx", None) else None,
                                "settings": settings.to_dict(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
                summary[MANIFEST_KEY] = sorted(files_under(stage) | {RUN_MARKER})
                write_json(stage / RUN_MARKER, summary)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        finally:
            pcna_movie.close()
            if dic_movie:
                dic_movie.close()
        publish(stage, output, previous)
    log.info("run finished: %s", output)
    return output


def _frame_channels(pcna_movie: MovieReader, dic_movie: MovieReader | None, t: int) -> dict[str, np.ndarray]:
    pcna = pcna_movie.frame(t)
    channels = {"pcna": pcna, "gray": pcna}
    if dic_movie is not None:
        channels["dic"] = channels["bf"] = dic_movie.frame(t)
    return channels


def movie_scale(predictor: Predictor, pcna_movie: MovieReader, dic_movie: MovieReader | None,
                settings: RunSettings) -> tuple[float | None, dict]:
    """:func:`~pcnacycle.engine.scale.input_scale` of a movie, measured on its first, middle and last frames."""
    frames = sorted({0, pcna_movie.frames // 2, pcna_movie.frames - 1})
    samples = [_frame_channels(pcna_movie, dic_movie, t) for t in frames]
    return input_scale(predictor, samples, settings.nucleus_diameter, settings.rescale, settings.min_area)


def _detect(predictor: Predictor, pcna_movie, dic_movie, stage: Path, settings: RunSettings, scale: float | None,
            progress: bool) -> tuple[np.ndarray, pd.DataFrame]:
    """Detections of every frame: (T, H, W) uint16 :class:`LabelFrames` in ``stage`` and the detections table."""
    class_names = predictor.class_names
    frames, (height, width) = pcna_movie.frames, pcna_movie.shape
    # Per-frame detection labels wait on disk for the relabelling after
    # tracking, so the movie is never held twice in memory.
    raw_labels = LabelFrames(stage / "detections.raw", (frames, height, width))
    reserve_disk_space(raw_labels.path)
    tables = []
    for t in tqdm(range(frames), desc="detect", unit="frame", disable=not progress):
        channels = _frame_channels(pcna_movie, dic_movie, t)
        result = filter_objects(predict_scaled(predictor, channels, scale), settings.score_threshold,
                                settings.min_area, settings.exclude_border)
        pcna = channels["pcna"]
        if result["label_image"].max() > np.iinfo(np.uint16).max:
            raise PcnacycleError(f"frame {t}: more than 65535 nuclei")
        raw_labels[t] = result["label_image"]
        table = frame_detections(result["label_image"], result["probs"], t, class_names, intensity_image=pcna)
        table["score"] = result["scores"]
        table["mean_dic"] = (_mean_intensity(result["label_image"], channels["dic"], len(table))
                             if dic_movie is not None else np.nan)
        table["predicted_phase"] = [class_names[k - 1] for k in result["labels"]]
        tables.append(table)
    detections = pd.concat(tables, ignore_index=True)
    log.info("detected %d nuclei in %d frames", len(detections), frames)
    return raw_labels, detections


class LabelFrames:
    """(T, H, W) uint16 label frames in a file, written and read one frame at a time.

    Plain reads and writes, not a memory map: the pages of a memory-mapped
    file that a run has touched count in its resident memory until it ends,
    which made a 500-frame 1024² run's peak grow by 0.8 GB (BENCHMARKS.md,
    "Memory of long runs").
    """

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        self.path, self.shape = Path(path), tuple(shape)
        self._frame_bytes = shape[1] * shape[2] * np.dtype(np.uint16).itemsize
        with open(self.path, "wb") as handle:
            handle.truncate(shape[0] * self._frame_bytes)

    def __setitem__(self, t: int, image: np.ndarray) -> None:
        with open(self.path, "r+b") as handle:
            handle.seek(t * self._frame_bytes)
            handle.write(np.ascontiguousarray(image, np.uint16).tobytes())

    def __getitem__(self, t: int) -> np.ndarray:
        return np.fromfile(self.path, np.uint16, count=self.shape[1] * self.shape[2],
                           offset=t * self._frame_bytes).reshape(self.shape[1:])


def nucleus_diameter(detections: pd.DataFrame) -> float | None:
    """Median equivalent diameter (pixels) of the detections' ``area``; None without detections."""
    return median_diameter(detections["area"].to_numpy()) if len(detections) else None


def drop_specks(detections: pd.DataFrame, share: float, max_distance: float, max_gap: int) -> pd.DataFrame:
    """The detections less the specks: those under ``share`` of a typical nucleus' area (the area-weighted median
    of the movie's detections, :func:`~pcnacycle.engine.scale.typical_nucleus_area`).

    Specks, micronuclei and pieces cut off a nucleus are no cells to follow. The line is the one the
    nucleus-size estimate draws (a quarter of the area, half the diameter). Two kinds of small detection are
    kept. One is a nucleus outlined small for a frame or two inside its own track, as found by linking the
    detections frame to frame (``max_distance`` px, gaps of ``max_gap`` frames, no divisions) with a nucleus
    of full size before and after it: dropping it would break the track. The other is a nucleus the frame's
    edge cuts (``edge`` True, when the table has that column): it is small because of the frame. ``share`` 0
    keeps all.
    """
    typical = typical_nucleus_area(detections["area"].to_numpy()) if len(detections) and share > 0 else None
    if typical is None:
        return detections
    small = detections["area"].to_numpy() < share * typical
    if "edge" in detections:
        small &= ~detections["edge"].fillna(False).to_numpy(bool)
    if not small.any():
        return detections
    linked = track(detections, max_distance=max_distance, max_gap=max_gap, division_distance=0)
    # full-size nuclei of the same track in earlier and in later frames (a track holds one row per frame)
    tracks = linked["track"].to_numpy()
    order = np.lexsort((linked["frame"].to_numpy(), tracks))
    whole = (~small[order]).astype(np.int64)
    by_track = pd.Series(whole).groupby(tracks[order])
    running, total = by_track.cumsum().to_numpy(), by_track.transform("sum").to_numpy()
    inside = np.empty(len(order), bool)
    inside[order] = (running - whole > 0) & (total - running > 0)
    return detections[~(small & ~inside)]


def analyse(detections: pd.DataFrame, frame_interval: float, settings: RunSettings | None = None,
            class_names=CLASSES, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """Track detections and resolve their phases: everything ``run`` does after the detector.

    Parameters
    ----------
    detections : DataFrame
        :func:`pcnacycle.tracking.detections.detections_table` output: ``frame, label,
        centroid_y, centroid_x, area`` and ``p_<class>`` per class.
    frame_interval : float
        Minutes between frames.
    settings : RunSettings, optional
    class_names : the detector's classes; phases are resolved when they are G1/G2, S, M.

    Returns
    -------
    tracked : DataFrame
        ``detections`` with ``track``, ``parent`` (and ``phase``, ``arrested`` when resolved).
    durations : DataFrame or None
        :func:`pcnacycle.tracking.resolve.phase_durations`, when phases were resolved.
    summary : dict
        Counts and the values used: nucleus diameter, reaches in pixels, phase minutes.
    """
    settings = settings or RunSettings()
    detections = detections.copy()
    mitosis = probability_column("M")
    if mitosis not in detections:
        # A model without an M class gives no mitotic evidence: divisions are
        # then accepted on geometry alone (see track.pair_mitoses).
        detections[mitosis] = np.nan
    diameter = nucleus_diameter(detections)
    max_distance, division_distance = settings.distances(diameter) if diameter else (1.0, 0.0)
    kept = drop_specks(detections, settings.min_area_share, max_distance, settings.max_gap)
    specks = len(detections) - len(kept)
    if specks:
        log.info("%d detection(s) under %g of a typical nucleus' area dropped as specks", specks,
                 settings.min_area_share)
        detections = kept
        diameter = nucleus_diameter(detections)
        max_distance, division_distance = settings.distances(diameter) if diameter else (1.0, 0.0)
    log.info("nucleus diameter %s px: linking reach %.1f px, division reach %.1f px",
             f"{diameter:.1f}" if diameter else "unknown", max_distance, division_distance)
    resolvable = sorted(class_names) == sorted(CLASSES)
    durations = None
    summary = {"frames": int(detections["frame"].max() + 1) if len(detections) else 0,
               "specks_dropped": specks, "nucleus_diameter_px": diameter, "max_distance_px": max_distance,
               "division_distance_px": division_distance}
    with tqdm(total=2, desc="track + resolve", disable=not progress) as bar:
        tracked = track(detections, max_distance=max_distance, max_gap=settings.max_gap,
                        division_distance=division_distance, mitosis_column=mitosis,
                        mitosis_window=settings.mitosis_window,
                        min_mitosis_probability=settings.min_mitosis_probability,
                        symmetry_tolerance=settings.symmetry_tolerance, division_log_area=settings.division_log_area,
                        steady_log_area_sd=settings.steady_log_area_sd,
                        motion_persistence=settings.motion_persistence)
        summary["motion_persistence_used"] = tracked.attrs["motion_persistence"]
        tracked = separate_merged_neighbours(tracked, settings.merge_frames, settings.steady_log_area_sd)
        summary["merges_undone"] = tracked.attrs["merges_undone"]
        bar.update()
        if resolvable:
            tracked = resolve_phases(tracked, frame_interval, settings.replace(division_distance=division_distance),
                                     class_names=class_names)
            durations = phase_durations(tracked, frame_interval)
            summary["phase_minutes_prior"] = settings.phase_minutes
            summary["phase_minutes_used"] = tracked.attrs["phase_minutes"]
            summary["divisions_inferred"] = tracked.attrs["divisions_inferred"]
            summary["divisions_undone"] = tracked.attrs["divisions_undone"]
            summary.update(_second_looks(tracked, settings, class_names))
        else:
            log.warning("classes %s are not %s: tracks are written, phases are not resolved",
                        class_names, list(CLASSES))
        bar.update()
    summary.update({"nuclei": int(len(tracked)), "tracks": int(tracked["track"].nunique()),
                    "divisions": int((tracked.groupby("track")["parent"].first() > 0).sum() // 2),
                    "class_names": list(class_names), "phases_resolved": resolvable})
    return tracked, durations, summary


def _second_looks(tracked: pd.DataFrame, settings: RunSettings, class_names) -> dict:
    """How sure the detector was of the phases, and what the resolver's texture and M evidence were learnt from.

    A model shown nuclei unlike its training movies calls few of them with
    confidence; the texture evidence is then learnt from its less confident
    calls, or not at all, and the user should know (log and run.json).
    """
    probabilities = tracked[[probability_column(c) for c in class_names]].to_numpy(np.float64)
    seen = np.isfinite(probabilities).any(axis=1)
    top = np.nanmax(np.where(seen[:, None], probabilities, 0.0), axis=1)[seen]
    share = float(np.mean(top >= CONFIDENT_CALL)) if len(top) else None
    texture_from = tracked.attrs.get("texture_evidence_from")
    if share is not None:
        log.info("phase calls: %.0f %% of nuclei called with probability ≥ %g; texture evidence %s", 100 * share,
                 CONFIDENT_CALL, f"learnt from the calls at ≥ {texture_from:g}" if texture_from else "off")
        if settings.texture_evidence and texture_from is None:
            log.warning("no second look at S from texture in this movie: too few nuclei called S, or not S, with "
                        "probability ≥ %g (or the S calls are not grainier); phases rest on the detector's calls "
                        "alone", settings.texture_min_confidence)
    return {"confident_calls_share": share, "texture_evidence_from": texture_from,
            "mitosis_evidence_learnt": bool(tracked.attrs.get("mitosis_evidence_learnt", False))}


def write_outputs(folder: Path, tracked: pd.DataFrame, durations: pd.DataFrame | None, label_frames,
                  frame_interval: float, class_names=CLASSES, progress: bool = False) -> None:
    """Write ``objects.csv``, ``phases.csv``, ``masks.tif``, ``ctc/`` and ``timeline.png`` into ``folder``.

    ``label_frames`` is a (T, H, W) array (or :class:`LabelFrames`) of the raw
    detection labels, the ``label`` column of ``tracked``.
    """
    frames, height, width = label_frames.shape
    if durations is not None:
        _write_csv(folder / "phases.csv", durations)
    _write_csv(folder / "objects.csv", _objects_table(tracked, list(class_names)))
    by_frame = dict(tuple(tracked.groupby("frame")))
    empty = tracked.iloc[:0]
    relabelled = (relabel_masks(label_frames[t], by_frame.get(t, empty))
                  for t in tqdm(range(frames), desc="write masks", unit="frame", disable=not progress))
    with atomic_path(folder / "masks.tif") as tmp:
        # One series of T pages, streamed from the generator: never the whole movie in memory.
        tifffile.imwrite(tmp, relabelled, shape=(frames, height, width), dtype=np.uint16, compression="zlib",
                         photometric="minisblack")
    write_ctc(tracked, (label_frames[t] for t in range(frames)), folder / "ctc", frames=frames)
    if durations is not None:
        plot_timeline(tracked, folder / "timeline.png", frame_interval)


def _mean_intensity(labels: np.ndarray, image: np.ndarray, count: int) -> np.ndarray:
    sums = np.bincount(labels.ravel(), weights=image.ravel().astype(np.float64), minlength=count + 1)[1:]
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return sums / np.maximum(areas, 1)


def _objects_table(tracked: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    columns = ["frame", "track", "parent", "label", "centroid_y", "centroid_x", "area", "edge", "mean_pcna",
               "texture_pcna", "mean_dic", "score", *[probability_column(c) for c in class_names], "predicted_phase"]
    columns = [c for c in columns if c in tracked]
    # fixed_phase, lineage_fixed: a corrected run's corrections (pcnacycle.correct), kept for the next correction
    columns += [c for c in ("phase", "arrested", "fixed_phase", "lineage_fixed") if c in tracked]
    return tracked[columns].sort_values(["frame", "track"])


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_write(path, "w") as handle:
        table.to_csv(handle, index=False, float_format="%.6g")


def plot_timeline(resolved: pd.DataFrame, path: Path, frame_interval: float) -> None:
    """One line per cell, coloured by resolved phase, daughters joined to their mother."""
    from matplotlib.figure import Figure  # drawn on its own Figure: no pyplot state, no backend switch

    tracks = resolved.groupby("track")
    order = _lineage_order(resolved)
    row = {track_id: i for i, track_id in enumerate(order)}
    fig = Figure(figsize=(10, max(3, 0.12 * len(order) + 1)))
    ax = fig.subplots()
    hours = frame_interval / 60
    for track_id, cell in tracks:
        y = row[track_id]
        for _, chunk in cell.groupby((cell["phase"] != cell["phase"].shift()).cumsum()):
            name = chunk["phase"].iloc[0]
            ax.plot([chunk["frame"].min() * hours, (chunk["frame"].max() + 1) * hours], [y, y], lw=3,
                    color=np.array(PHASE_COLOURS.get(name, (150, 150, 150))) / 255, solid_capstyle="butt")
        parent = int(cell["parent"].iloc[0])
        if parent in row:
            start = cell["frame"].min() * hours
            ax.plot([start, start], [row[parent], y], color="0.6", lw=0.8)
    for name in PHASES:
        ax.plot([], [], lw=3, color=np.array(PHASE_COLOURS[name]) / 255, label=name)
    ax.set(xlabel="time (h)", ylabel="cell (grouped by lineage)", yticks=[], title="cell-cycle phases by lineage")
    ax.legend(ncol=4, loc="upper right", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=100)


def _lineage_order(resolved: pd.DataFrame) -> list[int]:
    """Track ids ordered so each mother is followed by her descendants."""
    first = resolved.groupby("track").agg(parent=("parent", "first"), start=("frame", "min"))
    children: dict[int, list[int]] = {}
    for track_id, row in first.sort_values("start").iterrows():
        children.setdefault(int(row["parent"]), []).append(int(track_id))
    order, stack = [], list(reversed(children.get(0, [])))
    orphans = [t for p, kids in children.items() if p and p not in first.index for t in kids]
    stack += list(reversed(orphans))
    while stack:
        track_id = stack.pop()
        order.append(track_id)
        stack.extend(reversed(children.get(track_id, [])))
    return order
