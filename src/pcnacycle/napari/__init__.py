"""The pcnacycle napari plugin (``pip install "pcnacycle[napari]"``).

napari finds it through the ``napari.manifest`` entry point
(``napari.yaml`` here): a reader for run folders, and widgets to run
pcnacycle on a movie, correct a run, view lineages and annotate training
frames. Nothing here is imported by ``import pcnacycle``; only
:mod:`.runfolder` and :mod:`.annotation` work without napari.
"""
