"""The annotation loop: frames exported, pre-annotations opened, corrected, saved as label masks the trainer reads."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

napari = pytest.importorskip("napari", reason="the napari extra is not installed (pip install 'pcnacycle[napari]')")
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the widget needs Qt, not a screen

from napari_helpers import make_run
from pcnacycle.annotate import predicted_objects, via2_entry
from pcnacycle.config import dump_config, load_config
from pcnacycle.data.catalog import load_sample, read_records
from pcnacycle.errors import PcnacycleError
from pcnacycle.napari.annotation import annotation_config, export_frames, load_annotations, parse_frames, save_labelmask

CLASSES = ["G1/G2", "S", "M"]


def pcna_config():
    return load_config("stage3_pcna_cpu", ["INPUT.CHANNELS", "[pcna]"])


def preannotate_from_masks(root, masks, frames, class_of):
    """What ``pcnacycle annotate`` writes, with the model replaced by known masks: a VIA 2 file."""
    entries = {}
    for t in frames:
        ids = np.unique(masks[t])[1:]
        result = {"label_image": np.searchsorted(np.r_[0, ids], masks[t]), "labels": np.array([
            CLASSES.index(class_of(t, i)) + 1 for i in ids]), "scores": np.ones(len(ids))}
        path = root / "pcna" / f"frame_{t:03d}.tif"
        entries[f"{path.name}{path.stat().st_size}"] = via2_entry(path, predicted_objects(result), CLASSES, "phase")
    (root / "via_region_data.json").write_text(json.dumps(entries))
    return root / "via_region_data.json"


@pytest.fixture
def annotated(tmp_path):
    """Frames 0 and 4 of the hand-built run's movie exported and 'pre-annotated' (track 4 called S, others G1/G2)."""
    import tifffile

    run = make_run(tmp_path)
    masks = tifffile.imread(run / "masks.tif")
    movie = tifffile.imread(tmp_path / "movie.tif")
    root = tmp_path / "frames"
    written = export_frames({"pcna": movie}, [0, 4], root)
    assert [p.name for p in written] == ["frame_000.tif", "frame_004.tif"]
    json_path = preannotate_from_masks(root, masks, [0, 4], lambda t, track: "S" if track == 4 else "G1/G2")
    return root, json_path, masks


def test_parse_frames_reads_lists_and_ranges_and_names_bad_entries():
    assert parse_frames("0, 10, 20-22", 30) == [0, 10, 20, 21, 22]
    with pytest.raises(PcnacycleError, match="'31' lies outside the movie's frames 0-29"):
        parse_frames("0, 31", 30)
    with pytest.raises(PcnacycleError, match="'x' is not a frame number"):
        parse_frames("x", 30)


def test_corrected_annotations_are_saved_as_label_masks_the_trainer_reads(annotated, tmp_path):
    root, json_path, masks = annotated
    cfg = annotation_config(pcna_config(), root, json_path)
    stack = load_annotations(cfg)
    assert stack.image_ids == ["frame_000", "frame_004"] and stack.labels.shape == (2, 32, 32)
    # the pre-annotations come back as they were: one label per nucleus, classes as predicted
    for index, t in enumerate([0, 4]):
        for track in np.unique(masks[t])[1:]:
            labels = np.unique(stack.labels[index][masks[t] == track])
            assert len(labels) == 1 and labels[0] > 0
            assert stack.classes[int(labels[0])] == ("S" if track == 4 else "G1/G2")
    # corrections: a nucleus the model missed, drawn and classified; one class changed
    stack.labels[1, 26:31, 0:5] = 99
    stack.classes[99] = "M"
    corrected = int(stack.labels[0, 8, 8])
    stack.classes[corrected] = "S"
    out = save_labelmask(stack, tmp_path / "training", cfg)
    assert (out / "classes.csv").is_file() and (out / "labels/frame_004.tif").is_file()
    # the trainer's own reader, DATASETS.FORMAT labelmask
    train_cfg = load_config("stage3_pcna_cpu", ["INPUT.CHANNELS", "[pcna]", "DATASETS.FORMAT", "labelmask",
                                                "DATASETS.ROOT", str(out)])
    records = read_records(train_cfg)
    samples = {r["image_id"]: load_sample(train_cfg, r) for r in records}
    assert sorted(samples) == ["frame_000", "frame_004"]
    for index, image_id in enumerate(stack.image_ids):
        sample = samples[image_id]
        np.testing.assert_array_equal(sample["channels"]["pcna"], stack.channels["pcna"][index])
        for mask, class_id in zip(sample["masks"], sample["labels"]):
            label = int(np.unique(stack.labels[index][mask])[0])
            assert (stack.labels[index] == label).sum() == mask.sum()
            assert CLASSES[class_id - 1] == stack.classes[label]
    assert CLASSES[samples["frame_004"]["labels"][-1] - 1] == "M"  # the drawn nucleus, label 99, is last


