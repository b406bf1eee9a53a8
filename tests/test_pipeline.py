"""`pcnacycle run` end to end, with an oracle detector so the right answer is known exactly."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import stand_in_predictor
from pcnacycle import pipeline
from pcnacycle.config import load_config
from pcnacycle.data.movie import MovieReader
from pcnacycle.errors import PcnacycleError
from pcnacycle.phases import CLASSES
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie


@pytest.fixture(scope="module")
def movie():
    params = SimulationParams(frames=24, size=(128, 128), cells=6, seed=4, frame_interval=30.0)
    return simulate_movie(params)


@pytest.fixture
def oracle(monkeypatch, movie):
    """Replace the model by the simulator's ground truth: true masks, one-hot phase probabilities."""
    cfg = load_config("stage3_pcna_cpu")
    classes = movie.objects.set_index(["frame", "track"])["class"]
    frame_of = {id(None): None}
    calls = []

    def fake_predict(image):
        t = len(calls)
        calls.append(t)
        truth = movie.labels[t].astype(np.int32)
        ids = np.unique(truth)[1:]
        label_image = np.zeros_like(truth)
        for i, track_id in enumerate(ids):
            label_image[truth == track_id] = i + 1
        names = [classes[(t, int(track_id))] for track_id in ids]
        probs = np.array([[float(n == c) for c in CLASSES] for n in names], np.float32).reshape(-1, 3)
        return {"label_image": label_image, "scores": np.ones(len(ids), np.float32),
                "labels": np.array([CLASSES.index(n) + 1 for n in names], np.int64), "probs": probs,
                "boxes": np.zeros((len(ids), 4), np.float32)}

    monkeypatch.setattr(pipeline, "Predictor", stand_in_predictor(cfg, fake_predict))
    del frame_of
    return calls


@pytest.fixture
def movie_files(tmp_path, movie):
    tifffile.imwrite(tmp_path / "pcna.tif", movie.pcna)
    tifffile.imwrite(tmp_path / "dic.tif", movie.dic)
    (tmp_path / "weights.pt").write_bytes(b"stand-in")
    return tmp_path


def test_run_reproduces_tracks_and_phase_durations_of_the_truth(oracle, movie_files, movie):
    out = pipeline.run(movie_files / "weights.pt", movie_files / "pcna.tif", movie_files / "out",
                       dic=movie_files / "dic.tif", frame_interval=30.0, min_area=1, max_distance=30,
                       progress=False)
    for name in ("masks.tif", "objects.csv", "phases.csv", "ctc/res_track.txt", "ctc/mask000.tif",
                 "timeline.png", "run.json", "log.txt"):
        assert (out / name).is_file(), name
    assert not (out / "detections.raw").exists() and not (out.parent / ".out.incomplete").exists()

    masks = tifffile.imread(out / "masks.tif")
    assert masks.shape == movie.labels.shape and masks.dtype == np.uint16
    # Same partition of pixels into cells, frame by frame and across frames (tracks up to renaming).
    pairs = set(zip(masks.ravel(), movie.labels.ravel()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})

    objects = pd.read_csv(out / "objects.csv")
    for column in ("frame", "track", "parent", "centroid_y", "centroid_x", "area", "mean_pcna", "mean_dic",
                   "p_G1/G2", "p_S", "p_M", "predicted_phase", "phase"):
        assert column in objects
    rename = {int(ours): int(true) for ours, true in pairs if ours}  # our track id -> true track id
    objects["track"] = objects["track"].map(rename)
    truth = movie.objects.merge(objects, on=["frame", "track"], suffixes=("_true", ""))
    assert len(truth) == len(movie.objects) == len(objects)
    assert (truth["area_true"] == truth["area"]).all()
    assert (truth["phase_true"] == truth["phase"]).mean() > 0.95
    assert (truth["parent_true"] == truth["parent"].map(lambda p: rename.get(p, 0))).all()  # same lineage

    found = pd.read_csv(out / "phases.csv")
    found["track"] = found["track"].map(rename)
    both = movie.durations.merge(found, on="track", suffixes=("_true", ""))
    assert len(both) == len(movie.durations)
    for phase in ("G1", "S", "G2", "M"):
        assert (both[f"{phase}_frames_true"] == both[f"{phase}_frames"]).mean() > 0.9, phase
    summary = json.loads((out / "run.json").read_text())
    assert summary["frames"] == 24 and summary["tracks"] == movie.tracks["track"].nunique()
    assert summary["settings"]["max_distance"] == 30 and summary["settings"]["min_area"] == 1
    assert set(summary["phase_minutes_used"]) == {"G1", "S", "G2", "M"} and summary["nucleus_diameter_px"] > 10
    # the persistence the linker used is saved beside the setting (0 by default: links from the last position)
    assert summary["settings"]["motion_persistence"] == summary["motion_persistence_used"] == 0


