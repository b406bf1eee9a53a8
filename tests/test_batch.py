"""`pcnacycle batch`: many movies on Dask with a threshold stand-in for the detector.

The workers run as threads of the test process (``processes=False``), so the
stand-in patched into :mod:`pcnacycle.pipeline` is what they call.
"""

import functools
import json
import threading

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.measure import label

from conftest import stand_in_predictor
from pcnacycle import batch, pipeline
from pcnacycle.cli import main
from pcnacycle.config import load_config
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie

MOVIES = {"ctrl_1": ("control", 1), "ctrl_2": ("control", 2), "drug_1": ("drug", 3)}


@pytest.fixture
def detector(monkeypatch):
    """Load and predict stand-ins: nuclei are the connected parts of the lowered-Otsu channel.

    Returns the calls made: ``loads`` (weights per model load) and ``frames`` (one entry per frame detected).
    """
    cfg = load_config("stage3_pcna_cpu", ["INPUT.CHANNELS", "[pcna, pcna, otsu]"])  # no DIC movie needed
    calls, lock = {"loads": [], "frames": []}, threading.Lock()

    class Loads(list):
        def append(self, weights):
            with lock:
                super().append(str(weights))

    calls["loads"] = Loads()

    def fake_predict(image):
        with lock:
            calls["frames"].append(image.shape)
        label_image = label(image[2] > 0).astype(np.int32)
        n = int(label_image.max())
        # brighter nuclei read as S, so that phases vary between cells
        brightness = np.bincount(label_image.ravel(), image[0].ravel(), n + 1)[1:] / np.maximum(
            np.bincount(label_image.ravel(), minlength=n + 1)[1:], 1)
        p_s = np.clip(brightness, 0.05, 0.9)
        probs = np.stack([1 - p_s - 0.05, p_s, np.full(n, 0.05)], axis=1).astype(np.float32).reshape(-1, 3)
        return {"label_image": label_image, "scores": np.ones(n, np.float32),
                "labels": probs.argmax(1).astype(np.int64) + 1, "probs": probs,
                "boxes": np.zeros((n, 4), np.float32)}

    monkeypatch.setattr(pipeline, "Predictor", stand_in_predictor(cfg, fake_predict, loaded=calls["loads"]))
    return calls


@pytest.fixture
def screen(tmp_path):
    """Three tiny simulated movies, a manifest with an extra column, and a stand-in weights file."""
    rows = []
    (tmp_path / "movies").mkdir()
    for name, (condition, seed) in MOVIES.items():
        movie = simulate_movie(SimulationParams(frames=6, size=(64, 64), cells=3, seed=seed, frame_interval=20.0))
        tifffile.imwrite(tmp_path / "movies" / f"{name}.tif", movie.pcna)
        rows.append({"movie": name, "pcna": f"movies/{name}.tif", "frame_interval": 20, "condition": condition,
                     "plate": f"P{seed}"})
    pd.DataFrame(rows).to_csv(tmp_path / "movies.csv", index=False)
    (tmp_path / "weights.pt").write_bytes(b"stand-in")
    return tmp_path


def run_batch(screen, **kwargs):
    return batch.run_batch(screen / "weights.pt", screen / "movies.csv", screen / "out", workers=1,
                           processes=False, progress=False, **kwargs)


