"""The annotation widget: frames of a movie → pre-annotated by a model → corrected here → saved for training.

Steps, top to bottom (see :mod:`pcnacycle.napari.annotation`): export the
chosen frames of the open movie into a dataset folder; pre-annotate them
with a model (what ``pcnacycle annotate`` does); open the annotations as a
``nuclei`` Labels layer coloured by phase class; correct outlines with
napari's label tools (*new nucleus* picks an unused label) and classes
(*set class*); save as label masks + ``classes.csv`` for ``pcnacycle train``.
"""

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from napari.qt.threading import thread_worker

from ..errors import PcnacycleError
from .annotation import (
    AnnotationStack,
    annotation_config,
    export_frames,
    load_annotations,
    parse_frames,
    save_labelmask,
)
from .runfolder import LAYER_NAMES, phase_rgba

#: The layer holding the nuclei being annotated.
NUCLEI = "nuclei"


def class_colours(classes: dict[int, str]) -> dict:
    """{label: RGBA} in the package's phase colours; unclassified labels (None) in the fallback grey."""
    colours = {label: phase_rgba(name) for label, name in classes.items()}
    colours.update({0: (0.0, 0.0, 0.0, 0.0), None: phase_rgba(None)})
    return colours


class AnnotateWidget(Container):
    """Export, pre-annotate, open, correct and save training frames."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.stack: AnnotationStack | None = None
        self.cfg = None
        self.frames = LineEdit(label="frames", value="0, 20, 40", tooltip="frame numbers and ranges: 0, 10, 20-23")
        self.folder = FileEdit(label="dataset folder", mode="d", tooltip="exported frames go to <folder>/pcna, dic")
        self.weights = FileEdit(label="weights", mode="r", filter="*.pt")
        self.annotations = FileEdit(label="annotations", mode="r", filter="*.json")
        self.config = FileEdit(label="model config", mode="r", filter="*.yaml",
                               tooltip="the config.yaml of the model's training folder (its classes and channels)")
        # a function, so napari's resetting of choices on layer changes keeps the classes
        self.phase = ComboBox(label="class", choices=lambda _: list(self.cfg.MODEL.CLASS_NAMES) if self.cfg else [])
        self.output = FileEdit(label="save to", mode="d")
        self.status = Label(label="", value="")
        actions = {"export frames": self.export, "pre-annotate": self.preannotate, "open annotations": self.open,
                   "new nucleus": self.new_nucleus, "set class of selected": self.set_class,
                   "save for training": self.save}
        buttons = {}
        for text, action in actions.items():
            buttons[text] = PushButton(text=text)
            buttons[text].changed.connect(lambda _=None, act=action: self._guarded(act))
        self.extend([self.frames, self.folder, buttons["export frames"], self.weights, buttons["pre-annotate"],
                     self.annotations, self.config, buttons["open annotations"], self.phase, buttons["new nucleus"],
                     buttons["set class of selected"], self.output, buttons["save for training"], self.status])
        self.weights.changed.connect(self._guess_config)
        self.worker = None

    def _guarded(self, action) -> None:
        try:
            action()
        except PcnacycleError as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, PcnacycleError) else f"failed: {exc!r}"
        self.status.value = message
        napari.utils.notifications.show_error(message)

    def _guess_config(self, _=None) -> None:
        config = Path(self.weights.value).parent / "config.yaml"
        if config.is_file():
            self.config.value = config

    # ------------------------------------------------------------ 1. frames of the open movie

    def export(self) -> list[Path]:
        """Write the chosen frames of the PCNA (and DIC) layers into the dataset folder."""
        movies = {name.lower(): self.viewer.layers[LAYER_NAMES[name.lower()]].data for name in ("PCNA", "DIC")
                  if LAYER_NAMES[name.lower()] in self.viewer.layers}
        if "pcna" not in movies:
            raise PcnacycleError("no PCNA layer: open a run folder (or a movie as a layer named PCNA) first")
        frames = parse_frames(self.frames.value, len(movies["pcna"]))
        written = export_frames({c: np.asarray(m) for c, m in movies.items()}, frames, Path(self.folder.value))
        self.status.value = f"{len(written)} frame(s) written to {Path(self.folder.value)}"
        return written

    # ------------------------------------------------------------ 2. the model's guesses

    def preannotate(self):
        """Pre-annotate the dataset folder's PCNA frames in a worker thread, then open the result."""
        folder = Path(self.folder.value)
        images = sorted((folder / "pcna").glob("*.tif")) or sorted(folder.glob("*.tif"))
        if not images:
            raise PcnacycleError(f"{folder}: no frames (*.tif in it or in pcna/): export frames first")
        self.status.value = f"pre-annotating {len(images)} frame(s)…"
        self.worker = _preannotate(self.weights.value, images, folder)
        self.worker.returned.connect(self._preannotated)
        self.worker.errored.connect(self._failed)
        self.worker.start()
        return self.worker

    def _preannotated(self, written: dict) -> None:
        self.annotations.value = written["via2"]
        self._guarded(self.open)

    # ------------------------------------------------------------ 3. correct

    def open(self) -> None:
        """Show the annotations: image layers of the frames and the ``nuclei`` layer coloured by class."""
        from ..config import load_config

        cfg = annotation_config(load_config(str(self.config.value)), Path(self.folder.value), self.annotations.value)
        self.stack, self.cfg = load_annotations(cfg), cfg
        self.phase.reset_choices()
        for channel, frames in self.stack.channels.items():
            name = f"annotated {channel}"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_image(frames, name=name, colormap="gray", blending="additive",
                                  visible=channel == next(iter(self.stack.channels)))
        if NUCLEI in self.viewer.layers:
            self.viewer.layers.remove(NUCLEI)
        self.viewer.add_labels(self.stack.labels, name=NUCLEI, opacity=0.5,
                               colormap=class_colours(self.stack.classes))
        self.viewer.dims.set_current_step(0, 0)
        self.status.value = (f"{len(self.stack.image_ids)} frame(s), {len(self.stack.classes)} nuclei: correct "
                             "outlines with the label tools, classes with 'set class of selected'")

    def _nuclei(self):
        if self.stack is None or NUCLEI not in self.viewer.layers:
            raise PcnacycleError("no annotations open: open annotations first")
        return self.viewer.layers[NUCLEI]

    def new_nucleus(self) -> int:
        """Select an unused label (and paint mode) to draw a nucleus the model missed."""
        layer = self._nuclei()
        label = int(max(layer.data.max(), max(self.stack.classes, default=0))) + 1
        layer.selected_label = label
        layer.mode = "paint"
        return label

    def set_class(self) -> None:
        """Give the selected nucleus the chosen class."""
        layer = self._nuclei()
        label = int(layer.selected_label)
        if not label or not (layer.data == label).any():
            raise PcnacycleError(f"nucleus {label} is not in the frames: select one (picker tool, or paint it)")
        self.stack.classes[label] = self.phase.value
        layer.colormap = class_colours(self.stack.classes)
        self.status.value = f"nucleus {label}: {self.phase.value}"

    # ------------------------------------------------------------ 4. save for the trainer

    def save(self) -> Path:
        """Write label masks, channels and ``classes.csv`` (``DATASETS.FORMAT labelmask``)."""
        layer = self._nuclei()
        self.stack.labels = np.asarray(layer.data, np.uint16)
        output = save_labelmask(self.stack, Path(self.output.value), self.cfg)
        self.status.value = (f"saved {len(self.stack.image_ids)} frame(s) to {output}: train with DATASETS.FORMAT "
                             f"labelmask DATASETS.ROOT {output}")
        return output


@thread_worker(ignore_errors=True)  # errors are shown by the widget, as one line
def _preannotate(weights, images, folder):
    from ..annotate import preannotate

    return preannotate(weights, images, folder, fmt=("via2",))  # never over earlier (corrected) annotations