def test_run_settings_come_from_the_command_line_and_a_file_and_are_saved(oracle, movie_files, monkeypatch):
    from pcnacycle.cli import main

    (movie_files / "settings.yaml").write_text("max_gap: 3\nphase_minutes: {G1: 300}\n")
    code = main(["run", "--weights", str(movie_files / "weights.pt"), "--pcna", str(movie_files / "pcna.tif"),
                 "--dic", str(movie_files / "dic.tif"), "--output", str(movie_files / "out"), "--quiet",
                 "--frame-interval", "30", "--settings", str(movie_files / "settings.yaml"),
                 "--phase-minutes", "S=200,M=45", "--fixed-durations", "--division-distance", "25"])
    assert code == 0
    summary = json.loads((movie_files / "out" / "run.json").read_text())
    settings = summary["settings"]
    assert settings["max_gap"] == 3 and settings["division_distance"] == 25 and not settings["estimate_durations"]
    assert settings["phase_minutes"] == {"G1": 300, "S": 200, "G2": 240, "M": 45}
    assert summary["phase_minutes_used"] == settings["phase_minutes"]
    # the saved run.json repeats the run's settings
    oracle.clear()
    again = main(["run", "--weights", str(movie_files / "weights.pt"), "--pcna", str(movie_files / "pcna.tif"),
                  "--dic", str(movie_files / "dic.tif"), "--output", str(movie_files / "again"), "--quiet",
                  "--frame-interval", "30", "--settings", str(movie_files / "out" / "run.json")])
    assert again == 0
    assert json.loads((movie_files / "again" / "run.json").read_text())["settings"] == settings


