"""Lineage view: one row per cell, coloured by phase over time; a click selects the cell in the viewer.

Rows are ordered so that each mother is followed by her daughters (grey
ticks join them). Clicking a row selects that track in the ``tracks`` layer
and moves the viewer to the clicked frame; selecting a track in the viewer
highlights its row.
"""

import napari
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .layers import shown_run
from .runfolder import LAYER_NAMES, lineage_order, phase_colours, read_run_folder, track_phase_runs


class LineageWidget(QWidget):
    """Per-cell phase timelines of the run the viewer shows."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.figure = Figure(figsize=(4, 6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot()
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas)
        self.rows: list[int] = []
        self._run = None
        self._highlight = None
        self.canvas.mpl_connect("button_press_event", self._on_click)
        viewer.layers.events.inserted.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """Redraw from the shown run's ``objects.csv`` (after opening or correcting a run)."""
        shown = shown_run(self.viewer)
        if shown is None or LAYER_NAMES["labels"] not in self.viewer.layers:
            return  # no run yet, or not all its layers yet
        labels = self.viewer.layers[LAYER_NAMES["labels"]]
        labels.events.selected_label.disconnect(self._on_selected)  # no-op when not connected
        labels.events.selected_label.connect(self._on_selected)
        labels.events.data.disconnect(self.refresh)
        labels.events.data.connect(self.refresh)
        self._run = shown[0]
        self.draw(read_run_folder(self._run).objects)

    def draw(self, objects) -> None:
        """Draw one row per track of ``objects`` (``frame, track, parent`` and phases)."""
        ax = self.axes
        ax.clear()
        self.rows = lineage_order(objects)
        row_of = {track: i for i, track in enumerate(self.rows)}
        colours = phase_colours()
        segments = track_phase_runs(objects)
        for track, first, last, code in segments.itertuples(index=False):
            ax.plot([first - 0.5, last + 0.5], [row_of[track]] * 2, lw=4, color=colours[code],
                    solid_capstyle="butt")
        starts = objects.groupby("track").agg(parent=("parent", "first"), start=("frame", "min"))
        for track, (parent, start) in starts.iterrows():
            if parent in row_of:
                ax.plot([start - 0.5] * 2, [row_of[parent], row_of[track]], color="0.6", lw=0.8)
        ax.set(xlabel="frame", ylabel="cell (click to select)", ylim=(len(self.rows) - 0.5, -0.5))
        # track ids beside the rows while they are legible
        ax.set_yticks(range(len(self.rows)), [str(t) for t in self.rows] if len(self.rows) <= 60 else [], fontsize=6)
        self._highlight = None
        self._on_selected()
        self.canvas.draw_idle()

    def row_at(self, y: float) -> int | None:
        """The track drawn at height ``y`` (data coordinates), or None."""
        row = round(y)
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def select(self, track: int, frame: int | None = None) -> None:
        """Select ``track`` in the ``tracks`` layer (and go to ``frame``)."""
        labels = self.viewer.layers[LAYER_NAMES["labels"]]
        labels.selected_label = int(track)
        labels.show_selected_label = True
        if frame is not None:
            self.viewer.dims.set_current_step(0, int(frame))

    def _on_click(self, event) -> None:
        if event.inaxes is not self.axes or event.ydata is None:
            return
        track = self.row_at(event.ydata)
        if track is not None:
            self.select(track, max(0, round(event.xdata)))

    def _on_selected(self, event=None) -> None:
        if self._highlight is not None:
            self._highlight.remove()
            self._highlight = None
        if LAYER_NAMES["labels"] not in self.viewer.layers:
            return
        track = self.viewer.layers[LAYER_NAMES["labels"]].selected_label
        if track in self.rows:
            self._highlight = self.axes.axhspan(self.rows.index(track) - 0.5, self.rows.index(track) + 0.5,
                                                color="0.85", zorder=0)
        self.canvas.draw_idle()
