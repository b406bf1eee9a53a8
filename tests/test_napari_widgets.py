"""The napari widgets: correction (through the real ``correct_run``), lineage view, run, and a real Viewer.

The widgets are Qt widgets over a viewer model: they are tested on
``napari.components.ViewerModel`` with Qt's offscreen platform when there is
no display. Tests that need napari's OpenGL canvas (a real ``napari.Viewer``)
need an X display: ``make test`` runs the suite under ``xvfb-run -a``;
without one they are skipped, saying so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

# torch (with triton's LLVM) must load before napari's OpenGL canvas does: under Mesa's software
# OpenGL (xvfb) loading it afterwards crashes (see pcnacycle.napari.__main__)
import torchvision.ops  # noqa: F401

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt widgets need no screen; napari's canvas does
napari = pytest.importorskip("napari", reason="the napari extra is not installed (pip install 'pcnacycle[napari]')")

from conftest import stand_in_predictor
from napari_helpers import make_run
from pcnacycle.correct import correct_run, read_edits
from pcnacycle.napari.layers import show_run
from pcnacycle.napari.runfolder import PHASE_CODES

needs_display = pytest.mark.skipif(
    not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    reason="needs an X display for napari's OpenGL canvas: run the tests under `xvfb-run -a` (make test does)")


@pytest.fixture
def opened(tmp_path):
    """A ViewerModel showing a hand-built run (see napari_helpers), and the run folder."""
    from napari.components import ViewerModel

    run = make_run(tmp_path)
    viewer = ViewerModel()
    show_run(viewer, run)
    return viewer, run


@pytest.fixture
def plugins():
    """npe2's plugins: napari's built-in readers, and ours (registered from the manifest when the dev
    install has no entry point for it)."""
    import npe2

    from pcnacycle.napari import register_manifest

    register_manifest()
    return npe2.PluginManager.instance()


def wait_for(worker, seconds=120):
    """Process Qt events until a napari thread worker has finished."""
    from qtpy.QtWidgets import QApplication

    done = []
    worker.finished.connect(lambda: done.append(True))
    deadline = time.monotonic() + seconds
    while not done and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()
    assert done, "the worker did not finish"


def test_correction_widget_writes_the_cli_edits_file_and_shows_the_corrected_run(opened, tmp_path):
    from pcnacycle.napari.correct_widget import CorrectWidget

    viewer, run = opened
    widget = CorrectWidget(viewer)
    viewer.layers["tracks"].selected_label = 4  # as the picker or a click does
    assert widget.track.value == 4
    viewer.dims.set_current_step(0, 3)
    assert widget.split_here(), widget.status.value
    edits_file = tmp_path / "run-edits.yaml"
    assert read_edits(edits_file) == [{"op": "split", "track": 4, "frame": 3}]
    # the layers now show the corrected run: frames >= 3 of track 4 are a new track without mother
    tracks = viewer.layers["tracks"].data
    assert (tracks[:3] == 4).any() and not (tracks[3:] == 4).any() and (tracks[3:, 24, 24] == 5).all()
    assert 5 not in viewer.layers["lineage"].graph
    # what the CLI makes of the same edits file is what the widget shows
    cli = correct_run(run, edits_file, output=tmp_path / "cli")
    np.testing.assert_array_equal(tifffile.imread(cli / "masks.tif"), tracks)
    pd.testing.assert_frame_equal(pd.read_csv(cli / "objects.csv"), pd.read_csv(tmp_path / "run-corrected/objects.csv"))
    # the source run is never touched
    assert sorted(p.name for p in run.iterdir()) == ["masks.tif", "objects.csv", "run.json"]


def test_invalid_edits_are_refused_with_nothing_written_and_undo_steps_back(opened, tmp_path):
    from pcnacycle.napari.correct_widget import CorrectWidget

    viewer, run = opened
    widget = CorrectWidget(viewer)
    widget.track.value, widget.other.value = 4, 1  # 1 has two daughters already
    assert not widget.set_mother()
    assert "edits[0]" in widget.status.value and "daughter" in widget.status.value
    assert not (tmp_path / "run-edits.yaml").exists()
    widget.track.value = 4
    viewer.dims.set_current_step(0, 3)
    assert widget.split_here(), widget.status.value  # frames 3-5 of track 4 become track 5
    widget.track.value, widget.other.value = 5, 4
    assert widget.set_mother(), widget.status.value
    assert viewer.layers["lineage"].graph[5] == [4]
    before = (tmp_path / "run-edits.yaml").read_text()
    widget.track.value, widget.other.value = 2, 5  # 2 starts (frame 3) before 5 ends (frame 5)
    assert not widget.set_mother()
    assert widget.status.value.startswith("edits[2] (parent track 2 mother 5)")
    assert (tmp_path / "run-edits.yaml").read_text() == before
    assert widget.undo()
    assert read_edits(tmp_path / "run-edits.yaml") == [{"op": "split", "track": 4, "frame": 3}]
    assert 5 not in viewer.layers["lineage"].graph
    assert widget.undo() and read_edits(tmp_path / "run-edits.yaml") == []
    assert (viewer.layers["tracks"].data[3:, 24, 24] == 4).all()
    assert viewer.layers["tracks"].metadata["pcnacycle_run"] == str(run)


def test_phase_and_delete_edits_recolour_and_remove_nuclei(opened):
    from pcnacycle.napari.correct_widget import CorrectWidget

    viewer, _ = opened
    widget = CorrectWidget(viewer)
    widget.track.value, widget.first.value, widget.last.value, widget.phase.value = 4, 0, 1, "G2"
    assert widget.set_phase(), widget.status.value
    phase = viewer.layers["phase"].data
    assert phase[0, 24, 24] == PHASE_CODES["G2"] and phase[1, 24, 24] == PHASE_CODES["G2"]
    widget.track.value = 3
    widget.only_frames.value = False
    assert widget.delete()
    assert not (viewer.layers["tracks"].data == 3).any()
    assert 3 not in set(viewer.layers["lineage"].data[:, 0].astype(int))


def test_widgets_opened_before_the_run_pick_it_up(tmp_path):
    from napari.components import ViewerModel

    from pcnacycle.napari.correct_widget import CorrectWidget
    from pcnacycle.napari.lineage_widget import LineageWidget

    viewer = ViewerModel()
    correct, lineage = CorrectWidget(viewer), LineageWidget(viewer)
    run = make_run(tmp_path)
    show_run(viewer, run)  # layers arrive one by one, as from the reader
    assert lineage.rows == [1, 2, 3, 4]
    assert correct.edits_file.value == tmp_path / "run-edits.yaml" and viewer.layers["tracks"].contour == 1
    viewer.layers["tracks"].selected_label = 3
    assert correct.track.value == 3


def test_lineage_click_selects_the_cell_in_the_viewer(opened):
    from matplotlib.backend_bases import MouseEvent

    from pcnacycle.napari.lineage_widget import LineageWidget

    viewer, _ = opened
    view = LineageWidget(viewer)
    assert view.rows == [1, 2, 3, 4]  # mother 1, then her daughters 2 and 3, then 4
    x, y = view.axes.transData.transform((4, view.rows.index(3)))  # track 3's row at frame 4
    view.canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", view.canvas, x, y, 1))
    assert viewer.layers["tracks"].selected_label == 3 and viewer.dims.current_step[0] == 4
    viewer.layers["tracks"].selected_label = 2  # and a cell picked in the viewer is highlighted here
    assert view._highlight is not None and view._highlight.get_y() == pytest.approx(view.rows.index(2) - 0.5)


def test_run_widget_runs_the_pipeline_in_a_thread_and_opens_the_result(tmp_path, monkeypatch, plugins):
    from napari.components import ViewerModel

    from pcnacycle import pipeline
    from pcnacycle.config import load_config
    from pcnacycle.napari.run_widget import RunWidget

    masks = tifffile.imread(make_run(tmp_path / "truth") / "masks.tif")
    tifffile.imwrite(tmp_path / "pcna.tif", (masks > 0).astype(np.uint16) * 1000)
    (tmp_path / "weights.pt").write_bytes(b"stand-in")
    cfg = load_config("stage3_pcna_cpu", ["INPUT.CHANNELS", "[pcna]"])

    def oracle(image):  # the hand-built masks, every nucleus S with certainty
        t = oracle.calls
        oracle.calls += 1
        ids = np.unique(masks[t])[1:]
        label_image = np.searchsorted(np.r_[0, ids], masks[t]).astype(np.int32)
        probs = np.tile([0.0, 1.0, 0.0], (len(ids), 1)).astype(np.float32)
        return {"label_image": label_image, "scores": np.ones(len(ids), np.float32),
                "labels": np.full(len(ids), 2), "probs": probs, "boxes": np.zeros((len(ids), 4), np.float32)}

    oracle.calls = 0
    monkeypatch.setattr(pipeline, "Predictor", stand_in_predictor(cfg, oracle))
    viewer = ViewerModel()
    layer = viewer.open(str(tmp_path / "pcna.tif"), plugin="napari")[0]
    assert Path(layer.source.path) == tmp_path / "pcna.tif"
    widget = RunWidget(viewer)
    widget.weights.value, widget.output.value, widget.pcna.value = tmp_path / "weights.pt", tmp_path / "out", "pcna"
    widget.frame_interval.value = 10.0
    wait_for(widget.run())
    assert widget.status.value.startswith("finished"), widget.status.value
    np.testing.assert_array_equal(viewer.layers["tracks"].data > 0, masks > 0)
    assert viewer.layers["PCNA"].data.shape == masks.shape and widget.progress.value == widget.progress.max


def test_run_widget_refuses_a_layer_made_in_memory(opened):
    from pcnacycle.napari.run_widget import RunWidget

    viewer, _ = opened
    viewer.add_image(np.zeros((6, 32, 32)), name="made here")
    widget = RunWidget(viewer)
    widget.pcna.value = "made here"
    widget.weights.value, widget.output.value = Path(__file__), Path(__file__).parent / "never-written"
    assert widget.run() is None
    assert "was not opened from a file" in widget.status.value


@needs_display
def test_real_viewer_opens_a_run_with_the_plugin_and_applies_an_edit(tmp_path, plugins):
    run = make_run(tmp_path)
    viewer = napari.Viewer(show=False)
    try:
        viewer.open(str(run), plugin="pcnacycle")
        assert [layer.name for layer in viewer.layers] == ["PCNA", "phase", "tracks", "lineage"]
        _, widget = viewer.window.add_plugin_dock_widget("pcnacycle", "Correct a run")
        viewer.window.add_plugin_dock_widget("pcnacycle", "Lineage view")
        widget.track.value, widget.first.value, widget.last.value, widget.phase.value = 1, 0, 0, "S"
        assert widget.set_phase(), widget.status.value
        assert viewer.layers["phase"].data[0, 8, 8] == PHASE_CODES["S"]
    finally:
        viewer.close()


def test_launcher_refuses_a_folder_that_is_not_a_run_in_one_line(tmp_path, capsys):
    from pcnacycle.napari.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (f"pcnacycle: {tmp_path}: not a pcnacycle run folder (expected run.json "
                                               "and masks.tif in it)")
