"""Reading a run folder, applying edits, re-resolving and writing the corrected run.

How edits and the resolver's own splits interact: the corrected table is not
tracked again (that would undo the corrections) but its phases are resolved
again with the run's own :class:`~pcnacycle.settings.RunSettings` (from its
``run.json``), so phase durations are recomputed as the run computed them.
The resolver may still split a track where it finds a division the tracker
missed, except in a track whose lineage an edit set (``split``, ``join``,
``parent``, ``orphan``, ``relabel``): such a track keeps its id and mother,
and is never taken as a missed sister. Fixed phases (``phase``) are hard
constraints on the resolver's states.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PcnacycleError
from ..io import MANIFEST_KEY, files_under, fresh_stage, log_to_file, publish, write_json
from ..safeguards import check_output_folder, output_lock
from ..settings import RunSettings, load_settings
from .edits import check_edits, read_edits, write_edits
from .operations import FIXED_PHASE, LINEAGE_FIXED, RunState, apply_edits

log = logging.getLogger(__name__)

RUN_MARKER = "run.json"  # as pcnacycle.pipeline.RUN_MARKER; pipeline imports torch, so it is imported lazily
EDITS_FILE = "edits.yaml"
_PHASE_CLASSES = ["G1/G2", "S", "M"]


class MaskFrames:
    """A run's ``masks.tif``, read one frame at a time; frames an edit changes are held in memory.

    ``frames[t]`` is frame ``t``, (H, W) uint16; ``shape`` is (T, H, W). So a
    long movie's masks are never all in memory (``masks.tif`` is compressed,
    so it cannot be memory-mapped). Close it when done.
    """

    def __init__(self, path: Path):
        import tifffile

        self._tiff = tifffile.TiffFile(path)
        try:
            series = self._tiff.series[0]
            self.shape = (1, *series.shape) if len(series.shape) == 2 else tuple(series.shape)
            if len(self.shape) != 3 or len(series.pages) != self.shape[0]:
                raise ValueError(f"shape {series.shape}: expected (T, H, W) with one page per frame")
            self._pages = series.pages
        except BaseException:
            self._tiff.close()
            raise
        self._changed: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        if t in self._changed:
            return self._changed[t]
        return np.asarray(self._pages[t].asarray(), np.uint16)

    def __setitem__(self, t: int, frame: np.ndarray) -> None:
        self._changed[t] = np.asarray(frame, np.uint16)

    def close(self) -> None:
        self._tiff.close()


def load_run(run_dir: str | os.PathLike) -> tuple[dict, RunState]:
    """A run folder's ``run.json`` and its nuclei and masks, ready for edits.

    The ``label`` column of the returned table is set to each nucleus' value
    in ``masks.tif`` (its track id there), the ids mask-level edits use.
    ``state.labels`` is a :class:`MaskFrames`, open until ``state.labels.close()``.

    Raises
    ------
    PcnacycleError
        When the folder is not a complete pcnacycle run or its files disagree.
    """
    run_dir = Path(run_dir)
    if not (run_dir / RUN_MARKER).is_file():
        raise PcnacycleError(f"{run_dir}: not a complete pcnacycle run folder (no {RUN_MARKER}); give the folder "
                             "`pcnacycle run` wrote")
    try:
        summary = json.loads((run_dir / RUN_MARKER).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PcnacycleError(f"{run_dir / RUN_MARKER}: cannot be read ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("settings"), dict):
        raise PcnacycleError(f"{run_dir / RUN_MARKER}: not written by `pcnacycle run` (no 'settings')")
    try:
        table = pd.read_csv(run_dir / "objects.csv", keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise PcnacycleError(f"{run_dir / 'objects.csv'}: cannot be read ({exc})") from None
    missing = [c for c in ("frame", "track", "parent") if c not in table]
    if missing:
        raise PcnacycleError(f"{run_dir / 'objects.csv'}: missing column(s) {missing}")
    try:
        masks = MaskFrames(run_dir / "masks.tif")
    except Exception as exc:  # tifffile raises many types; the user needs the file name
        raise PcnacycleError(f"{run_dir / 'masks.tif'}: cannot be read as the run's masks ({exc})") from None
    try:
        _check_masks_match(run_dir, table, masks)
    except BaseException:
        masks.close()
        raise
    table["label"] = table["track"]
    if FIXED_PHASE in table:
        table[FIXED_PHASE] = table[FIXED_PHASE].fillna("").astype(str)
    if LINEAGE_FIXED in table:
        table[LINEAGE_FIXED] = table[LINEAGE_FIXED].fillna(False).astype(bool)
    for column in ("phase", "arrested", "predicted_phase"):
        if column in table:
            table[column] = table[column].fillna("").astype(str)
    class_names = summary.get("class_names", _PHASE_CLASSES)
    resolvable = bool(summary.get("phases_resolved", sorted(class_names) == sorted(_PHASE_CLASSES)))
    return summary, RunState(table, masks, class_names, resolvable)


def _check_masks_match(run_dir: Path, table: pd.DataFrame, masks: MaskFrames) -> None:
    """Every nucleus of ``objects.csv`` is in ``masks.tif`` under its track id, and nothing else is."""
    if len(table) and (table["frame"].max() >= len(masks) or table["frame"].min() < 0):
        raise PcnacycleError(f"{run_dir}: objects.csv has frames up to {table['frame'].max()} but masks.tif "
                             f"has {len(masks)}")
    by_frame = table.groupby("frame")["track"].apply(lambda t: set(t.tolist())).to_dict()
    for t in range(len(masks)):
        found = set(np.unique(masks[t]).tolist()) - {0}
        listed = by_frame.get(t, set())
        if found != listed:
            only_masks, only_table = sorted(found - listed)[:5], sorted(listed - found)[:5]
            raise PcnacycleError(f"{run_dir}: masks.tif and objects.csv disagree in frame {t} (labels only in the "
                                 f"masks: {only_masks}, tracks only in the table: {only_table}); give an unchanged "
                                 "run folder")


def _edits_and_source(edits) -> tuple[list[dict[str, Any]], str]:
    if isinstance(edits, (str, os.PathLike)):
        return read_edits(edits), str(edits)
    return check_edits(edits), ""


def validate_edits(run_dir: str | os.PathLike, edits: list[dict[str, Any]] | str | os.PathLike) -> None:
    """Check ``edits`` (a list, or an edits file) against the run in ``run_dir``; write nothing.

    Raises
    ------
    PcnacycleError
        One line naming the edit's index and fields: unknown track, frame
        outside the track, a lineage cycle, a third daughter, an unknown op,
        a missing field, a wrong type.
    """
    edits, source = _edits_and_source(edits)
    _, state = load_run(run_dir)
    try:
        apply_edits(state, edits, source)
    finally:
        state.labels.close()


def correct_run(run_dir: str | os.PathLike, edits: list[dict[str, Any]] | str | os.PathLike,
                output: str | os.PathLike | None = None, in_place: bool = False,
                settings: RunSettings | None = None, *, overwrite: bool = False,
                progress: bool = False) -> pathlib.Path:
    """Apply ``edits`` to the run in ``run_dir``, re-resolve phases and durations, write the corrected run.

    Parameters
    ----------
    run_dir : a folder written by ``pcnacycle run`` (or by an earlier correction).
    edits : list of dict, or the path of an edits file (see :mod:`pcnacycle.correct.edits`).
    output : the new folder for the corrected run; ``run_dir`` is not touched.
    in_place : write the corrected run as ``run_dir`` instead, atomically: the previous
        version, with everything in it, is renamed ``<run_dir>.before-<YYYYmmdd-HHMMSS>``.
    settings : :class:`RunSettings` for the resolver; default the ones in ``run_dir/run.json``.
    overwrite : replace an earlier run in ``output`` (only the files its ``run.json`` lists).

    Returns
    -------
    pathlib.Path
        The folder written, laid out as by ``pcnacycle run`` (``masks.tif``,
        ``objects.csv``, ``phases.csv``, ``ctc/``, ``timeline.png``,
        ``run.json``, ``log.txt``) plus ``edits.yaml``, the edits applied.

    Raises
    ------
    PcnacycleError
        On a bad edit (naming its index and fields) or a bad folder; nothing is written then.
    """
    run_dir = Path(run_dir)
    edits, source = _edits_and_source(edits)
    if in_place == (output is not None):
        raise PcnacycleError("give either an output folder (--output) or in_place=True (--in-place)")
    if not in_place:
        output = check_output_folder(output)
        if output.resolve() == run_dir.resolve() or run_dir.resolve() in output.resolve().parents:
            raise PcnacycleError(f"--output {output} is (inside) the run folder {run_dir}, which is never changed "
                                 "but with --in-place; choose another folder")
    # one writer at a time: a run or another correction into the same folder is refused, not mixed in
    with output_lock(run_dir if in_place else output):
        summary, state = load_run(run_dir)
        try:
            settings = settings if settings is not None else load_settings(run_dir / RUN_MARKER)
            if in_place:
                corrected_from, previous = _kept_name(run_dir), None
                stage = fresh_stage(run_dir)
            else:
                from ..pipeline import prepare_output

                corrected_from = run_dir
                stage, previous = prepare_output(output, [run_dir], overwrite)
            try:
                with log_to_file(stage / "log.txt"):
                    log.info("correcting %s with %d edit(s)%s", run_dir, len(edits),
                             f" from {source}" if source else "")
                    apply_edits(state, edits, source)
                    _write_corrected(stage, state, summary, settings, edits, corrected_from, progress)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
        finally:
            state.labels.close()  # before the run folder is renamed (--in-place)
        if in_place:
            return _swap_in(stage, run_dir, corrected_from)
        publish(stage, output, previous)
        log.info("corrected run written: %s", output)
        return output


def _write_corrected(stage: Path, state: RunState, summary: dict, settings: RunSettings,
                     edits: list[dict[str, Any]], corrected_from: Path, progress: bool) -> None:
    """Re-resolve ``state`` and write every output of a run, ``edits.yaml`` and ``run.json`` (last) into ``stage``."""
    from ..pipeline import nucleus_diameter, write_outputs
    from ..tracking.resolve import phase_durations, resolve_phases

    frame_interval = float(summary.get("frame_interval") or 0) or None
    if frame_interval is None:
        raise PcnacycleError(f"{corrected_from / RUN_MARKER}: no 'frame_interval'")
    tracked, durations = state.table, None
    summary = dict(summary)
    if state.phases_resolved:
        diameter = summary.get("nucleus_diameter_px") or nucleus_diameter(tracked)
        _, division_distance = settings.distances(diameter) if diameter else (1.0, 0.0)
        tracked = resolve_phases(tracked, frame_interval, settings.replace(division_distance=division_distance),
                                 class_names=state.class_names, fixed_phase_column=FIXED_PHASE,
                                 frozen_column=LINEAGE_FIXED)
        durations = phase_durations(tracked, frame_interval)
        summary.update(phase_minutes_prior=settings.phase_minutes, phase_minutes_used=tracked.attrs["phase_minutes"],
                       divisions_inferred_when_corrected=tracked.attrs["divisions_inferred"],
                       divisions_undone_when_corrected=tracked.attrs["divisions_undone"])
    write_outputs(stage, tracked, durations, state.labels, frame_interval, state.class_names, progress)
    write_edits(stage / EDITS_FILE, edits)
    summary.update({
        "nuclei": len(tracked), "tracks": int(tracked["track"].nunique()),
        "divisions": int((tracked.groupby("track")["parent"].first() > 0).sum() // 2),
        "settings": settings.to_dict(), "corrected_from": str(corrected_from), "edits": EDITS_FILE,
        "edits_applied": len(edits), "phases_fixed": int((tracked[FIXED_PHASE] != "").sum()),
        "lineages_fixed": int(tracked.loc[tracked[LINEAGE_FIXED], "track"].nunique()),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    summary[MANIFEST_KEY] = sorted(files_under(stage) | {RUN_MARKER})
    write_json(stage / RUN_MARKER, summary)


def _kept_name(run_dir: Path) -> Path:
    """``<run_dir>.before-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``... when taken): where --in-place keeps the run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = run_dir.with_name(f"{run_dir.name}.before-{stamp}")
    count = 1
    while kept.exists():
        count += 1
        kept = run_dir.with_name(f"{run_dir.name}.before-{stamp}-{count}")
    return kept


def _swap_in(stage: Path, run_dir: Path, kept: Path) -> Path:
    """Put the finished ``stage`` in ``run_dir``'s place, the previous version renamed ``kept``."""
    os.rename(run_dir, kept)
    try:
        os.rename(stage, run_dir)
    except BaseException:
        os.rename(kept, run_dir)
        raise
    log.info("corrected run written in place: %s (the previous version is %s)", run_dir, kept)
    return run_dir
