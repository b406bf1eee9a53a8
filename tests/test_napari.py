"""The napari plugin's reader and layers, on ``napari.components.ViewerModel`` (no display, no Qt).

The widgets are tested in ``test_napari_widgets.py``, the annotation loop in ``test_napari_annotation.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

napari = pytest.importorskip("napari", reason="the napari extra is not installed (pip install 'pcnacycle[napari]')")

from napari_helpers import make_run
from pcnacycle.napari.runfolder import LAYER_NAMES, PHASE_CODES, phase_colours
from pcnacycle.phases import PHASE_COLOURS


def add_layers(viewer, layer_data):
    for data, kwargs, layer_type in layer_data:
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    return viewer


def test_reader_builds_image_labels_and_lineage_layers(tmp_path):
    from napari.components import ViewerModel

    from pcnacycle.napari.reader import get_reader

    run = make_run(tmp_path, with_dic=True)
    viewer = add_layers(ViewerModel(), get_reader(str(run))(str(run)))
    names = [layer.name for layer in viewer.layers]
    assert names == ["PCNA", "DIC", "phase", "tracks", "lineage"]
    masks = tifffile.imread(run / "masks.tif")
    np.testing.assert_array_equal(viewer.layers["PCNA"].data, masks * 100.0)
    np.testing.assert_array_equal(viewer.layers["tracks"].data, masks)
    # every nucleus painted with its resolved phase, in the package's phase colours
    phase = viewer.layers["phase"]
    assert phase.data[0, 8, 8] == PHASE_CODES["G1"] and phase.data[3, 6, 20] == PHASE_CODES["M"]
    assert phase.data[5, 20, 6] == PHASE_CODES["S"] and phase.data[0, 0, 0] == 0
    np.testing.assert_allclose(phase.colormap.map(PHASE_CODES["S"])[:3], np.array(PHASE_COLOURS["S"]) / 255)
    # lineage: daughters → mother, one vertex per nucleus, coloured by phase
    lineage = viewer.layers["lineage"]
    assert lineage.graph == {2: [1], 3: [1]}
    assert sorted(set(lineage.data[:, 0].astype(int))) == [1, 2, 3, 4] and len(lineage.data) == 15
    m_rows = lineage.properties["phase"] == PHASE_CODES["M"]
    assert m_rows.sum() == 4
    np.testing.assert_allclose(lineage.track_colors[m_rows][:, :3], np.array(PHASE_COLOURS["M"]) / 255 *
                               np.ones((4, 3)), atol=1e-6)
    assert all(layer.metadata["pcnacycle_run"] == str(run) for layer in viewer.layers)


def test_reader_declines_folders_that_are_not_runs(tmp_path):
    from pcnacycle.napari.reader import get_reader

    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(make_run(tmp_path) / "objects.csv")) is None


def test_moved_movie_opens_the_run_without_it_and_says_where_it_looked(tmp_path):
    from pcnacycle.napari.runfolder import run_layers

    run = make_run(tmp_path)
    (tmp_path / "movie.tif").rename(tmp_path / "elsewhere.tif")
    with pytest.warns(UserWarning, match=r"run\.json: the PCNA movie it names, .*movie\.tif, is not there any more"):
        layers = run_layers(run)
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["phase", "tracks", "lineage"]


def test_movie_found_beside_the_run_when_the_project_moved(tmp_path):
    from pcnacycle.napari.runfolder import run_layers

    run = make_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["pcna"] = "/no/such/project/movie.tif"  # the recorded path is stale, the file is beside the run
    (run / "run.json").write_text(json.dumps(info))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers = run_layers(run)
    assert layers[0][1]["name"] == LAYER_NAMES["pcna"]


def test_a_movie_of_another_size_is_not_shown_as_this_runs(tmp_path):
    from pcnacycle.napari.runfolder import run_layers

    run = make_run(tmp_path)
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((6, 16, 16), np.uint8))
    with pytest.warns(UserWarning, match="not the movie of this run"):
        layers = run_layers(run)
    assert "PCNA" not in [kwargs["name"] for _, kwargs, _ in layers]


def test_not_a_run_is_a_one_line_error(tmp_path):
    from pcnacycle.errors import PcnacycleError
    from pcnacycle.napari.runfolder import read_run_folder

    with pytest.raises(PcnacycleError, match="not a pcnacycle run folder"):
        read_run_folder(tmp_path)


def test_phase_colours_come_from_the_package_vocabulary():
    colours = phase_colours()
    for name, code in PHASE_CODES.items():
        assert colours[code][:3] == tuple(c / 255 for c in PHASE_COLOURS[name])
    assert colours[0][3] == 0


def test_import_pcnacycle_loads_neither_napari_nor_qt():
    code = ("import sys, pcnacycle, pcnacycle.cli\n"
            "print(sorted(m for m in ('napari', 'PyQt6', 'qtpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_manifest_names_importable_contributions():
    import npe2

    manifest = npe2.PluginManifest.from_file(Path(__file__).parents[1] / "src/pcnacycle/napari/napari.yaml")
    assert manifest.name == "pcnacycle"
    for command in manifest.contributions.commands:
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.python_name
