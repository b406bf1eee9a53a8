"""Scoring tracks against ground truth: CTC metrics, per-frame phases and phase durations.

:func:`evaluate_tracks` compares a tracking result with a ground truth in
the Cell Tracking Challenge (CTC) layout and, when both sides carry cell-cycle
phases, compares those too:

* **CTC metrics** (TRA, DET, SEG, LNK, CT, TF, BC(i), CCA, BIO(i) and the
  AOGM error counts) come from py-ctcmetrics (``ctc_metrics``), the
  reference re-implementation of the challenge's evaluation software; none is
  computed here.
* **Per-frame phases.** In every frame each predicted nucleus is matched to
  the ground-truth nucleus it overlaps with IoU ≥ 0.5 (at that threshold a
  nucleus has at most one partner, except in the tie IoU = 0.5 on both sides,
  broken by taking the larger IoU first). The phase accuracy is the fraction
  of matched nuclei whose resolved phase (G1, S, G2, M) is the true one; the
  confusion table counts (true phase, predicted phase) pairs.
* **Phase durations.** A predicted track and a ground-truth track are the
  same cell when more than half of the frames of each are matched to the
  other (so every track has at most one partner; a track split in two halves
  or two cells merged into one track match nothing). For each pair and phase
  seen complete on both sides, the predicted minutes are compared with the
  true ones. A phase is complete in a track when the track shows it and it is
  neither the first phase of a track that starts cut (``cut_start``: no
  observed birth) nor the last phase of one that ends cut (``cut_end``: no
  observed division); a phase the prediction skipped altogether is therefore
  not compared here (the per-frame accuracy counts it).

Inputs are checked before any work and every problem raises
:class:`~pcnacycle.errors.PcnacycleError` naming the file at fault.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import PcnacycleError
from ..io import read_image, write_json
from ..phases import PHASES
from ..safeguards import check_output_folder
from ..tracking.tracker import track_table

__all__ = ["CTC_METRICS", "IOU_THRESHOLD", "evaluate_tracks"]

#: Metrics asked of py-ctcmetrics; BIO(i), OP_CSB, OP_CTB and OP_CLB(i) follow from them at no cost.
CTC_METRICS = ("Valid", "DET", "SEG", "TRA", "LNK", "CT", "TF", "BC", "CCA")
#: What an empty result (no track at all) scores by the measures' definitions; the others are then undefined.
EMPTY_RESULT_ZEROS = ("DET", "SEG", "TRA")
#: A predicted and a true nucleus are the same one from this intersection over union on.
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class _Prediction:
    """Where a prediction's files are: the CTC result folder and, beside it, the run's tables."""

    ctc: Path  # res_track.txt + maskNNN.tif
    run: Path  # objects.csv, phases.csv, masks.tif when the run wrote them


@dataclass(frozen=True)
class _GroundTruth:
    """Where a ground truth's files are: the CTC GT folder and the simulator's truth folder, if any."""

    ctc: Path  # TRA/ (man_track.txt, man_trackNNN.tif), SEG/ optional
    truth: Path | None  # labels.tif, objects.csv, phases.csv


# ------------------------------------------------------------------ locating and checking the inputs


def _locate_prediction(pred_dir: Path) -> _Prediction:
    """A ``pcnacycle run`` folder (CTC results in ``ctc/``) or a bare CTC result folder."""
    if (pred_dir / "res_track.txt").is_file():
        return _Prediction(ctc=pred_dir, run=pred_dir)
    if (pred_dir / "ctc" / "res_track.txt").is_file():
        return _Prediction(ctc=pred_dir / "ctc", run=pred_dir)
    raise PcnacycleError(f"{pred_dir}: no res_track.txt, neither in it nor in {pred_dir / 'ctc'}; "
                         "give a pcnacycle run folder or a CTC result folder")


def _locate_ground_truth(gt_dir: Path) -> _GroundTruth:
    """A CTC GT folder (``TRA/man_track.txt``) or a simulator output folder (``truth/ctc/01_GT``)."""
    if (gt_dir / "TRA" / "man_track.txt").is_file():
        return _GroundTruth(ctc=gt_dir, truth=None)
    simulated = gt_dir / "truth" / "ctc" / "01_GT"
    if (simulated / "TRA" / "man_track.txt").is_file():
        return _GroundTruth(ctc=simulated, truth=gt_dir / "truth")
    raise PcnacycleError(f"{gt_dir}: no TRA/man_track.txt, neither in it nor in {simulated}; "
                         "give a CTC ground-truth folder or a pcnacycle simulate output folder")


def _mask_files(folder: Path, prefix: str) -> list[Path]:
    """``folder/<prefix>NNN.tif`` sorted by frame number."""
    return sorted(folder.glob(f"{prefix}[0-9]*.tif"), key=lambda p: int(p.stem[len(prefix):]))


def read_track_file(path: Path) -> np.ndarray:
    """Read a CTC track file (``L B E P`` per line) into an (N, 4) int64 array, checking it.

    Raises
    ------
    PcnacycleError
        Naming the file and line: not four integers, a label < 1, an end
        before the begin, a negative parent or a repeated label.
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            label, begin, end, parent = (int(f) for f in fields)
        except ValueError:
            raise PcnacycleError(f"{path}, line {number}: {line!r} is not four integers 'L B E P'") from None
        if label < 1 or begin < 0 or end < begin or parent < 0:
            raise PcnacycleError(f"{path}, line {number}: {line!r} needs label ≥ 1, 0 ≤ begin ≤ end, "
                                 "parent ≥ 0")
        rows.append((label, begin, end, parent))
    table = np.array(rows, np.int64).reshape(-1, 4)
    labels, counts = np.unique(table[:, 0], return_counts=True)
    if (counts > 1).any():
        raise PcnacycleError(f"{path}: label(s) {labels[counts > 1].tolist()} listed more than once")
    return table


