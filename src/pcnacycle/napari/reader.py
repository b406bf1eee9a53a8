"""napari reader: ``viewer.open(RUN_DIR, plugin="pcnacycle")``."""

from __future__ import annotations

from .runfolder import is_run_folder, run_layers


def get_reader(path):
    """The reader for a pcnacycle run folder, or None so napari asks another plugin."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_run if is_run_folder(path) else None


def read_run(path) -> list[tuple]:
    """Layers of one run folder (see :mod:`pcnacycle.napari.runfolder`)."""
    return run_layers(path[0] if isinstance(path, list) else path)