def test_batch_runs_every_movie_loads_the_model_once_and_summarises(detector, screen):
    results = run_batch(screen)
    assert {r["status"] for r in results.values()} == {"done"}
    assert len(detector["loads"]) == 1 and len(detector["frames"]) == 3 * 6  # one worker: one model, 3 movies
    out = screen / "out"
    for name in MOVIES:
        summary = json.loads((out / name / "run.json").read_text())
        assert summary["frame_interval"] == 20 and "phases.csv" in summary["outputs"]
    assert not list(out.glob(".*.incomplete"))

    cells = pd.read_csv(out / "summary.csv")
    assert list(cells.columns[:6]) == ["movie", "condition", "pcna", "frame_interval", "plate", "track"]
    for name, (condition, seed) in MOVIES.items():
        own = pd.read_csv(out / name / "phases.csv")
        mine = cells[cells["movie"] == name]
        assert len(mine) == len(own) > 0
        assert (mine["condition"] == condition).all() and (mine["plate"] == f"P{seed}").all()
        assert np.array_equal(mine["G1_minutes"], own["G1_minutes"])

    by_condition = pd.read_csv(out / "summary_by_condition.csv")
    assert set(zip(by_condition["condition"], by_condition["phase"])) == {
        (c, p) for c in ("control", "drug") for p in ("G1", "S", "G2", "M")}
    for (condition, phase), row in by_condition.set_index(["condition", "phase"]).iterrows():
        group = cells[cells["condition"] == condition]
        whole = group[(group[f"{phase}_frames"] > 0) & ~group[f"{phase}_cut"]][f"{phase}_minutes"]
        assert row["cells"] == len(whole)
        if len(whole):
            assert row["median_minutes"] == pytest.approx(whole.median())
            assert row["iqr_minutes"] == pytest.approx(whole.quantile(0.75) - whole.quantile(0.25))
    assert (out / "summary_by_condition.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((out / "batch.json").read_text())
    assert {m["movie"]: m["status"] for m in record["movies"]} == dict.fromkeys(MOVIES, "done")
    for entry in record["movies"]:  # how sure the detector was, as each run.json says
        summary = json.loads((out / entry["movie"] / "run.json").read_text())
        assert entry["confident_calls_share"] == summary["confident_calls_share"] is not None
        assert entry["texture_evidence_from"] == summary["texture_evidence_from"]


def test_a_failing_movie_is_reported_and_the_others_finish_and_a_rerun_retries_only_it(detector, screen,
                                                                                      monkeypatch, capsys):
    good = (screen / "movies" / "ctrl_2.tif").read_bytes()
    (screen / "movies" / "ctrl_2.tif").write_bytes(b"not a TIFF at all")
    # what a kill -9 leaves: a half-written staging folder of a movie in flight
    (screen / "out" / ".drug_1.incomplete").mkdir(parents=True)
    (screen / "out" / ".drug_1.incomplete" / "detections.raw").write_bytes(b"half")
    monkeypatch.setattr(batch, "run_batch", functools.partial(batch.run_batch, processes=False))
    args = ["batch", "--weights", str(screen / "weights.pt"), "--manifest", str(screen / "movies.csv"),
            "--output", str(screen / "out"), "--workers", "1", "--quiet"]

    assert main(args) == 1
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "ctrl_2" in failed[0] and "ctrl_2.tif" in failed[0] and "TIFF" in failed[0]
    out = screen / "out"
    assert (out / "ctrl_1" / "run.json").is_file() and (out / "drug_1" / "run.json").is_file()
    assert not (out / "ctrl_2").exists() and not list(out.glob(".*.incomplete"))
    assert set(pd.read_csv(out / "summary.csv")["movie"]) == {"ctrl_1", "drug_1"}
    finished = {name: (out / name / "run.json").stat().st_mtime_ns for name in ("ctrl_1", "drug_1")}

    (screen / "movies" / "ctrl_2.tif").write_bytes(good)
    detector["frames"].clear()
    assert main(args) == 0
    assert {name: (out / name / "run.json").stat().st_mtime_ns for name in finished} == finished  # skipped
    assert (out / "ctrl_2" / "run.json").is_file() and len(detector["frames"]) == 6  # its 6 frames only
    assert set(pd.read_csv(out / "summary.csv")["movie"]) == set(MOVIES)
    record = json.loads((out / "batch.json").read_text())["movies"]
    assert {m["movie"]: m["status"] for m in record} == {"ctrl_1": "skipped", "ctrl_2": "done", "drug_1": "skipped"}
    assert all(m["confident_calls_share"] is not None for m in record)  # skipped runs report theirs too


def _edit_manifest(screen, edit):
    table = pd.read_csv(screen / "movies.csv", dtype=str, keep_default_na=False)
    edit(table).to_csv(screen / "movies.csv", index=False)


def _set(row, column, value):
    """A manifest edit: one cell changed."""
    def edit(table):
        table = table.copy()
        table.loc[row, column] = value
        return table
    return edit


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.drop(columns="pcna"), "no column 'pcna'"),
    (_set(2, "movie", "ctrl_1"), "row 3 (line 4), column movie: 'ctrl_1' repeats row 1"),
    (_set(1, "pcna", "movies/absent.tif"), "row 2 (line 3), column pcna:"),
    (_set(0, "frame_interval", "-5"), "row 1 (line 2), column frame_interval: '-5'"),
    (_set(1, "frame_interval", "ten"), "row 2 (line 3), column frame_interval: 'ten'"),
    (_set(2, "movie", "../escape"), "row 3 (line 4), column movie: '../escape' is not a"),
    (_set(0, "movie", "summary.csv"), "row 1 (line 2), column movie: 'summary.csv'"),
    (_set(0, "dic", "movies/no_dic.tif"), "row 1 (line 2), column dic:"),
])
def test_a_bad_manifest_is_refused_before_any_work_naming_row_and_column(detector, screen, capsys, edit,
                                                                         expected):
    _edit_manifest(screen, edit)
    code = main(["batch", "--weights", str(screen / "weights.pt"), "--manifest", str(screen / "movies.csv"),
                 "--output", str(screen / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert expected in err and "movies.csv" in err
    assert not (screen / "out").exists() and detector == {"loads": [], "frames": []}


def test_an_unreachable_scheduler_is_one_clear_error(detector, screen, capsys, monkeypatch):
    monkeypatch.setattr(batch, "CONNECT_TIMEOUT_S", 1)
    code = main(["batch", "--weights", str(screen / "weights.pt"), "--manifest", str(screen / "movies.csv"),
                 "--output", str(screen / "out"), "--scheduler", "tcp://127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s")
    assert detector == {"loads": [], "frames": []}


def test_import_pcnacycle_does_not_import_dask():
    import subprocess
    import sys

    code = ("import sys, pcnacycle, pcnacycle.cli; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