@pytest.mark.parametrize("text, message", [
    ("max_gap: -1\n", "max_gap=-1"), ("phase_minutes: {G3: 5}\n", "unknown phase"),
    ("speed: 3\n", "unknown run setting"), ("- 1\n- 2\n", "mapping"), ("a: [\n", "not a YAML"),
])
def test_bad_run_settings_files_are_refused_before_any_work(oracle, movie_files, capsys, text, message):
    from pcnacycle.cli import main

    (movie_files / "bad.yaml").write_text(text)
    code = main(["run", "--weights", str(movie_files / "weights.pt"), "--pcna", str(movie_files / "pcna.tif"),
                 "--dic", str(movie_files / "dic.tif"), "--output", str(movie_files / "out"), "--quiet",
                 "--settings", str(movie_files / "bad.yaml")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "bad.yaml" in error and not oracle
    assert not (movie_files / "out").exists()


def test_single_frame_and_empty_frames_work(oracle, tmp_path, movie, monkeypatch):
    tifffile.imwrite(tmp_path / "one.tif", movie.pcna[0])
    tifffile.imwrite(tmp_path / "dic.tif", movie.dic[0])
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    out = pipeline.run(tmp_path / "w.pt", tmp_path / "one.tif", tmp_path / "out1", dic=tmp_path / "dic.tif",
                       progress=False)
    assert tifffile.imread(out / "masks.tif").shape == (1, 128, 128)  # always T×H×W
    assert "assuming 10 minutes" in (out / "log.txt").read_text()

    # A movie in which no nucleus is ever found.
    cfg = load_config("stage3_pcna_cpu")
    monkeypatch.setattr(pipeline, "Predictor", stand_in_predictor(cfg, lambda image: {
        "label_image": np.zeros(image.shape[1:], np.int32), "scores": np.zeros(0, np.float32),
        "labels": np.zeros(0, np.int64), "probs": np.zeros((0, 3), np.float32), "boxes": np.zeros((0, 4))}))
    tifffile.imwrite(tmp_path / "three.tif", movie.pcna[:3], photometric="minisblack")
    tifffile.imwrite(tmp_path / "three_dic.tif", movie.dic[:3], photometric="minisblack")
    out = pipeline.run(tmp_path / "w.pt", tmp_path / "three.tif", tmp_path / "out3", dic=tmp_path / "three_dic.tif",
                       progress=False)
    assert tifffile.imread(out / "masks.tif").max() == 0
    assert len(pd.read_csv(out / "objects.csv")) == 0 and len(pd.read_csv(out / "phases.csv")) == 0


def test_bad_inputs_are_refused_clearly(oracle, movie_files, movie, tmp_path):
    weights, pcna = movie_files / "weights.pt", movie_files / "pcna.tif"
    tifffile.imwrite(tmp_path / "short_dic.tif", movie.dic[:5])
    with pytest.raises(PcnacycleError, match=r"24 frame\(s\).*short_dic\.tif is 5 frame\(s\)"):
        pipeline.run(weights, pcna, tmp_path / "o", dic=tmp_path / "short_dic.tif", progress=False)
    tifffile.imwrite(tmp_path / "one_dic.tif", movie.dic[0])
    with pytest.raises(PcnacycleError, match="single image, the other a movie"):
        pipeline.run(weights, pcna, tmp_path / "o", dic=tmp_path / "one_dic.tif", progress=False)
    with pytest.raises(PcnacycleError, match="give the DIC movie"):
        pipeline.run(weights, pcna, tmp_path / "o", progress=False)
    for bad in (float("nan"), -1.0, 0):  # refused before a single frame is detected
        with pytest.raises(PcnacycleError, match="frame_interval"):
            pipeline.run(weights, pcna, tmp_path / "o", dic=movie_files / "dic.tif", frame_interval=bad,
                         progress=False)
    with pytest.raises(PcnacycleError, match="max_gap=-1"):
        pipeline.run(weights, pcna, tmp_path / "o", dic=movie_files / "dic.tif", max_gap=-1, progress=False)
    assert not oracle

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(PcnacycleError, match="--overwrite"):
        pipeline.run(weights, pcna, precious, dic=movie_files / "dic.tif", progress=False)
    with pytest.raises(PcnacycleError, match="no readable run.json written by pcnacycle"):
        pipeline.run(weights, pcna, precious, dic=movie_files / "dic.tif", overwrite=True, progress=False)
    assert (precious / "notes.txt").read_text() == "mine"


def test_a_failed_run_leaves_nothing_that_looks_complete(oracle, movie_files, monkeypatch):
    original = pipeline.track

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "track", broken)
    with pytest.raises(RuntimeError):
        pipeline.run(movie_files / "weights.pt", movie_files / "pcna.tif", movie_files / "out",
                     dic=movie_files / "dic.tif", progress=False)
    assert not (movie_files / "out").exists() and not (movie_files / ".out.incomplete").exists()
    monkeypatch.setattr(pipeline, "track", original)


def test_previous_run_is_replaced_only_with_overwrite(oracle, movie_files):
    args = (movie_files / "weights.pt", movie_files / "pcna.tif", movie_files / "out")
    pipeline.run(*args, dic=movie_files / "dic.tif", progress=False)
    with pytest.raises(PcnacycleError, match="previous run"):
        pipeline.run(*args, dic=movie_files / "dic.tif", progress=False)
    oracle.clear()
    pipeline.run(*args, dic=movie_files / "dic.tif", overwrite=True, progress=False)
    assert (movie_files / "out" / "run.json").is_file()


def test_overwrite_replaces_only_what_the_earlier_run_wrote(oracle, movie_files):
    args = (movie_files / "weights.pt", movie_files / "pcna.tif", movie_files / "out")
    out = pipeline.run(*args, dic=movie_files / "dic.tif", progress=False)
    written = json.loads((out / "run.json").read_text())["outputs"]
    assert {"masks.tif", "objects.csv", "run.json", "ctc/res_track.txt"} <= set(written)
    (out / "my_notes.txt").write_text("keep me")
    (out / "my_analysis").mkdir()
    (out / "my_analysis" / "plot.svg").write_text("<svg/>")
    (out / "ctc" / "mine.txt").write_text("mine too")
    (out / "ctc" / "mask999.tif").write_bytes(b"stale, ours")  # listed? no: a user file with our pattern
    oracle.clear()
    pipeline.run(*args, dic=movie_files / "dic.tif", overwrite=True, progress=False)
    assert (out / "my_notes.txt").read_text() == "keep me" and (out / "my_analysis" / "plot.svg").is_file()
    assert (out / "ctc" / "mine.txt").is_file() and (out / "ctc" / "mask999.tif").is_file()
    assert set(json.loads((out / "run.json").read_text())["outputs"]) == set(written)


@pytest.mark.parametrize("marker", ["", "[1, 2]", "not json"])
def test_a_run_json_not_written_by_pcnacycle_does_not_make_a_folder_ours(oracle, movie_files, marker):
    folder = movie_files / "thesis"
    folder.mkdir()
    (folder / "run.json").write_text(marker)
    (folder / "thesis.docx").write_text("years of work")
    with pytest.raises(PcnacycleError, match="refusing to overwrite"):
        pipeline.run(movie_files / "weights.pt", movie_files / "pcna.tif", folder, dic=movie_files / "dic.tif",
                     overwrite=True, progress=False)
    assert (folder / "thesis.docx").read_text() == "years of work" and not oracle


def test_movie_reader_handles_hyperstacks_and_metadata(tmp_path):
    stack = np.arange(3 * 2 * 8 * 10, dtype=np.uint16).reshape(3, 2, 8, 10)
    tifffile.imwrite(tmp_path / "tc.tif", stack, imagej=True, metadata={"axes": "TCYX", "finterval": 300,
                                                                       "tunit": "sec"})
    reader = MovieReader(tmp_path / "tc.tif", channel=1)
    assert (reader.frames, reader.shape) == (3, (8, 10)) and reader.frame_interval == pytest.approx(5.0)
    np.testing.assert_array_equal(reader.frame(2), stack[2, 1])
    with pytest.raises(PcnacycleError, match="holds 2 channels"):
        MovieReader(tmp_path / "tc.tif")
    with pytest.raises(PcnacycleError, match="channel 5 does not exist"):
        MovieReader(tmp_path / "tc.tif", channel=5)
    tifffile.imwrite(tmp_path / "ome.ome.tif", stack[:, 0], metadata={"axes": "TYX", "TimeIncrement": 2.0,
                                                                      "TimeIncrementUnit": "min"})
    ome = MovieReader(tmp_path / "ome.ome.tif")
    assert ome.frames == 3 and ome.frame_interval == pytest.approx(2.0)
    np.testing.assert_array_equal(list(ome), list(stack[:, 0]))
    (tmp_path / "bad.tif").write_bytes(b"nope")
    with pytest.raises(PcnacycleError, match="not a readable TIFF"):
        MovieReader(tmp_path / "bad.tif")


@pytest.fixture
def threshold_model(monkeypatch):
    """A stand-in detector that finds bright blobs at whatever scale it is shown, and a model that records
    training nuclei 15 px across."""
    from skimage import measure

    cfg = load_config("stage3_pcna_cpu", ["INPUT.NUCLEUS_DIAMETER", "15", "INPUT.CHANNELS", "[pcna]"])
    shapes = []

    def fake_predict(image):
        shapes.append(image.shape[1:])
        label_image = measure.label(image[0] > 0.5).astype(np.int32)
        count = int(label_image.max())
        probs = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (count, 1))
        return {"label_image": label_image, "scores": np.ones(count, np.float32),
                "labels": np.ones(count, np.int64), "probs": probs, "boxes": np.zeros((count, 4), np.float32)}

    monkeypatch.setattr(pipeline, "Predictor", stand_in_predictor(cfg, fake_predict))
    return shapes


