"""Showing a run in a viewer, and finding the run a viewer shows (needs napari, not Qt)."""

from __future__ import annotations

import os
from pathlib import Path

from .runfolder import LAYER_NAMES, RUN_KEY, SOURCE_KEY, run_layers


def show_run(viewer, run_dir: str | os.PathLike, source: str | os.PathLike | None = None) -> None:
    """Show ``run_dir`` in ``viewer``: replace the data of layers already there (same names), add the others.

    Layers keep their place, contrast and visibility, so a correction
    refreshes the view without disturbing it. ``source`` (the uncorrected
    run, when ``run_dir`` is a correction of it) is kept in the layers'
    metadata for the correction widget.
    """
    layer_data = run_layers(run_dir)
    metadata = {RUN_KEY: str(run_dir), SOURCE_KEY: str(source or run_dir)}
    for _, kwargs, _ in layer_data:
        kwargs["metadata"] = metadata
        if kwargs["name"] in viewer.layers:  # first, so that views refreshing on new data read the new run
            viewer.layers[kwargs["name"]].metadata = dict(metadata)
    for data, kwargs, layer_type in layer_data:
        name = kwargs["name"]
        if name in viewer.layers and layer_type != "tracks":
            viewer.layers[name].data = data
        elif name in viewer.layers:
            # a Tracks layer's data, graph and properties must change together: replace it in its place
            index = viewer.layers.index(name)
            visible = viewer.layers[name].visible
            viewer.layers.remove(name)
            viewer.layers.insert(index, _tracks_layer(data, kwargs | {"visible": visible}))
        else:
            getattr(viewer, f"add_{layer_type}")(data, **kwargs)


def _tracks_layer(data, kwargs):
    from napari.layers import Tracks

    return Tracks(data, **kwargs)


def shown_run(viewer) -> tuple[Path, Path] | None:
    """``(run folder shown, original run)`` of the viewer's run layers, or None when no run is open."""
    for name in (LAYER_NAMES["labels"], LAYER_NAMES["tracks"], LAYER_NAMES["phase"]):
        if name in viewer.layers and RUN_KEY in viewer.layers[name].metadata:
            metadata = viewer.layers[name].metadata
            return Path(metadata[RUN_KEY]), Path(metadata.get(SOURCE_KEY, metadata[RUN_KEY]))
    return None
