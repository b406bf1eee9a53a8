"""Track evaluation: ground truth fed back scores perfectly, known damage scores as computed by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import FAST
from pcnacycle.errors import PcnacycleError
from pcnacycle.evaluation.tracks import evaluate_tracks, match_frame
from pcnacycle.phases import PHASES
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie
from pcnacycle.simulation.writers import write_movie

FRAMES = 30


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    movie = simulate_movie(SimulationParams(frames=FRAMES, size=(128, 128), cells=6, seed=3, **FAST))
    return write_movie(movie, tmp_path_factory.mktemp("sim") / "movie", annotated_frames=0)


def write_prediction(folder, objects, phases, labels, ctc_table, with_stack=True):
    """A fake ``pcnacycle run`` folder: ctc/ (res_track.txt, maskNNN.tif), objects.csv, phases.csv, masks.tif."""
    ctc = folder / "ctc"
    ctc.mkdir(parents=True)
    for t, frame in enumerate(labels):
        tifffile.imwrite(ctc / f"mask{t:03d}.tif", frame)
    lines = "".join(f"{r.track} {r.first_frame} {r.last_frame} {r.parent}\n" for r in ctc_table.itertuples())
    (ctc / "res_track.txt").write_text(lines)
    objects.to_csv(folder / "objects.csv", index=False)
    phases.to_csv(folder / "phases.csv", index=False)
    if with_stack:
        tifffile.imwrite(folder / "masks.tif", labels)
    return folder


def truth_tables(simulated):
    truth = simulated / "truth"
    return (pd.read_csv(truth / "objects.csv"), pd.read_csv(truth / "phases.csv", keep_default_na=False),
            tifffile.imread(truth / "labels.tif"), pd.read_csv(truth / "tracks.csv"))


@pytest.fixture(scope="module")
def perfect(simulated, tmp_path_factory):
    objects, phases, labels, tracks = truth_tables(simulated)
    folder = write_prediction(tmp_path_factory.mktemp("perfect") / "run", objects, phases, labels, tracks)
    return evaluate_tracks(folder, simulated, output=folder)


def test_ground_truth_fed_back_scores_perfectly(simulated, perfect):
    assert perfect["ctc"]["TRA"] == 1.0 and perfect["ctc"]["DET"] == 1.0 and perfect["ctc"]["SEG"] == 1.0
    per_frame, durations = perfect["phases"]["per_frame"], perfect["phases"]["durations"]
    assert per_frame["accuracy"] == 1.0
    assert per_frame["matched"] == per_frame["truth_objects"] == per_frame["pred_objects"]
    confusion = pd.DataFrame(per_frame["confusion"])
    assert confusion.to_numpy().trace() == per_frame["matched"]
    assert durations["matched_tracks"] == len(pd.read_csv(simulated / "truth" / "tracks.csv"))
    for phase in PHASES:
        assert durations[phase]["n"] > 0, "the movie should show every phase complete at least once"
        assert durations[phase]["mae_minutes"] == 0 and durations[phase]["bias_minutes"] == 0
    written = json.loads((Path(perfect["pred"]).parent / "track_eval.json").read_text())
    assert written == perfect
    divisions = perfect["phases"]["divisions"]
    true = (pd.read_csv(simulated / "truth" / "tracks.csv")["parent"].value_counts() == 2).sum()
    assert true >= 2 and divisions["true"] == divisions["found"] == divisions["predicted"] == true
    assert divisions["recall"] == divisions["precision"] == 1.0 and divisions["missed"] == divisions["spurious"] == 0


def test_ctc_masks_stand_in_for_the_label_stack_and_a_bare_ctc_gt_skips_phases(simulated, perfect, tmp_path):
    objects, phases, labels, tracks = truth_tables(simulated)
    folder = write_prediction(tmp_path / "run", objects, phases, labels, tracks, with_stack=False)
    assert evaluate_tracks(folder, simulated)["phases"] == perfect["phases"]
    bare = evaluate_tracks(folder / "ctc", simulated / "truth" / "ctc" / "01_GT", output=tmp_path / "out")
    assert bare["ctc"]["TRA"] == 1.0 and bare["phases"] is None and "bare CTC" in bare["phases_skipped"]
    assert json.loads((tmp_path / "out" / "track_eval.json").read_text())["ctc"] == bare["ctc"]


def daughter_with_complete_g1_and_s(objects, phases):
    """A born track (not cut at the start) that goes through G1 (≥ 3 frames) and S into G2."""
    shown = objects.groupby("track")["phase"].agg(set)
    candidates = phases[(phases["parent"] > 0) & (phases["G1_frames"] >= 3)
                        & phases["track"].map(lambda t: {"G1", "S", "G2"} <= shown[t])]
    assert len(candidates), "the movie should hold a daughter seen from G1 into G2"
    return int(candidates["track"].iloc[0])


def test_wrong_phase_frames_cost_accuracy_and_duration_exactly(simulated, perfect, tmp_path):
    objects, phases, labels, tracks = truth_tables(simulated)
    cell = daughter_with_complete_g1_and_s(objects, phases)
    # call the last two G1 frames of that cell S: 2 frames × 10 min moved from G1 to S
    last_g1 = objects[(objects["track"] == cell) & (objects["phase"] == "G1")].index[-2:]
    objects.loc[last_g1, "phase"] = "S"
    row = phases["track"] == cell
    phases.loc[row, ["G1_frames", "S_frames"]] += [-2, 2]
    phases.loc[row, ["G1_minutes", "S_minutes"]] += [-20.0, 20.0]
    folder = write_prediction(tmp_path / "run", objects, phases, labels, tracks)
    result = evaluate_tracks(folder, simulated)

    assert result["ctc"]["TRA"] == 1.0  # tracks untouched
    per_frame = result["phases"]["per_frame"]
    assert per_frame["accuracy"] == pytest.approx(1 - 2 / per_frame["matched"])
    assert per_frame["confusion"]["G1"]["S"] == 2
    durations, expected_n = result["phases"]["durations"], perfect["phases"]["durations"]
    for phase, sign in (("G1", -1), ("S", 1)):
        n = expected_n[phase]["n"]
        assert durations[phase]["n"] == n
        assert durations[phase]["mae_minutes"] == pytest.approx(20.0 / n)
        assert durations[phase]["bias_minutes"] == pytest.approx(sign * 20.0 / n)
    assert durations["G2"]["mae_minutes"] == 0 and durations["M"]["mae_minutes"] == 0


def test_a_track_split_in_halves_costs_tra_and_its_duration_match(simulated, perfect, tmp_path):
    objects, phases, labels, tracks = truth_tables(simulated)
    length = tracks["last_frame"] - tracks["first_frame"] + 1
    childless = tracks[~tracks["track"].isin(tracks["parent"]) & (length >= 4) & (length % 2 == 0)]
    cell = childless.iloc[0]
    new_id = int(tracks["track"].max()) + 1
    middle = int(cell.first_frame + (cell.last_frame - cell.first_frame + 1) // 2)
    later = (objects["track"] == cell.track) & (objects["frame"] >= middle)
    objects.loc[later, "track"] = new_id
    labels[middle:][labels[middle:] == cell.track] = new_id
    tracks.loc[tracks["track"] == cell.track, "last_frame"] = middle - 1
    tracks = pd.concat([tracks, pd.DataFrame([dict(track=new_id, first_frame=middle, last_frame=cell.last_frame,
                                                   parent=0)])], ignore_index=True)
    # each half holds exactly half the true track's frames, so neither matches it and phases.csv's
    # row of the whole cell is never compared
    folder = write_prediction(tmp_path / "run", objects, phases, labels, tracks)
    result = evaluate_tracks(folder, simulated)

    assert result["ctc"]["DET"] == 1.0 and result["ctc"]["SEG"] == 1.0
    assert result["ctc"]["TRA"] < 1.0 and result["ctc"]["AOGM_EA"] == 1  # one missing link
    assert result["phases"]["per_frame"]["accuracy"] == 1.0
    durations = result["phases"]["durations"]
    assert durations["matched_tracks"] == perfect["phases"]["durations"]["matched_tracks"] - 1
    for phase in PHASES:
        assert durations[phase]["n"] <= perfect["phases"]["durations"][phase]["n"]
        assert durations[phase]["n"] == 0 or durations[phase]["mae_minutes"] == 0


def test_division_scores_count_found_missed_and_spurious_divisions():
    from pcnacycle.evaluation.tracks import division_scores

    # truth: 1 → (2, 3) at frame 5, 4 → (5, 6) at frame 5; track 7 never divides
    truth = pd.DataFrame(dict(track=[1, 2, 3, 4, 5, 6, 7], first_frame=[0, 5, 5, 0, 5, 5, 0],
                              last_frame=[4, 9, 9, 4, 9, 9, 9], parent=[0, 1, 1, 0, 4, 4, 0]))
    # prediction: 1's division found one frame late (daughter 12 first matched at frame 6), 4's missed (the
    # track went on into a daughter), and a spurious division of 7 into 17 and 18
    pred = pd.DataFrame(dict(track=[11, 12, 14, 7, 17, 18], first_frame=[0, 6, 0, 0, 5, 5],
                             last_frame=[5, 9, 9, 4, 9, 9], parent=[0, 11, 0, 0, 7, 7]))
    rows = [(f, 1, 11) for f in range(5)] + [(5, 2, 11)] + [(f, 2, 12) for f in range(6, 10)]
    rows += [(f, 4, 14) for f in range(5)] + [(f, 5, 14) for f in range(5, 10)]
    rows += [(f, 7, 7) for f in range(5)] + [(f, 7, 17) for f in range(5, 10)]
    matches = pd.DataFrame(rows, columns=["frame", "truth", "pred"])
    scores = division_scores(matches, truth, pred)
    assert scores == {"true": 2, "predicted": 2, "found": 1, "missed": 1, "spurious": 1, "recall": 0.5,
                      "precision": 0.5}
    assert division_scores(matches, truth, pred, tolerance=0)["found"] == 0


def test_match_frame_pairs_nuclei_by_iou():
    truth = np.zeros((4, 8), np.uint16)
    truth[:, :4], truth[:, 4:] = 1, 2
    pred = np.zeros((4, 8), np.uint16)
    pred[:, :3] = 5  # IoU 12/16 with truth 1
    pred[:, 6:] = 7  # IoU 8/16 with truth 2: exactly the threshold
    matches = match_frame(truth, pred)
    assert matches[["truth", "pred"]].values.tolist() == [[1, 5], [2, 7]]
    np.testing.assert_allclose(matches["iou"], [0.75, 0.5])


def test_bad_inputs_raise_naming_the_file(simulated, tmp_path):
    with pytest.raises(PcnacycleError, match="no res_track.txt"):
        evaluate_tracks(tmp_path, simulated)
    objects, phases, labels, tracks = truth_tables(simulated)
    folder = write_prediction(tmp_path / "run", objects, phases, labels, tracks)
    with pytest.raises(PcnacycleError, match="no TRA/man_track.txt"):
        evaluate_tracks(folder, tmp_path)
    (folder / "ctc" / f"mask{FRAMES - 1:03d}.tif").unlink()
    with pytest.raises(PcnacycleError, match=f"{FRAMES - 1} maskNNN.tif files.* {FRAMES} frames"):
        evaluate_tracks(folder, simulated)
    tifffile.imwrite(folder / "ctc" / f"mask{FRAMES - 1:03d}.tif", labels[-1])
    (folder / "ctc" / "res_track.txt").write_text("1 0 x 0\n")
    with pytest.raises(PcnacycleError, match="res_track.txt, line 1"):
        evaluate_tracks(folder, simulated)
    # a track file that parses but disagrees with the masks fails the CTC validity check
    shutil.copy(simulated / "truth" / "ctc" / "01_GT" / "TRA" / "man_track.txt", folder / "ctc" / "res_track.txt")
    with open(folder / "ctc" / "res_track.txt", "a") as handle:
        handle.write("999 0 3 0\n")
    with pytest.raises(PcnacycleError, match="not a valid CTC result"):
        evaluate_tracks(folder, simulated)


def test_gapped_tracks_in_ctc_masks_map_back_to_the_runs_track_ids(simulated, perfect, tmp_path):
    from pcnacycle.tracking.tracker import write_ctc

    objects, phases, labels, _ = truth_tables(simulated)
    # one long-lived cell missed in one frame: CTC output gives its later part a new label
    length = objects.groupby("track")["frame"].count()
    cell = int(length.idxmax())
    missed = objects.index[objects["track"] == cell][length[cell] // 2]
    labels[objects.at[missed, "frame"]][labels[objects.at[missed, "frame"]] == cell] = 0
    objects = objects.drop(index=missed)
    folder = tmp_path / "run"
    write_ctc(objects.assign(label=objects["track"]), labels, folder / "ctc")
    objects.to_csv(folder / "objects.csv", index=False)
    phases.to_csv(folder / "phases.csv", index=False)
    assert len((folder / "ctc" / "res_track.txt").read_text().splitlines()) == len(phases) + 1

    result = evaluate_tracks(folder, simulated)
    per_frame = result["phases"]["per_frame"]
    assert per_frame["accuracy"] == 1.0 and per_frame["matched"] == per_frame["truth_objects"] - 1
    assert result["phases"]["durations"] == perfect["phases"]["durations"]
    assert result["ctc"]["DET"] < 1.0
