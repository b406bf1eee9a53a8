"""`pcnacycle correct`: each edit on a hand-built run whose answer is known, bad edits, --in-place, reopening."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

from pcnacycle.correct import correct_run, read_edits, validate_edits, write_edits
from pcnacycle.correct.runs import load_run
from pcnacycle.errors import PcnacycleError
from pcnacycle.phases import CLASSES
from pcnacycle.settings import RunSettings
from pcnacycle.tracking.resolve import phase_durations, resolve_phases

FRAMES, SHAPE, RADIUS, INTERVAL = 30, (64, 128), 5, 30.0
SETTINGS = RunSettings(max_distance=10.0, division_distance=15.0, estimate_durations=False)
G, S, M = "G1/G2", "S", "M"

#: The hand-built run: track → (first frame, calls per frame (None: not detected), centre, part of the disc).
#: 1 and 2: one cell the tracker broke in two at frame 15; 3: a mother whose daughters 4 and 5 were not
#: linked; 6: a cell never seen in S or M, cut in two at frame 10 (its right half is track 7);
#: 8: a cell missed in frame 20, where it was detected as the one-frame track 9.
CELLS = {
    1: (0, [G] * 10 + [S] * 5, (12, 12), "whole"),
    2: (15, [S] * 7 + [G] * 5 + [M] * 3, (12, 12), "whole"),
    3: (0, [G] * 3 + [S] * 6 + [G] * 4 + [M] * 2, (12, 60), "whole"),
    4: (15, [G] * 15, (12, 52), "whole"),
    5: (15, [G] * 15, (12, 68), "whole"),
    6: (0, [G] * 30, (40, 20), "whole"),
    7: (10, [G], (40, 20), "right"),
    8: (0, [G] * 20 + [None] + [G] * 9, (40, 100), "whole"),
    9: (20, [G], (40, 100), "whole"),
}


def _disc_in(shape, centre):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= RADIUS**2


def _disc(centre, part):
    xx = np.mgrid[:SHAPE[0], :SHAPE[1]][1]
    inside = _disc_in(SHAPE, centre)
    return inside & (xx > centre[1]) if part == "right" else inside & (xx <= centre[1]) if part == "left" else inside


def build_run(folder):
    """Write ``CELLS`` as a run folder the way ``pcnacycle run`` does (resolve, write_outputs, run.json)."""
    from pcnacycle.pipeline import write_outputs

    masks = np.zeros((FRAMES, *SHAPE), np.uint16)
    rows = []
    for track, (first, calls, centre, part) in CELLS.items():
        for step, call in enumerate(calls):
            if call is None:
                continue
            frame = first + step
            # track 6 is drawn as its left half where track 7 holds the right one
            disc = _disc(centre, "left" if (track, frame) == (6, 10) else part)
            masks[frame][disc] = track
            ys, xs = np.nonzero(disc)
            probs = {f"p_{c}": 0.9 if c == call else 0.05 for c in CLASSES}
            rows.append(dict(frame=frame, track=track, parent=0, label=track, centroid_y=ys.mean(),
                             centroid_x=xs.mean(), area=len(ys), mean_pcna=100.0, mean_dic=np.nan, score=1.0,
                             **probs, predicted_phase=call))
    tracked = resolve_phases(pd.DataFrame(rows), INTERVAL, SETTINGS)
    folder.mkdir(parents=True)
    write_outputs(folder, tracked, phase_durations(tracked, INTERVAL), masks, INTERVAL)
    summary = {"frames": FRAMES, "nucleus_diameter_px": 10.0, "division_distance_px": 15.0, "class_names": CLASSES,
               "phases_resolved": True, "frame_interval": INTERVAL, "settings": SETTINGS.to_dict(),
               "tracks": len(CELLS)}
    summary["outputs"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    (folder / "run.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("built") / "run")


def read(folder):
    """objects.csv, phases.csv (indexed by track), masks.tif and run.json of a run folder."""
    objects = pd.read_csv(folder / "objects.csv", keep_default_na=False, na_values=[""])
    phases = pd.read_csv(folder / "phases.csv").set_index("track")
    return objects, phases, tifffile.imread(folder / "masks.tif"), json.loads((folder / "run.json").read_text())


def lineage(objects):
    return objects.groupby("track")["parent"].first().to_dict()


def test_the_built_run_is_as_designed(run_dir):
    objects, phases, masks, _ = read(run_dir)
    assert sorted(objects["track"].unique()) == list(CELLS) and (objects["parent"] == 0).all()
    assert masks[20, 40, 100] == 9 and masks[10, 40, 22] == 7 and masks[10, 40, 18] == 6
    assert phases.loc[6, ["S_frames", "M_frames"]].tolist() == [0, 0]  # never seen in S: not placed


def test_no_edits_reproduce_the_run(run_dir, tmp_path):
    out = correct_run(run_dir, [], output=tmp_path / "same")
    before, after = read(run_dir), read(out)
    for column in ("frame", "track", "parent", "phase"):
        assert (before[0][column] == after[0][column]).all(), column
    assert (before[2] == after[2]).all()
    assert (out / "edits.yaml").is_file() and read_edits(out / "edits.yaml") == []
    for name in ("masks.tif", "objects.csv", "phases.csv", "ctc/res_track.txt", "ctc/mask029.tif", "timeline.png",
                 "run.json", "log.txt", "edits.yaml"):
        assert name in after[3]["outputs"] and (out / name).is_file(), name


def test_split_makes_a_new_parentless_track_from_that_frame(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "split", "track": 6, "frame": 15}], output=tmp_path / "c")
    objects, phases, masks, summary = read(out)
    assert summary["tracks"] == len(CELLS) + 1 and summary["edits_applied"] == 1
    new = objects.loc[(objects["frame"] == 15) & (objects["centroid_y"].round() == 40)
                      & (objects["centroid_x"].round() == 20), "track"].item()
    assert new == max(CELLS) + 1
    assert objects.loc[objects["track"] == 6, "frame"].max() == 14
    assert objects.loc[objects["track"] == new, "frame"].tolist() == list(range(15, 30))
    assert lineage(objects)[new] == 0 and masks[20, 40, 20] == new and masks[14, 40, 20] == 6
    assert objects.loc[objects["track"].isin([6, new]), "lineage_fixed"].all()
    assert phases.loc[new, "cut_start"] and phases.loc[6, ["G1_frames", "S_frames"]].tolist() == [15, 0]


def test_join_makes_one_cell_with_the_durations_of_its_whole_cycle(run_dir, tmp_path):
    before = read(run_dir)[1]
    assert before.loc[1, ["G1_frames", "S_frames"]].tolist() == [10, 5]
    out = correct_run(run_dir, [{"op": "join", "track": 2, "onto": 1}], output=tmp_path / "c")
    objects, phases, masks, summary = read(out)
    assert 2 not in set(objects["track"]) and summary["tracks"] == len(CELLS) - 1
    assert objects.loc[objects["track"] == 1, "frame"].tolist() == list(range(30))
    assert (masks[:, 12, 12] == 1).all()
    assert phases.loc[1, ["G1_frames", "S_frames", "G2_frames", "M_frames"]].tolist() == [10, 12, 5, 3]
    assert phases.loc[1, "S_minutes"] == 12 * INTERVAL


def test_parent_links_daughters_and_orphan_removes_the_link(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "parent", "track": 4, "mother": 3}, {"op": "parent", "track": 5, "mother": 3},
                                {"op": "parent", "track": 9, "mother": 1}, {"op": "orphan", "track": 9}],
                      output=tmp_path / "c")
    objects, phases, _, summary = read(out)
    parents = lineage(objects)
    assert parents[4] == parents[5] == 3 and parents[9] == 0 and summary["divisions"] == 1
    assert not phases.loc[3, "cut_end"] and not phases.loc[4, "cut_start"] and not phases.loc[5, "cut_start"]
    # a daughter starts in G1: never seen in S, she is placed by her birth, not by brightness
    assert phases.loc[4, "G1_frames"] == phases.loc[5, "G1_frames"] == 15
    assert phases.loc[3, ["G1_frames", "S_frames", "G2_frames", "M_frames"]].tolist() == [3, 6, 4, 2]
    lines = (out / "ctc" / "res_track.txt").read_text().splitlines()
    assert "4 15 29 3" in lines and "5 15 29 3" in lines


def test_a_fixed_phase_is_a_hard_constraint_and_places_the_rest_of_the_cell(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "phase", "track": 6, "first": 10, "last": 14, "phase": "S"}],
                      output=tmp_path / "c")
    objects, phases, _, _ = read(out)
    cell = objects[objects["track"] == 6].set_index("frame")
    assert (cell.loc[10:14, "phase"] == "S").all() and (cell.loc[10:14, "fixed_phase"] == "S").all()
    assert cell["fixed_phase"].isna().sum() == 25
    # S in frames 10–14 puts the G1/G2 frames before it in G1 and those after in G2
    assert phases.loc[6, ["G1_frames", "S_frames", "G2_frames", "M_frames"]].tolist() == [10, 5, 15, 0]


def test_delete_a_track_or_some_frames(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "parent", "track": 4, "mother": 3}, {"op": "delete", "track": 3},
                                {"op": "delete", "track": 8, "first": 5, "last": 7}], output=tmp_path / "c")
    objects, phases, masks, summary = read(out)
    assert 3 not in set(objects["track"]) and 3 not in phases.index and summary["tracks"] == len(CELLS) - 1
    assert lineage(objects)[4] == 0  # her mother is gone
    assert not (masks == 3).any()
    assert sorted(objects.loc[objects["track"] == 8, "frame"]) == [*range(5), *range(8, 20), *range(21, 30)]
    assert masks[6, 40, 100] == 0 and masks[4, 40, 100] == 8


def test_merge_makes_two_masks_one_nucleus(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "merge", "frame": 10, "labels": [6, 7]}], output=tmp_path / "c")
    objects, _, masks, _ = read(out)
    assert 7 not in set(objects["track"])
    whole = int(_disc((40, 20), "whole").sum())
    row = objects[(objects["track"] == 6) & (objects["frame"] == 10)].iloc[0]
    assert row["area"] == whole and row["centroid_y"] == pytest.approx(40) and row["centroid_x"] == pytest.approx(20)
    assert ((masks[10] == 6) == _disc((40, 20), "whole")).all()
    assert (tifffile.imread(out / "ctc" / "mask010.tif") > 0).sum() == (masks[10] > 0).sum()


def test_relabel_moves_a_nucleus_into_a_track(run_dir, tmp_path):
    out = correct_run(run_dir, [{"op": "relabel", "frame": 20, "label": 9, "track": 8}], output=tmp_path / "c")
    objects, _, masks, _ = read(out)
    assert 9 not in set(objects["track"]) and masks[20, 40, 100] == 8
    assert objects.loc[objects["track"] == 8, "frame"].tolist() == list(range(30))
    # the gap is closed: one CTC track for the whole cell
    assert [line.split()[0] for line in (out / "ctc" / "res_track.txt").read_text().splitlines()].count("8") == 1


BAD_EDITS = [
    ([{"op": "join", "track": 99, "onto": 1}], "edits[0] (join track 99 onto 1): 'track': track 99 is not in"),
    ([{"op": "split", "track": 1, "frame": 20}], "edits[0] (split track 1 frame 20): 'frame'"),
    ([{"op": "split", "track": 1, "frame": 0}], "'frame': frame 0 must be after the first frame of track 1"),
    ([{"op": "phase", "track": 6, "first": 25, "last": 40, "phase": "S"}], "'first', 'last': frames 25–40 outside"),
    ([{"op": "parent", "track": 4, "mother": 3}, {"op": "parent", "track": 3, "mother": 4}],
     "edits[1] (parent track 3 mother 4): 'mother': lineage cycle"),
    ([{"op": "parent", "track": t, "mother": 3} for t in (4, 5, 2)],
     "edits[2] (parent track 2 mother 3): 'mother': track 3 already has daughters 4 and 5; a third daughter"),
    ([{"op": "parent", "track": 3, "mother": 1}], "'track', 'mother': mother 1 is seen until frame 14"),
    ([{"op": "orphan", "track": 2}], "'track': track 2 has no mother"),
    ([{"op": "join", "track": 6, "onto": 1}], "tracks 6 and 1 both have a nucleus in frame(s) 0, 1, 2, 3, 4…"),
    ([{"op": "split", "track": 2, "frame": 20}, {"op": "join", "track": 2, "onto": 1}, {"op": "split", "track": 1}],
     "edits[2] (split track 1): missing field(s) 'frame'"),
    ([{"op": "cut", "track": 1}], "edits[0] (cut): 'op' must be one of split, join"),
    ([{"track": 1}], "edits[0] (?): 'op' must be one of"),
    ([{"op": ["split"], "track": 1}], "edits[0] (?): 'op' must be one of split, join, parent, orphan, phase, "
                                      + "delete, merge, relabel, got ['split']"),
    (["split 1 20"], "edits[0]: must be a mapping with 'op', got 'split 1 20'"),
    ([{"op": "orphan", "track": "4"}], "edits[0] (orphan track 4): 'track' must be a track id"),
    ([{"op": "split", "track": 1, "frame": True}], "'frame' must be a frame index"),
    ([{"op": "phase", "track": 6, "first": 1, "last": 2, "phase": "G3"}], "'phase' must be one of G1, S, G2, M"),
    ([{"op": "delete", "track": 6, "first": 1}], "give both 'first' and 'last'"),
    ([{"op": "delete", "track": 8, "first": 20, "last": 20}], "track 8 has no nucleus in frames 20–20"),
    ([{"op": "orphan", "track": 4, "colour": "red"}], "unknown field(s) 'colour'"),
    ([{"op": "merge", "frame": 10, "labels": [6]}], "'labels' must be two mask labels"),
    ([{"op": "merge", "frame": 11, "labels": [6, 7]}], "'labels': no nucleus labelled 7 in frame 11"),
    ([{"op": "relabel", "frame": 40, "label": 9, "track": 8}], "frame 40 is outside the movie (frames 0–29)"),
    ([{"op": "relabel", "frame": 20, "label": 9, "track": 6}], "track 6 already has a nucleus in frame 20"),
    ([{"op": "parent", "track": 4, "mother": 3}, {"op": "relabel", "frame": 10, "label": 6, "track": 4}],
     "track 4's mother 3 is seen until frame 14"),
    ({"op": "orphan", "track": 4}, "'edits' must be a list of edits, got dict"),
]


@pytest.mark.parametrize("edits, message", BAD_EDITS)
def test_a_bad_edit_is_named_and_nothing_is_written(run_dir, tmp_path, edits, message):
    with pytest.raises(PcnacycleError, match="^[^\n]*$") as caught:
        correct_run(run_dir, edits, output=tmp_path / "c")
    assert message in str(caught.value)
    assert not (tmp_path / "c").exists() and not list(tmp_path.iterdir())
    with pytest.raises(PcnacycleError) as again:
        validate_edits(run_dir, edits)
    assert str(again.value) == str(caught.value)


def test_in_place_keeps_the_previous_version(run_dir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    (target / "notes.txt").write_text("mine")
    out = correct_run(target, [{"op": "join", "track": 2, "onto": 1}], in_place=True)
    assert out == target
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run.before-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "mine"
    assert (kept[0] / "objects.csv").read_bytes() == (run_dir / "objects.csv").read_bytes()
    assert 2 not in set(read(target)[0]["track"]) and read(target)[3]["corrected_from"] == str(kept[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run", kept[0].name])  # no staging left


def test_in_place_with_a_bad_edit_leaves_the_run_as_it_was(run_dir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    with pytest.raises(PcnacycleError, match="edits\\[0\\]"):
        correct_run(target, [{"op": "orphan", "track": 1}], in_place=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (target / "objects.csv").read_bytes() == (run_dir / "objects.csv").read_bytes()


def test_where_to_write_is_checked(run_dir, tmp_path):
    with pytest.raises(PcnacycleError, match="either an output folder"):
        correct_run(run_dir, [])
    with pytest.raises(PcnacycleError, match="is \\(inside\\) the run folder"):
        correct_run(run_dir, [], output=run_dir / "corrected")
    with pytest.raises(PcnacycleError, match="not a complete pcnacycle run"):
        correct_run(tmp_path / "nothing", [], output=tmp_path / "c")
    correct_run(run_dir, [], output=tmp_path / "c")
    with pytest.raises(PcnacycleError, match="--overwrite"):
        correct_run(run_dir, [], output=tmp_path / "c")
    (tmp_path / "c" / "notes.txt").write_text("mine")
    correct_run(run_dir, [{"op": "delete", "track": 9}], output=tmp_path / "c", overwrite=True)
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine" and 9 not in set(read(tmp_path / "c")[0]["track"])


def test_round_trip_edit_correct_reopen_and_correct_again(run_dir, tmp_path):
    edits = [{"op": "split", "track": 6, "frame": 15}, {"op": "phase", "track": 6, "first": 10, "last": 14,
                                                          "phase": "S"}]
    write_edits(tmp_path / "edits.yaml", edits)
    assert read_edits(tmp_path / "edits.yaml") == edits
    first = correct_run(run_dir, tmp_path / "edits.yaml", output=tmp_path / "first")
    assert read_edits(first / "edits.yaml") == edits
    summary, state = load_run(first)  # the corrected run opens like any run
    assert summary["corrected_from"] == str(run_dir) and state.exists(10) and not state.exists(7 + 100)
    # a second correction keeps the first one's fixed phase and frozen lineage
    second = correct_run(first, [{"op": "join", "track": 2, "onto": 1}], output=tmp_path / "second")
    objects, phases, _, _ = read(second)
    assert (objects.loc[(objects["track"] == 6) & objects["frame"].between(10, 14), "phase"] == "S").all()
    assert objects.loc[objects["track"].isin([6, 10]), "lineage_fixed"].all()
    assert phases.loc[6, ["G1_frames", "S_frames"]].tolist() == [10, 5] and 2 not in phases.index


def test_edits_files_are_checked_for_form(tmp_path):
    path = tmp_path / "e.yaml"
    for text, message in [("- 1\n", "mapping with key 'edits'"), ("edits: [\n", "not a YAML file"),
                          ("edits: []\nmore: 1\n", "unknown key(s) 'more'"),
                          ("edits:\n  - {op: split, track: 1}\n", "e.yaml: edits[0] (split track 1): missing")]:
        path.write_text(text)
        with pytest.raises(PcnacycleError, match="e.yaml") as caught:
            read_edits(path)
        assert message in str(caught.value)
    with pytest.raises(PcnacycleError, match="no such file|cannot read"):
        read_edits(tmp_path / "missing.yaml")
    with pytest.raises(PcnacycleError, match="edits\\[1\\]"):
        write_edits(path, [{"op": "orphan", "track": 1}, {"op": "orphan"}])
    assert path.read_text() == "edits:\n  - {op: split, track: 1}\n"  # a refused write leaves the file as it was
    path.write_text("edits:\n")
    assert read_edits(path) == []
    # numpy numbers (as a viewer gives them) are written as plain numbers
    write_edits(path, [{"op": "merge", "frame": np.int64(3), "labels": np.array([4, 5])},
                       {"op": "phase", "track": np.uint16(2), "first": 1, "last": 2, "phase": np.str_("G2")}])
    assert path.read_text() == ("edits:\n  - {op: merge, frame: 3, labels: [4, 5]}\n"
                                "  - {op: phase, track: 2, first: 1, last: 2, phase: G2}\n")


def test_the_command_line_exits_2_on_a_bad_edit_and_writes_nothing(run_dir, tmp_path, capsys):
    from pcnacycle.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("edits:\n  - {op: parent, track: 4, mother: 3}\n  - {op: parent, track: 3, mother: 4}\n")
    code = main(["correct", str(run_dir), "--edits", str(bad), "--output", str(tmp_path / "c"), "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error: ") and error.count("\n") == 1
    assert "bad.yaml: edits[1] (parent track 3 mother 4)" in error and not (tmp_path / "c").exists()
    good = tmp_path / "good.yaml"
    good.write_text("edits:\n  - {op: relabel, frame: 20, label: 9, track: 8}\n")
    assert main(["correct", str(run_dir), "--edits", str(good), "--output", str(tmp_path / "c"), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    with pytest.raises(SystemExit):
        main(["correct", str(run_dir), "--edits", str(good)])  # --output or --in-place is required


# ------------------------------------------------------------------ the resolver's hard constraints


def cells_table(cells):
    """Rows for ``cells``: track → (parent, first frame, calls, area per frame, (y, x))."""
    rows = []
    for track, (parent, first, calls, areas, (y, x)) in cells.items():
        for step, (call, area) in enumerate(zip(calls, areas)):
            rows.append(dict(frame=first + step, track=track, parent=parent, centroid_y=float(y),
                             centroid_x=float(x), area=area, **{f"p_{c}": 0.9 if c == call else 0.05
                                                                for c in CLASSES}))
    return pd.DataFrame(rows)


def missed_division_table(frozen_tracks=()):
    """Track 1 divides at frame 15 without the tracker noticing (she halves and restarts in G1); her other
    daughter is the parentless track 2 starting beside her."""
    table = cells_table({
        1: (0, 0, [G] * 5 + [S] * 5 + [G] * 3 + [M] * 2 + [G] * 8, [200] * 15 + [100] * 8, (20, 20)),
        2: (0, 15, [G] * 8, [100] * 8, (20, 30)),
    })
    return table.assign(frozen=table["track"].isin(frozen_tracks))


def test_a_frozen_track_is_never_split_nor_taken_as_a_missed_sister():
    settings = SETTINGS.replace(division_distance=15.0)
    free = resolve_phases(missed_division_table(), INTERVAL, settings, frozen_column="frozen")
    assert free.attrs["divisions_inferred"] == 1
    daughter = free.loc[free["frame"] == 20, "track"].iloc[0]
    assert daughter not in (1, 2) and lineage(free) == {1: 0, 2: 1, daughter: 1}

    kept = resolve_phases(missed_division_table([1]), INTERVAL, settings, frozen_column="frozen")
    assert kept.attrs["divisions_inferred"] == 0 and lineage(kept) == {1: 0, 2: 0}
    assert (kept["track"] == missed_division_table()["track"]).all()

    lonely = resolve_phases(missed_division_table([2]), INTERVAL, settings, frozen_column="frozen")
    assert lonely.attrs["divisions_inferred"] == 1 and lineage(lonely)[2] == 0


def test_a_phase_fixed_on_a_daughters_first_frames_wins_over_how_daughters_start():
    table = cells_table({1: (0, 0, [G] * 3 + [S] * 3 + [G] * 2 + [M], [100] * 9, (20, 20)),
                         2: (1, 9, [G] * 8, [50] * 8, (20, 20))})
    fixed = np.where((table["track"] == 2) & (table["frame"] <= 10), "S", "")
    resolved = resolve_phases(table.assign(fixed=fixed), INTERVAL, SETTINGS, fixed_phase_column="fixed")
    assert resolved.loc[resolved["track"] == 2, "phase"].tolist() == ["S", "S"] + ["G2"] * 6
    plain = resolve_phases(table, INTERVAL, SETTINGS)
    assert plain.loc[plain["track"] == 2, "phase"].tolist() == ["G1"] * 8
    with pytest.raises(PcnacycleError, match="column 'fixed': unknown phase"):
        resolve_phases(table.assign(fixed="G3"), INTERVAL, SETTINGS, fixed_phase_column="fixed")


def test_a_run_folder_whose_masks_and_table_disagree_is_refused(run_dir, tmp_path):
    changed = tmp_path / "run"
    shutil.copytree(run_dir, changed)
    objects = pd.read_csv(changed / "objects.csv")
    objects[objects["track"] != 9].to_csv(changed / "objects.csv", index=False)
    with pytest.raises(PcnacycleError, match="disagree in frame 20 \\(labels only in the masks: \\[9\\]"):
        correct_run(changed, [], output=tmp_path / "c")
    (changed / "masks.tif").write_bytes(b"not a tiff")
    with pytest.raises(PcnacycleError, match="masks.tif: cannot be read"):
        validate_edits(changed, [])
    assert not (tmp_path / "c").exists()


def test_a_run_made_by_the_pipeline_from_label_masks_is_corrected(tmp_path):
    """Three still nuclei; the third is missed for 4 frames, more than max_gap, so the tracker breaks it in two."""
    from pcnacycle.pipeline import analyse, write_outputs
    from pcnacycle.tracking.detections import detections_table

    centres = [(12, 12), (12, 40), (40, 26)]
    label_images = np.zeros((12, 56, 56), np.uint16)
    for t in range(12):
        for k, centre in enumerate(centres):
            if not (k == 2 and 4 <= t <= 7):
                label_images[t][_disc_in((56, 56), centre)] = k + 1
    probs = [np.tile([0.9, 0.05, 0.05], (3, 1)) for _ in range(12)]
    detections = detections_table(label_images, probs, CLASSES, intensity_images=label_images * 50)
    settings = RunSettings(max_distance=8.0, division_distance=0.0, max_gap=2)
    tracked, durations, summary = analyse(detections, INTERVAL, settings, CLASSES)
    assert summary["tracks"] == 4
    run = tmp_path / "run"
    run.mkdir()
    write_outputs(run, tracked, durations, label_images, INTERVAL)
    summary.update(frame_interval=INTERVAL, settings=settings.to_dict())
    (run / "run.json").write_text(json.dumps(summary))

    early, late = sorted(tracked.loc[tracked["centroid_y"].round() == 40, "track"].unique())
    out = correct_run(run, [{"op": "join", "track": late, "onto": early}], output=tmp_path / "c")
    objects, phases, masks, corrected = read(out)
    assert corrected["tracks"] == 3 and late not in phases.index
    assert sorted(objects.loc[objects["track"] == early, "frame"]) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert (masks[[0, 11], 40, 26] == early).all() and (masks[5, 40, 26] == 0)
    # the gap is written to the CTC files as a gap: two segments, the second the daughter of the first
    assert len((out / "ctc" / "res_track.txt").read_text().splitlines()) == 4
