"""The correction widget: edits of the shown run, written to the edits file ``pcnacycle correct`` reads.

Pick a cell by clicking it (any layer selected, pan/zoom mode) or with the
``tracks`` layer's picker; its id appears under *track*. Each action appends
one edit (see :mod:`pcnacycle.correct.edits`), corrects the run with every
edit so far (:class:`~pcnacycle.napari.session.CorrectionSession`) and
refreshes the layers; *undo* drops the last edit.
"""

from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox

from ..correct import PHASE_NAMES
from ..errors import PcnacycleError
from .layers import show_run, shown_run
from .runfolder import LAYER_NAMES
from .session import CorrectionSession, default_paths

_MAX_ID = 2**31 - 1


class CorrectWidget(Container):
    """Split, join, set mother, orphan, set phase, delete and undo on the run the viewer shows."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.session: CorrectionSession | None = None
        self.track = SpinBox(label="track", min=0, max=_MAX_ID, tooltip="the cell to edit: click it in the viewer")
        self.other = SpinBox(label="other track", min=0, max=_MAX_ID, tooltip="'join to' and 'set mother' use it")
        self.first = SpinBox(label="first frame", min=0, max=_MAX_ID)
        self.last = SpinBox(label="last frame", min=0, max=_MAX_ID)
        self.phase = ComboBox(label="phase", choices=list(PHASE_NAMES))
        self.only_frames = CheckBox(text="delete only first–last frames")
        self.edits_file = FileEdit(label="edits file", mode="w", filter="*.yaml")
        self.output = FileEdit(label="corrected run", mode="d")
        self.status = Label(label="", value="open a run folder (File > Open Folder, plugin pcnacycle)")
        actions = {"split here": self.split_here, "join to other": self.join, "set other as mother": self.set_mother,
                   "remove mother": self.orphan, "set phase first–last": self.set_phase, "delete": self.delete,
                   "first = this frame": lambda: setattr(self.first, "value", self.frame),
                   "last = this frame": lambda: setattr(self.last, "value", self.frame), "undo": self.undo}
        buttons = []
        for text, action in actions.items():
            button = PushButton(text=text)
            button.changed.connect(lambda _=None, act=action: act())
            buttons.append(button)
        self.extend([self.track, self.other, self.first, self.last, self.phase, self.only_frames, *buttons,
                     self.edits_file, self.output, self.status])
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.mouse_drag_callbacks.append(self._on_click)
        self._on_layers_changed()

    # ------------------------------------------------------------ what is selected

    @property
    def frame(self) -> int:
        """The frame the viewer shows."""
        return int(self.viewer.dims.current_step[0])

    def _on_layers_changed(self, event=None) -> None:
        shown = shown_run(self.viewer)
        if (shown is None or LAYER_NAMES["labels"] not in self.viewer.layers
                or (self.session and self.session.source == shown[1])):
            return  # no run yet (or not all its layers yet), or the run already being corrected
        edits, output = default_paths(shown[1])
        self.edits_file.value, self.output.value = edits, output
        labels = self.viewer.layers[LAYER_NAMES["labels"]]
        labels.contour, labels.visible = 1, True  # each track outlined in its own colour over the phase colours
        labels.events.selected_label.connect(lambda _=None: setattr(self.track, "value", int(labels.selected_label)))
        self.status.value = f"correcting {shown[1]}"

    def _on_click(self, viewer, event) -> None:
        """A click on a nucleus selects its track in the ``tracks`` layer (and so here)."""
        if LAYER_NAMES["labels"] not in viewer.layers:
            return
        labels = viewer.layers[LAYER_NAMES["labels"]]
        value = labels.get_value(event.position, world=True)
        if value:
            labels.selected_label = int(value)

    # ------------------------------------------------------------ actions

    def split_here(self) -> bool:
        return self.apply({"op": "split", "track": self.track.value, "frame": self.frame})

    def join(self) -> bool:
        return self.apply({"op": "join", "track": self.track.value, "onto": self.other.value})

    def set_mother(self) -> bool:
        return self.apply({"op": "parent", "track": self.track.value, "mother": self.other.value})

    def orphan(self) -> bool:
        return self.apply({"op": "orphan", "track": self.track.value})

    def set_phase(self) -> bool:
        return self.apply({"op": "phase", "track": self.track.value, "first": self.first.value, "last": self.last.value,
                    "phase": self.phase.value})

    def delete(self) -> bool:
        frames = {"first": self.first.value, "last": self.last.value} if self.only_frames.value else {}
        return self.apply({"op": "delete", "track": self.track.value, **frames})

    def apply(self, edit: dict) -> bool:
        """Append ``edit`` and show the corrected run; False (and the reason shown) when it was refused."""
        return self._do(lambda session: session.apply(edit))

    def undo(self) -> bool:
        return self._do(lambda session: session.undo())

    def _do(self, step) -> bool:
        try:
            session = self._session()
            shown = step(session)
        except PcnacycleError as exc:
            self.status.value = str(exc)
            napari.utils.notifications.show_error(str(exc))
            return False
        show_run(self.viewer, shown, source=session.source)
        self.status.value = f"{len(session.edits)} edit(s) in {session.edits_path.name}; showing {shown}"
        return True

    def _session(self) -> CorrectionSession:
        shown = shown_run(self.viewer)
        if shown is None:
            raise PcnacycleError("no run is open: open a run folder with plugin pcnacycle first")
        edits, output = Path(self.edits_file.value), Path(self.output.value)
        if (self.session is None or self.session.source != shown[1] or self.session.edits_path != edits
                or self.session.output != output):
            self.session = CorrectionSession(shown[1], edits, output)
        return self.session