def disc_movie(path, diameter, frames=3, size=160):
    yy, xx = np.mgrid[:size, :size]
    frame = np.zeros((size, size), np.uint16)
    for cy, cx in ((40, 40), (40, 110), (110, 70)):
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = 1000
    tifffile.imwrite(path, np.stack([frame] * frames), photometric="minisblack")
    return path


def test_frames_are_resized_so_nuclei_match_the_training_size(threshold_model, tmp_path):
    pcna = disc_movie(tmp_path / "big.tif", diameter=30)
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    out = pipeline.run(tmp_path / "w.pt", pcna, tmp_path / "out", frame_interval=10.0, progress=False)
    summary = json.loads((out / "run.json").read_text())
    assert summary["trained_nucleus_diameter_px"] == 15
    assert summary["movie_nucleus_diameter_px"] == pytest.approx(30, rel=0.05)
    assert summary["scale"] == pytest.approx(0.5, rel=0.05)
    assert (80, 80) in threshold_model  # the model saw half-size frames
    masks = tifffile.imread(out / "masks.tif")
    assert masks.shape == (3, 160, 160)  # results at the movie's own pixels
    objects = pd.read_csv(out / "objects.csv")
    assert len(objects) == 9 and objects["area"].mean() == pytest.approx(np.pi * 15 ** 2, rel=0.1)

    threshold_model.clear()
    same = disc_movie(tmp_path / "same.tif", diameter=16)
    out = pipeline.run(tmp_path / "w.pt", same, tmp_path / "out2", frame_interval=10.0, progress=False)
    assert json.loads((out / "run.json").read_text())["scale"] == 1.0 and set(threshold_model) == {(160, 160)}

    # the user's diameter wins; an absurd one is refused before any work
    out = pipeline.run(tmp_path / "w.pt", pcna, tmp_path / "out3", frame_interval=10.0, progress=False,
                       nucleus_diameter=60.0)
    assert json.loads((out / "run.json").read_text())["scale"] == pytest.approx(0.25)
    with pytest.raises(PcnacycleError, match="nucleus_diameter=500 px: larger than the 160×160 frame"):
        pipeline.run(tmp_path / "w.pt", pcna, tmp_path / "out4", frame_interval=10.0, progress=False,
                     nucleus_diameter=500.0)
    with pytest.raises(PcnacycleError, match="nucleus_diameter=-3"):
        pipeline.run(tmp_path / "w.pt", pcna, tmp_path / "out4", progress=False, nucleus_diameter=-3.0)


