"""Take the README's napari screenshots from a real run of ``make demo``.

    xvfb-run -a python docs/screenshots.py demo-output docs/images

Copies ``demo-output/run`` and its movies into a temporary folder (so the
edits and corrected runs the widgets write never land beside the original),
then, in a napari window: the run opened with the correction and lineage
widgets; a phase correction applied; two frames exported, pre-annotated by
the demo's model and opened for annotation. Needs a display (Xvfb will do).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torchvision.ops  # noqa: F401  (torch before napari's OpenGL canvas: see pcnacycle.napari.__main__)


def save(viewer, path: Path, width: int = 1100) -> None:
    """A screenshot of the whole window, scaled to ``width`` pixels across."""
    import imageio.v3 as iio
    from qtpy.QtWidgets import QApplication
    from skimage.transform import resize

    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    height = round(shot.shape[0] * width / shot.shape[1])
    small = (resize(shot, (height, width), anti_aliasing=True, preserve_range=True)).astype("uint8")
    iio.imwrite(path, small, extension=".png", optimize=True)
    print(path, f"{path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="the folder `make demo` wrote")
    parser.add_argument("images", type=Path, help="where the PNGs go")
    args = parser.parse_args()
    import napari

    from pcnacycle.napari import register_manifest

    register_manifest()
    work = Path(tempfile.mkdtemp(prefix="pcnacycle-shots-"))
    shutil.copytree(args.demo / "run", work / "run")
    # run.json names the movies relative to where `make demo` ran: demo-output/sim_test/*.tif
    movies = work / args.demo.name / "sim_test"
    movies.mkdir(parents=True)
    for name in ("pcna.tif", "dic.tif"):
        shutil.copy(args.demo / "sim_test" / name, movies / name)
    args.images.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="pcnacycle")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open(str(work / "run"), plugin="pcnacycle")
    _, correct = viewer.window.add_plugin_dock_widget("pcnacycle", "Correct a run")
    from pcnacycle.napari.lineage_widget import LineageWidget

    viewer.window.add_dock_widget(LineageWidget(viewer), area="bottom", name="Lineage view")
    import pandas as pd

    objects = pd.read_csv(work / "run" / "objects.csv")
    spans = objects.groupby("track")["frame"].agg(["min", "max"])
    track = int((spans["max"] - spans["min"])[(spans["min"] <= 26) & (spans["max"] >= 36)].idxmax())
    viewer.dims.set_current_step(0, 30)
    viewer.layers["tracks"].selected_label = track
    viewer.reset_view()
    save(viewer, args.images / "napari_run.png")

    correct.track.value, correct.first.value, correct.last.value, correct.phase.value = track, 30, 33, "G2"
    assert correct.set_phase(), correct.status.value
    save(viewer, args.images / "napari_correct.png")

    viewer.close()  # a fresh window for the annotation steps
    viewer = napari.Viewer(title="pcnacycle")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open(str(work / "run"), plugin="pcnacycle")
    _, annotate = viewer.window.add_plugin_dock_widget("pcnacycle", "Annotate training frames")
    annotate.frames.value, annotate.folder.value = "10, 40", work / "frames"
    annotate.export()
    annotate.weights.value = args.demo / "train" / "model_final.pt"
    from napari.qt.threading import thread_worker  # noqa: F401  (the widget's worker needs the Qt event loop)
    from qtpy.QtWidgets import QApplication

    worker = annotate.preannotate()
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    while not finished:
        QApplication.processEvents()
    QApplication.processEvents()
    for name in ("PCNA", "DIC", "phase", "tracks", "lineage"):
        viewer.layers[name].visible = False
    nuclei = viewer.layers["nuclei"]
    nuclei.selected_label = int(nuclei.data[0, 128, 128]) or int(nuclei.data[0].max())
    annotate.phase.value = "M"
    annotate.set_class()
    annotate.output.value = work / "training"
    annotate.save()
    viewer.reset_view()
    save(viewer, args.images / "napari_annotate.png")
    viewer.close()
    print("working copies in", work)


if __name__ == "__main__":
    main()