def test_saving_refuses_a_foreign_folder_and_an_unclassified_nucleus(annotated, tmp_path):
    root, json_path, _ = annotated
    cfg = annotation_config(pcna_config(), root, json_path)
    stack = load_annotations(cfg)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(PcnacycleError, match="no readable annotation.json"):
        save_labelmask(stack, foreign, cfg)
    stack.labels[0, 0:3, 28:31] = 77
    with pytest.raises(PcnacycleError, match="frame frame_000: nucleus 77 has no class"):
        save_labelmask(stack, tmp_path / "training", cfg)
    assert not (tmp_path / "training").exists() and (foreign / "mine.txt").read_text() == "keep"


def test_saving_again_replaces_only_what_the_last_save_wrote(annotated, tmp_path):
    root, json_path, _ = annotated
    cfg = annotation_config(pcna_config(), root, json_path)
    stack = load_annotations(cfg)
    out = save_labelmask(stack, tmp_path / "training", cfg)
    (out / "my_notes.txt").write_text("keep")
    stack.image_ids, stack.labels = stack.image_ids[:1], stack.labels[:1]
    stack.channels = {c: frames[:1] for c, frames in stack.channels.items()}
    save_labelmask(stack, out, cfg)
    assert not (out / "labels/frame_004.tif").exists() and (out / "labels/frame_000.tif").exists()
    assert (out / "my_notes.txt").read_text() == "keep"


def test_annotation_widget_exports_opens_corrects_and_saves(tmp_path):
    from napari.components import ViewerModel

    from pcnacycle.napari.annotate_widget import NUCLEI, AnnotateWidget
    from pcnacycle.napari.layers import show_run

    run = make_run(tmp_path)
    viewer = ViewerModel()
    show_run(viewer, run)
    widget = AnnotateWidget(viewer)
    widget.frames.value, widget.folder.value = "0, 4", tmp_path / "frames"
    assert [p.name for p in widget.export()] == ["frame_000.tif", "frame_004.tif"]
    masks = viewer.layers["tracks"].data
    widget.annotations.value = preannotate_from_masks(tmp_path / "frames", masks, [0, 4], lambda t, i: "G1/G2")
    (tmp_path / "config.yaml").write_text(dump_config(pcna_config()))
    widget.config.value = tmp_path / "config.yaml"
    widget.open()
    nuclei = viewer.layers[NUCLEI]
    assert nuclei.data.shape == (2, 32, 32) and viewer.layers["annotated pcna"].data.shape == (2, 32, 32)
    nuclei.selected_label = int(nuclei.data[1, 24, 24])  # track 4 at frame 4
    widget.phase.value = "M"
    widget.set_class()
    assert nuclei.colormap.map(nuclei.selected_label)[0] == pytest.approx(255 / 255)  # M's colour (255, 60, 160)
    new = widget.new_nucleus()
    assert nuclei.mode == "paint" and new > nuclei.data.max()
    widget.output.value = tmp_path / "training"
    widget.save()
    classes = (tmp_path / "training/classes.csv").read_text().splitlines()
    assert classes[0] == "image,label,class" and sum(line.endswith(",M") for line in classes) == 1