def test_an_empty_movie_is_not_rescaled_and_says_why(threshold_model, tmp_path, caplog):
    tifffile.imwrite(tmp_path / "dark.tif", np.zeros((2, 64, 64), np.uint16), photometric="minisblack")
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    with caplog.at_level("WARNING"):
        out = pipeline.run(tmp_path / "w.pt", tmp_path / "dark.tif", tmp_path / "out", frame_interval=10.0,
                           progress=False)
    assert json.loads((out / "run.json").read_text())["scale"] == 1.0
    assert "no nucleus found" in caplog.text


def test_z_stacks_are_projected_one_frame_per_time_point(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 1000, (3, 4, 2, 8, 10)).astype(np.uint16)  # T Z C Y X
    # plane 2 is the one in focus: strong pixel-to-pixel contrast, so the most Laplacian variance
    stack[:, 2] = np.where(rng.random((3, 2, 8, 10)) > 0.5, 60000, 0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tzc.tif", stack, imagej=True, metadata={"axes": "TZCYX"})

    reader = MovieReader(tmp_path / "tzc.tif", channel=1)  # max by default
    assert (reader.frames, reader.planes, reader.z_project) == (3, 4, "max")
    np.testing.assert_array_equal(reader.frame(1), stack[1, :, 1].max(axis=0))
    mean = MovieReader(tmp_path / "tzc.tif", channel=0, z_project="mean")
    np.testing.assert_allclose(mean.frame(2), stack[2, :, 0].mean(axis=0), rtol=1e-6)
    sharpest = MovieReader(tmp_path / "tzc.tif", channel=0, z_project="sharpest")
    np.testing.assert_array_equal(sharpest.frame(0), stack[0, 2, 0])
    with pytest.raises(PcnacycleError, match="z projection 'median'"):
        MovieReader(tmp_path / "tzc.tif", channel=0, z_project="median")

    # a stack whose only axis is Z is ImageJ's plain time-lapse: time, unless a projection is asked for
    tifffile.imwrite(tmp_path / "z.tif", stack[:, 0, 0], imagej=True, metadata={"axes": "ZYX"})
    assert MovieReader(tmp_path / "z.tif").frames == 3
    one = MovieReader(tmp_path / "z.tif", z_project="max")
    assert (one.frames, one.planes) == (1, 3)
    np.testing.assert_array_equal(one.frame(0), stack[:, 0, 0].max(axis=0))

    # axes it cannot read get a message that says what it reads, not "split it into channels"
    tifffile.imwrite(tmp_path / "odd.ome.tif", rng.integers(0, 9, (2, 3, 2, 8, 10)).astype(np.uint8),
                     metadata={"axes": "TCAYX"})
    with pytest.raises(PcnacycleError, match=r"time \(T\), one channel axis \(C.*focal planes \(Z"):
        MovieReader(tmp_path / "odd.ome.tif", channel=0)


def test_run_on_a_z_stack_records_the_projection(threshold_model, tmp_path):
    flat = tifffile.imread(disc_movie(tmp_path / "flat.tif", diameter=16))
    # T Z Y X: the nuclei are in the middle plane only; the other planes are dark
    stack = np.zeros((3, 3) + flat.shape[1:], np.uint16)
    stack[:, 1] = flat
    tifffile.imwrite(tmp_path / "tz.tif", stack, imagej=True, metadata={"axes": "TZYX", "finterval": 10,
                                                                       "tunit": "min"})
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    out = pipeline.run(tmp_path / "w.pt", tmp_path / "tz.tif", tmp_path / "out", progress=False)
    summary = json.loads((out / "run.json").read_text())
    assert (summary["z_project"], summary["z_planes"]) == ("max", 3)
    assert tifffile.imread(out / "masks.tif").shape == (3, 160, 160)
    assert len(pd.read_csv(out / "objects.csv")) == 9  # three nuclei in each of three frames


def test_label_frames_are_stored_and_read_back_one_at_a_time(tmp_path):
    from pcnacycle.pipeline import LabelFrames

    frames = LabelFrames(tmp_path / "detections.raw", (3, 4, 5))
    image = np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000  # up to 57000: the whole uint16 range
    frames[1] = image
    np.testing.assert_array_equal(frames[1], image)
    assert not frames[0].any() and not frames[2].any() and frames[2].shape == (4, 5)
    assert (tmp_path / "detections.raw").stat().st_size == 3 * 4 * 5 * 2
