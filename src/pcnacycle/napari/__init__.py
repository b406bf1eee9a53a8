"""The pcnacycle napari plugin (``pip install "pcnacycle[napari]"``).

napari finds it through the ``napari.manifest`` entry point
(``napari.yaml`` here): a reader for run folders, and widgets to run
pcnacycle on a movie, correct a run, view lineages and annotate training
frames. Nothing here is imported by ``import pcnacycle``; only
:mod:`.runfolder` and :mod:`.annotation` work without napari.
"""


def register_manifest() -> None:
    """Register the plugin with npe2 when no installed entry point did (a source checkout on ``PYTHONPATH``)."""
    from pathlib import Path

    import npe2

    plugins = npe2.PluginManager.instance()
    plugins.discover(include_npe1=False)
    if "pcnacycle" not in plugins:
        plugins.register(npe2.PluginManifest.from_file(Path(__file__).with_name("napari.yaml")))
