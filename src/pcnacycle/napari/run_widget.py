"""The run widget: ``pcnacycle run`` on a movie open in the viewer, in a worker thread, with a progress bar.

The movie layers must have been opened from TIFF files (``run`` reads the
files frame by frame and records their paths in ``run.json``). When the run
finishes, its folder is opened in the viewer as the reader would open it.
"""

from pathlib import Path

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton
from napari.qt.threading import thread_worker
from qtpy.QtCore import QTimer

from ..errors import PcnacycleError
from .layers import show_run

_NO_DIC = "(none)"


def movie_path(layer) -> Path:
    """The file an Image layer was opened from.

    Raises
    ------
    PcnacycleError
        When the layer was not read from a file (made in memory, or from a plugin's sample).
    """
    path = getattr(layer.source, "path", None)
    if not path or not Path(path).is_file():
        raise PcnacycleError(f"layer {layer.name!r} was not opened from a file: save it as a TIFF "
                             "(File > Save Selected Layers) and open that file, then run")
    return Path(path)


def active_bar():
    """``(description, done, total)`` of the tqdm progress bar most recently started, or None."""
    from tqdm import tqdm

    bars = [bar for bar in list(tqdm._instances) if not bar.disable]
    if not bars:
        return None
    bar = max(bars, key=lambda b: b.start_t)
    return bar.desc, bar.n, bar.total


class RunWidget(Container):
    """Weights, movie layers, frame interval and output folder → a run folder shown in the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.weights = FileEdit(label="weights", mode="r", filter="*.pt",
                                tooltip="a checkpoint (model_final.pt) or its training folder")
        self.pcna = ComboBox(label="PCNA movie", choices=self._image_layers)
        self.dic = ComboBox(label="DIC movie", choices=lambda _: [_NO_DIC, *self._image_layers()])
        self.frame_interval = FloatSpinBox(label="minutes per frame", min=0, max=10000, step=0.5,
                                           tooltip="0: from the movie's metadata, else 10")
        self.output = FileEdit(label="output folder", mode="d")
        self.start = PushButton(text="run")
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(label="", value="")
        self.extend([self.weights, self.pcna, self.dic, self.frame_interval, self.output, self.start, self.progress,
                     self.status])
        self.start.changed.connect(lambda _=None: self.run())
        viewer.layers.events.inserted.connect(lambda _=None: self.reset_choices())
        viewer.layers.events.removed.connect(lambda _=None: self.reset_choices())
        self.worker = None
        self._timer = QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._show_progress)

    def _image_layers(self, _=None) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]

    def arguments(self) -> dict:
        """The arguments of :func:`pcnacycle.pipeline.run` the widget's fields give."""
        if not self.pcna.value:
            raise PcnacycleError("no PCNA movie: open the movie (a TIFF file) in the viewer first")
        weights, output = Path(self.weights.value), Path(self.output.value)
        if not weights.exists() or weights == Path("."):
            raise PcnacycleError(f"weights {weights}: no such file or folder; choose the model's checkpoint")
        if output == Path("."):
            raise PcnacycleError("choose an output folder for the run")
        dic = self.dic.value if self.dic.value != _NO_DIC else None
        return {"weights": weights, "pcna": movie_path(self.viewer.layers[self.pcna.value]), "output": output,
                "dic": movie_path(self.viewer.layers[dic]) if dic else None,
                "frame_interval": self.frame_interval.value or None}

    def run(self):
        """Start the run in a worker thread; return the worker (None when the fields are refused)."""
        try:
            arguments = self.arguments()
        except PcnacycleError as exc:
            self._fail(exc)
            return None
        self.start.enabled = False
        self.status.value = "running…"
        self.worker = _run_pipeline(arguments)
        self.worker.returned.connect(self._finished)
        self.worker.errored.connect(self._fail)
        self.worker.finished.connect(self._stopped)
        self._timer.start()
        self.worker.start()
        return self.worker

    def _show_progress(self) -> None:
        bar = active_bar()
        if bar is not None and bar[2]:
            description, done, total = bar
            self.progress.label = description or "progress"
            self.progress.max, self.progress.value = int(total), int(min(done, total))

    def _finished(self, output) -> None:
        self.progress.value = self.progress.max
        self.status.value = f"finished: {output}"
        show_run(self.viewer, output)

    def _fail(self, exc) -> None:
        message = str(exc) if isinstance(exc, PcnacycleError) else f"run failed: {exc!r}"
        self.status.value = message
        napari.utils.notifications.show_error(message)

    def _stopped(self) -> None:
        self._timer.stop()
        self.start.enabled = True


@thread_worker(ignore_errors=True)  # errors are shown by the widget, as one line
def _run_pipeline(arguments: dict):
    from ..pipeline import run

    # progress=True: the stages' tqdm bars are what the widget's bar follows
    return run(progress=True, **arguments)