def _check_frame_counts(prediction: _Prediction, truth: _GroundTruth) -> int:
    """Number of frames, after checking that the result has one mask per ground-truth frame."""
    result_masks = _mask_files(prediction.ctc, "mask")
    truth_masks = _mask_files(truth.ctc / "TRA", "man_track")
    if not truth_masks:
        raise PcnacycleError(f"{truth.ctc / 'TRA'}: no man_trackNNN.tif masks")
    if len(result_masks) != len(truth_masks):
        raise PcnacycleError(f"{prediction.ctc}: {len(result_masks)} maskNNN.tif files but the ground truth "
                             f"{truth.ctc / 'TRA'} has {len(truth_masks)} frames")
    return len(truth_masks)


# ------------------------------------------------------------------ CTC metrics


def ctc_scores(result_dir: Path, truth_dir: Path) -> dict:
    """CTC metrics of one sequence by py-ctcmetrics: ``{name: float | int | None}``.

    SEG is left out when ``truth_dir`` has no ``SEG/`` folder. Runs in this
    process (no worker pool) so that it respects the caller's thread limits.

    Raises
    ------
    PcnacycleError
        When the results fail the CTC validity check (e.g. ``res_track.txt``
        does not agree with the masks); the message lists py-ctcmetrics' findings.
    """
    from ctc_metrics.scripts.evaluate import calculate_metrics, load_data

    metrics = [m for m in CTC_METRICS if m != "SEG" or (truth_dir / "SEG").is_dir()]
    if not len(read_track_file(result_dir / "res_track.txt")):
        # py-ctcmetrics cannot take a result without tracks; DET, TRA and SEG are 1 - AOGM/AOGM_0 and a mean IoU,
        # so a result that matches nothing scores exactly 0 on them; the other measures have nothing to measure.
        return {name: (0.0 if name in EMPTY_RESULT_ZEROS else None) for name in metrics} | {"Valid": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comp_tracks, ref_tracks, trajectories, segmentation, _, is_valid = load_data(
            str(result_dir), str(truth_dir), trajectory_data=True, segmentation_data="SEG" in metrics, threads=1)
    if not is_valid:
        findings = "; ".join(str(w.message) for w in caught) or "no details"
        raise PcnacycleError(f"{result_dir}: not a valid CTC result (res_track.txt and masks disagree): {findings}")
    scores = calculate_metrics(comp_tracks, ref_tracks, trajectories, segmentation, list(metrics), is_valid)
    return {name: _plain(value) for name, value in scores.items()}


def _plain(value):
    """A numpy scalar as a JSON-ready Python number; None stays None."""
    return None if value is None else np.asarray(value).item()


# ------------------------------------------------------------------ per-frame matching


def _label_frames(path: Path) -> Iterator[np.ndarray]:
    """The (H, W) label images of a (T, H, W) TIFF stack, one page at a time."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        for page in tiff.pages:
            yield page.asarray()


def _stack_frame_count(path: Path) -> int:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        return len(tiff.pages)


def match_frame(truth_labels: np.ndarray, pred_labels: np.ndarray,
                threshold: float = IOU_THRESHOLD) -> pd.DataFrame:
    """One-to-one matches of the nuclei of two (H, W) label images by IoU ≥ ``threshold``.

    Returns
    -------
    DataFrame
        ``truth, pred`` (int64 labels) and ``iou`` (float64), one row per
        matched pair; pairs are taken by decreasing IoU, each label once.
    """
    both = (truth_labels > 0) & (pred_labels > 0)
    pairs, intersection = np.unique(np.stack([truth_labels[both], pred_labels[both]]).astype(np.int64),
                                    axis=1, return_counts=True)
    truth_area = np.bincount(truth_labels.ravel())[pairs[0]]
    pred_area = np.bincount(pred_labels.ravel())[pairs[1]]
    iou = intersection / (truth_area + pred_area - intersection)
    table = pd.DataFrame({"truth": pairs[0], "pred": pairs[1], "iou": iou})
    table = table[table["iou"] >= threshold].sort_values("iou", ascending=False, kind="stable")
    return table.drop_duplicates("truth").drop_duplicates("pred").reset_index(drop=True)


def _frame_matches(truth_frames: Iterator[np.ndarray], pred_frames: Iterator[np.ndarray]) -> pd.DataFrame:
    """:func:`match_frame` of every frame: ``frame, truth, pred, iou``."""
    tables = [match_frame(t, p).assign(frame=frame) for frame, (t, p) in enumerate(zip(truth_frames, pred_frames))]
    return pd.concat(tables, ignore_index=True)[["frame", "truth", "pred", "iou"]]


def _ctc_label_to_track(ctc_table: np.ndarray, max_track: int) -> dict[int, int]:
    """The run's track id of each CTC label: ``{ctc label: track}``.

    :func:`pcnacycle.tracking.tracker.ctc_tracks` keeps a track's id for its first part
    and numbers the parts after gaps above the largest track id, each with the
    previous part as parent; so following parents down to an id ≤
    ``max_track`` gives the track.
    """
    parent_of = dict(zip(ctc_table[:, 0].tolist(), ctc_table[:, 3].tolist()))
    track_of = {}
    for label in parent_of:
        first = label
        while first > max_track and parent_of.get(first, 0) > 0:
            first = parent_of[first]
        track_of[label] = first
    return track_of


# ------------------------------------------------------------------ phases


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV table with at least ``columns``; a missing file or column raises naming ``path``."""
    if not path.is_file():
        raise PcnacycleError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PcnacycleError(f"{path}: cannot be read as a CSV table ({exc})") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PcnacycleError(f"{path}: missing column(s) {missing}; it has {list(table.columns)}")
    return table


def _phase_inputs_missing(prediction: _Prediction, truth: _GroundTruth) -> str | None:
    """Why phases cannot be compared (a sentence), or None when both sides carry them."""
    if truth.truth is None:
        return "the ground truth is a bare CTC folder (phases need a simulator output folder)"
    objects = prediction.run / "objects.csv"
    if not objects.is_file() or not (prediction.run / "phases.csv").is_file():
        return f"{prediction.run} has no objects.csv and phases.csv"
    if "phase" not in pd.read_csv(objects, nrows=0).columns:
        return f"{objects} has no 'phase' column (phases not resolved)"
    return None


def _phase_of(objects: pd.DataFrame, path: Path) -> pd.Series:
    """Phase by (frame, track), checking the phase names."""
    unknown = sorted(set(objects["phase"]) - set(PHASES))
    if unknown:
        raise PcnacycleError(f"{path}: column 'phase' holds {unknown}; expected only {list(PHASES)}")
    return objects.set_index(["frame", "track"])["phase"]


def _lookup_phases(phase_of: pd.Series, frames: pd.Series, tracks: pd.Series, path: Path) -> np.ndarray:
    """Phases of the (frame, track) nuclei; a nucleus missing from the table raises naming ``path``."""
    keys = pd.MultiIndex.from_arrays([frames, tracks])
    found = keys.isin(phase_of.index)
    if not found.all():
        frame, track = keys[~found][0]
        raise PcnacycleError(f"{path}: no row for track {track} in frame {frame}, which the masks hold "
                             f"({(~found).sum()} such nuclei)")
    return phase_of.reindex(keys).to_numpy()


def phase_confusion(truth_phase: np.ndarray, pred_phase: np.ndarray) -> dict:
    """Accuracy and confusion table of matched nuclei's phases.

    Returns
    -------
    dict
        ``matched`` (int), ``accuracy`` (float, None without matches) and
        ``confusion`` (``{true phase: {predicted phase: count}}`` over G1, S, G2, M).
    """
    table = pd.crosstab(pd.Categorical(truth_phase, PHASES), pd.Categorical(pred_phase, PHASES), dropna=False)
    matched = len(truth_phase)
    return {
        "matched": matched,
        "accuracy": float(np.mean(truth_phase == pred_phase)) if matched else None,
        "confusion": {t: {p: int(table.at[t, p]) for p in PHASES} for t in PHASES},
    }


# ------------------------------------------------------------------ durations


def match_tracks(matches: pd.DataFrame, truth_frames: pd.Series, pred_frames: pd.Series) -> pd.DataFrame:
    """Pairs of tracks that are the same cell: each holds over half of the other's frames.

    Parameters
    ----------
    matches : DataFrame
        ``truth, pred`` track ids of nuclei matched in one frame, one row per frame and pair.
    truth_frames, pred_frames : Series
        Frames each track is seen in, indexed by track id.

    Returns
    -------
    DataFrame
        ``truth, pred, shared`` (int64), one row per pair; every id at most once.
    """
    shared = matches.groupby(["truth", "pred"]).size().rename("shared").reset_index()
    majority = ((shared["shared"] * 2 > truth_frames.reindex(shared["truth"]).to_numpy())
                & (shared["shared"] * 2 > pred_frames.reindex(shared["pred"]).to_numpy()))
    return shared[majority].reset_index(drop=True).astype(np.int64)


def complete_phases(durations: pd.DataFrame, objects: pd.DataFrame) -> pd.DataFrame:
    """Which phases each track shows from start to end: bool, indexed by track, columns G1, S, G2, M.

    ``durations`` has ``track, cut_start, cut_end, <P>_frames``; ``objects``
    has ``frame, track, phase`` and gives each track's first and last phase.
    """
    ordered = objects.sort_values(["track", "frame"]).groupby("track")["phase"]
    by_track = durations.set_index("track")
    first = ordered.first().reindex(by_track.index)
    last = ordered.last().reindex(by_track.index)
    cut_start = by_track["cut_start"].astype(str).str.lower() == "true"
    cut_end = by_track["cut_end"].astype(str).str.lower() == "true"
    return pd.DataFrame({
        phase: (by_track[f"{phase}_frames"] > 0) & ~(cut_start & (first == phase)) & ~(cut_end & (last == phase))
        for phase in PHASES
    })


def duration_errors(pairs: pd.DataFrame, truth_durations: pd.DataFrame, truth_complete: pd.DataFrame,
                    pred_durations: pd.DataFrame, pred_complete: pd.DataFrame) -> dict:
    """Error of the predicted phase durations over matched tracks.

    Returns
    -------
    dict
        ``matched_tracks`` (int) and per phase ``{n, mae_minutes,
        bias_minutes, true_minutes, found_minutes}``: the number of track
        pairs where the phase is complete on both sides, the mean absolute
        error and the mean signed error (predicted − true; None when ``n`` is
        0), and the ``n`` durations compared (lists of float, pair by pair).
    """
    truth_minutes = truth_durations.set_index("track")
    pred_minutes = pred_durations.set_index("track")
    result = {"matched_tracks": len(pairs)}
    for phase in PHASES:
        both = (truth_complete[phase].reindex(pairs["truth"]).fillna(False).to_numpy(bool)
                & pred_complete[phase].reindex(pairs["pred"]).fillna(False).to_numpy(bool))
        found = pred_minutes[f"{phase}_minutes"].reindex(pairs["pred"][both]).to_numpy(np.float64)
        true = truth_minutes[f"{phase}_minutes"].reindex(pairs["truth"][both]).to_numpy(np.float64)
        error = found - true
        result[phase] = {"n": int(both.sum()),
                         "mae_minutes": float(np.abs(error).mean()) if both.any() else None,
                         "bias_minutes": float(error.mean()) if both.any() else None,
                         "true_minutes": true.tolist(), "found_minutes": found.tolist()}
    return result


def _phase_scores(prediction: _Prediction, truth: _GroundTruth, frames: int) -> dict:
    """Per-frame phase accuracy and duration errors; see the module notes for the matching."""
    duration_columns = ["track", "cut_start", "cut_end", *(f"{p}_{u}" for u in ("frames", "minutes") for p in PHASES)]
    truth_objects = _read_csv(truth.truth / "objects.csv", ["frame", "track", "parent", "phase"])
    truth_durations = _read_csv(truth.truth / "phases.csv", duration_columns)
    pred_objects = _read_csv(prediction.run / "objects.csv", ["frame", "track", "parent", "phase"])
    pred_durations = _read_csv(prediction.run / "phases.csv", duration_columns)

    truth_stack = truth.truth / "labels.tif"
    pred_stack = prediction.run / "masks.tif"
    if pred_stack.is_file():
        stack_frames = _stack_frame_count(pred_stack)
        if stack_frames != frames:
            raise PcnacycleError(f"{pred_stack}: {stack_frames} frames but the ground truth has {frames}")
        pred_frames, to_track = _label_frames(pred_stack), None
    else:  # CTC masks: parts of a gapped track carry new labels, mapped back to the run's track ids
        pred_frames = (read_image(p) for p in _mask_files(prediction.ctc, "mask"))
        to_track = _ctc_label_to_track(read_track_file(prediction.ctc / "res_track.txt"),
                                       int(pred_objects["track"].to_numpy().max(initial=0)))
    if not truth_stack.is_file():
        raise PcnacycleError(f"{truth_stack}: no such file")
    if _stack_frame_count(truth_stack) != frames:
        raise PcnacycleError(f"{truth_stack}: {_stack_frame_count(truth_stack)} frames but "
                             f"{truth.ctc / 'TRA'} has {frames}")
    matches = _frame_matches(_label_frames(truth_stack), pred_frames)
    if to_track is not None:
        matches["pred"] = matches["pred"].map(to_track).fillna(matches["pred"]).astype(np.int64)

    truth_phase = _lookup_phases(_phase_of(truth_objects, truth.truth / "objects.csv"),
                                 matches["frame"], matches["truth"], truth.truth / "objects.csv")
    pred_phase = _lookup_phases(_phase_of(pred_objects, prediction.run / "objects.csv"),
                                matches["frame"], matches["pred"], prediction.run / "objects.csv")
    per_frame = {"pred_objects": len(pred_objects), "truth_objects": len(truth_objects),
                 **phase_confusion(truth_phase, pred_phase)}
    pairs = match_tracks(matches, truth_objects.groupby("track")["frame"].nunique(),
                         pred_objects.groupby("track")["frame"].nunique())
    durations = duration_errors(pairs, truth_durations, complete_phases(truth_durations, truth_objects),
                                pred_durations, complete_phases(pred_durations, pred_objects))
    divisions = division_scores(matches, track_table(truth_objects), track_table(pred_objects))
    return {"per_frame": per_frame, "durations": durations, "divisions": divisions}


def division_scores(matches: pd.DataFrame, truth_tracks: pd.DataFrame, pred_tracks: pd.DataFrame,
                    tolerance: int = 1) -> dict:
    """Divisions found, missed and spurious.

    A true division is a mother with two daughters in ``truth_tracks``. A
    predicted daughter link (mother P → daughter p) is right when, within
    ``tolerance`` frames of their ends, P's last nuclei are matched to the
    true mother and p's first nuclei to one of her true daughters. A
    predicted division (a mother with daughters) is right when one of its
    links is; a true division is found when a right predicted division names her.

    Parameters
    ----------
    matches : DataFrame
        ``frame, truth, pred`` of nuclei matched in each frame.
    truth_tracks, pred_tracks : DataFrame
        ``track, first_frame, last_frame, parent`` (0 = none).

    Returns
    -------
    dict
        ``true, predicted, found, missed, spurious`` (int), ``recall``, ``precision`` (float or None).
    """
    truth_parent = truth_tracks.set_index("track")["parent"]
    true_mothers = truth_parent[truth_parent > 0].value_counts()
    true_mothers = set(true_mothers.index[true_mothers >= 2])
    identity = matches.groupby(["pred", "frame"])["truth"].first()

    def truth_near(track: int, frame: int, direction: int) -> set:
        frames = [frame + direction * k for k in range(tolerance + 1)]
        return {identity.get((track, f)) for f in frames} - {None}

    pred = pred_tracks.set_index("track")
    right_mothers, found = set(), set()
    for daughter, row in pred[pred["parent"] > 0].iterrows():
        mother = int(row["parent"])
        if mother not in pred.index:
            continue
        mothers = truth_near(mother, int(pred.at[mother, "last_frame"]), -1)
        daughters = truth_near(int(daughter), int(row["first_frame"]), +1)
        hits = {m for m in mothers if m in true_mothers and any(truth_parent.get(d) == m for d in daughters)}
        if hits:
            right_mothers.add(mother)
            found |= hits
    predicted = int(pred.loc[pred["parent"] > 0, "parent"].nunique())
    return {"true": len(true_mothers), "predicted": predicted, "found": len(found),
            "missed": len(true_mothers) - len(found), "spurious": predicted - len(right_mothers),
            "recall": len(found) / len(true_mothers) if true_mothers else None,
            "precision": len(right_mothers) / predicted if predicted else None}


# ------------------------------------------------------------------ the entry point


def evaluate_tracks(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                    output: str | os.PathLike | None = None) -> dict:
    """Score a tracking result against ground truth; see the module notes for what and how.

    Parameters
    ----------
    pred_dir : path
        A ``pcnacycle run`` output folder, with the CTC results in ``ctc/``
        (``res_track.txt``, ``maskNNN.tif``) and optionally ``objects.csv``
        (``frame, track, phase``), ``phases.csv`` (:func:`pcnacycle.tracking.resolve.phase_durations`)
        and ``masks.tif`` ((T, H, W) labelled by track); or a bare CTC result folder.
    gt_dir : path
        A CTC ground-truth folder (``TRA/``, optionally ``SEG/``), or a
        ``pcnacycle simulate`` output folder, whose ``truth/`` also gives phases.
    output : path, optional
        Folder for ``track_eval.json`` (written atomically).

    Returns
    -------
    dict
        ``pred``, ``gt`` (the CTC folders used), ``frames``, ``ctc`` (``{metric: value}`` from
        py-ctcmetrics), ``phases`` (``per_frame``: ``matched, accuracy,
        confusion, pred_objects, truth_objects``; ``durations``:
        ``matched_tracks`` and per phase ``n, mae_minutes, bias_minutes``) or
        None, and ``phases_skipped`` (why phases were not compared, or None).

    Raises
    ------
    PcnacycleError
        A missing or malformed ``res_track.txt`` or ground truth, a different
        number of frames in prediction and ground truth, a table missing a
        column or a nucleus, or results that fail the CTC validity check.
    """
    if output is not None:
        check_output_folder(output)
    prediction = _locate_prediction(Path(pred_dir))
    truth = _locate_ground_truth(Path(gt_dir))
    read_track_file(prediction.ctc / "res_track.txt")
    read_track_file(truth.ctc / "TRA" / "man_track.txt")
    frames = _check_frame_counts(prediction, truth)

    skipped = _phase_inputs_missing(prediction, truth)
    phases = None if skipped else _phase_scores(prediction, truth, frames)
    result = {"pred": str(prediction.ctc), "gt": str(truth.ctc), "frames": frames,
              "ctc": ctc_scores(prediction.ctc, truth.ctc), "phases": phases, "phases_skipped": skipped}
    if output is not None:
        write_json(Path(output) / "track_eval.json", result)
    return result


def format_report(result: dict) -> str:
    """A short plain-text table of :func:`evaluate_tracks`' result."""
    ctc = result["ctc"]
    lines = ["CTC   " + "  ".join(f"{name} {ctc[name]:.4f}" for name in ("TRA", "DET", "SEG", "LNK")
                                  if ctc.get(name) is not None)]
    if ctc.get("Valid") == 0:  # only an empty result gets this far invalid (see ctc_scores)
        lines.append("the result holds no track (no nucleus found): DET, TRA and SEG are 0, the other CTC measures "
                     "are undefined")
    if result["phases"] is None:
        lines.append(f"phases: not compared ({result['phases_skipped']})")
        return "\n".join(lines)
    per_frame, durations = result["phases"]["per_frame"], result["phases"]["durations"]
    accuracy = "n/a" if per_frame["accuracy"] is None else f"{per_frame['accuracy']:.4f}"
    lines.append(f"phase accuracy {accuracy} over {per_frame['matched']} matched nuclei")
    lines.append("true\\pred " + "".join(f"{p:>7}" for p in PHASES))
    lines += [f"{t:<10}" + "".join(f"{per_frame['confusion'][t][p]:>7}" for p in PHASES) for t in PHASES]
    lines.append(f"durations over {durations['matched_tracks']} matched tracks (minutes):")
    lines.append(f"{'phase':<6}{'n':>5}{'MAE':>9}{'bias':>9}")
    for phase in PHASES:
        row = durations[phase]
        mae, bias = (("n/a", "n/a") if row["n"] == 0
                     else (f"{row['mae_minutes']:.1f}", f"{row['bias_minutes']:+.1f}"))
        lines.append(f"{phase:<6}{row['n']:>5}{mae:>9}{bias:>9}")
    lines.append(division_sentence(result["phases"]["divisions"]))
    return "\n".join(lines)


def division_sentence(divisions: dict) -> str:
    """Division counts in words: true, found, missed, spurious."""
    return (f"divisions: {divisions['true']} true, {divisions['found']} found, {divisions['missed']} missed; "
            f"{divisions['predicted']} predicted, {divisions['spurious']} of them spurious")
