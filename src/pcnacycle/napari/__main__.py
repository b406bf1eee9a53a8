"""``python -m pcnacycle.napari [RUN_DIR]``: napari with pcnacycle's widgets docked, a run folder open.

torch is loaded before napari creates its OpenGL canvas: with Mesa's
software OpenGL (llvmpipe: remote desktops, virtual machines, Xvfb), a
CUDA build of torch loaded afterwards (its triton brings another LLVM)
crashes the process. Starting napari this way avoids that.
"""

from __future__ import annotations

import argparse
import sys

#: Widgets docked at start, by their display names in napari.yaml.
WIDGETS = ("Correct a run", "Lineage view", "Run pcnacycle", "Annotate training frames")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pcnacycle.napari",
                                     description="napari with the pcnacycle widgets, optionally opening a run folder")
    parser.add_argument("run", nargs="?", help="a run folder written by `pcnacycle run` or `pcnacycle correct`")
    args = parser.parse_args(argv)
    import napari
    import torchvision.ops  # noqa: F401  (before the canvas: see the module docstring)

    from ..errors import PcnacycleError
    from . import register_manifest
    from .runfolder import is_run_folder

    if args.run and not is_run_folder(args.run):
        _fail(f"{args.run}: not a pcnacycle run folder (expected run.json and masks.tif in it)")
    register_manifest()
    viewer = napari.Viewer()
    try:
        if args.run:
            viewer.open(args.run, plugin="pcnacycle")
    except PcnacycleError as exc:
        _fail(str(exc))
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("pcnacycle", name, tabify=True)
    napari.run()


def _fail(message: str) -> None:
    print(f"pcnacycle: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
