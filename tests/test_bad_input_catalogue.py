"""The bad-input catalogue: every bad input a new user makes, against every command.

Each case builds its bad input in ``tmp_path``, runs the command in-process
through :func:`pcnacycle.cli.main` and states the exit status and a fragment
of the message naming the file, key or value. A refused input (status 2)
must give one ``error:`` line and no traceback; a handled one (status 0) must
say what it did. New commands join the table as they are added. SAFE-B's
training and dataset cases live in ``test_bad_input_training.py``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage import measure

from conftest import draw_discs, make_dsb_folder, stand_in_predictor
from pcnacycle import pipeline, safeguards
from pcnacycle.cli import main
from pcnacycle.config import load_config
from pcnacycle.safeguards import output_lock

#: ``make(tmp_path, monkeypatch) -> argv``; ``fragment`` is looked for in stderr (status 2) or in the output and log.
Case = namedtuple("Case", "name make status fragment")
STAND_IN = b"stand-in weights"
DiskUsage = namedtuple("DiskUsage", "total used free")
#: Locks a case holds for the command to meet; released after it.
HELD_LOCKS = []


# ------------------------------------------------------------------ inputs the cases share


def movie(folder: Path, frames: int = 4, name: str = "pcna.tif", dtype=np.uint16, array=None) -> Path:
    """A small T×H×W movie of bright discs on a dark background."""
    if array is None:
        rng = np.random.default_rng(0)
        array = np.stack([200 * draw_discs((48, 48), 4, rng).any(0) + rng.integers(0, 20, (48, 48))
                          for _ in range(frames)]).astype(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / name, array, photometric="minisblack")
    return folder / name


def weights(folder: Path) -> Path:
    """A stand-in weights file: the fake model below answers for it (a real file of other bytes is loaded)."""
    path = folder / "w.pt"
    path.write_bytes(STAND_IN)
    return path


def run_args(tmp: Path, pcna: Path | None = None, output: str | Path | None = None, *extra: str) -> list[str]:
    return ["run", "--weights", str(weights(tmp)), "--pcna", str(pcna or movie(tmp)),
            "--output", str(output or tmp / "out"), "--quiet", *extra]


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    """Bright blobs as nuclei, for the stand-in weights; any other file goes to the real loader."""
    real_predictor = pipeline.Predictor
    cfg = load_config("stage1_dsb2018_cpu")

    def blobs(image):
        labels = measure.label(image[0] > image[0].mean() + image[0].std()).astype(np.int32)
        n = int(labels.max())
        return {"label_image": labels, "scores": np.ones(n, np.float32), "labels": np.ones(n, np.int64),
                "probs": np.ones((n, 1), np.float32), "boxes": np.zeros((n, 4), np.float32)}

    stand_in = stand_in_predictor(cfg, blobs)

    def predictor(path, cfg_given=None):
        return stand_in(path, cfg_given) if Path(path).read_bytes() == STAND_IN else real_predictor(path, cfg_given)

    monkeypatch.setattr(pipeline, "Predictor", predictor)


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ------------------------------------------------------------------ run: movies


def truncated_tiff(tmp, mp):
    whole = movie(tmp, frames=5).read_bytes()
    (tmp / "bad.tif").write_bytes(whole[:1000])  # head -c 1000 pcna.tif > bad.tif
    return run_args(tmp, tmp / "bad.tif")


def truncated_imagej_movie(tmp, mp):
    frames = tifffile.imread(movie(tmp, frames=5))
    tifffile.imwrite(tmp / "ij.tif", frames, imagej=True, compression="zlib", metadata={"axes": "TYX"})
    (tmp / "cut.tif").write_bytes((tmp / "ij.tif").read_bytes()[:1000])  # as simulate writes them, cut short
    return run_args(tmp, tmp / "cut.tif")


def four_d_without_axes(tmp, mp):
    tifffile.imwrite(tmp / "tcyx.tif", np.zeros((4, 2, 48, 48), np.uint16))  # tifffile names no axes: Q Q Y X
    return run_args(tmp, tmp / "tcyx.tif")


def five_d_without_axes(tmp, mp):
    tifffile.imwrite(tmp / "five.tif", np.zeros((2, 3, 2, 48, 48), np.uint16))
    return run_args(tmp, tmp / "five.tif")


def one_pixel_frames(tmp, mp):
    return run_args(tmp, movie(tmp, name="dot.tif", array=np.ones((3, 1, 1), np.uint16)))


def nan_and_inf_pixels(tmp, mp):
    frames = tifffile.imread(movie(tmp)).astype(np.float32)
    frames[0, :5, :5], frames[1, 10, 10], frames[2] = np.nan, np.inf, np.nan  # frame 2 lost altogether
    return run_args(tmp, movie(tmp, name="float.tif", array=frames))


def all_zero_movie(tmp, mp):
    return run_args(tmp, movie(tmp, name="zero.tif", array=np.zeros((3, 48, 48), np.uint16)))


def constant_movie(tmp, mp):
    return run_args(tmp, movie(tmp, name="flat.tif", array=np.full((3, 48, 48), 700, np.uint16)))


def saturated_movie(tmp, mp):
    frames = tifffile.imread(movie(tmp))
    frames[:, :12] = np.iinfo(np.uint16).max
    return run_args(tmp, movie(tmp, name="bright.tif", array=frames))


# ------------------------------------------------------------------ run: the output folder and the disk


def output_is_a_file(tmp, mp):
    (tmp / "results.csv").write_text("mine")
    return run_args(tmp, None, tmp / "results.csv")


def output_under_proc(tmp, mp):
    return run_args(tmp, None, "/proc/pcnacycle-out")


def output_under_sys(tmp, mp):
    return run_args(tmp, None, "/sys/kernel/pcnacycle-out")


def output_below_a_file(tmp, mp):
    (tmp / "notes.txt").write_text("mine")
    return run_args(tmp, None, tmp / "notes.txt" / "out")


def disk_too_small(tmp, mp):
    mp.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 1000, 1000))
    return run_args(tmp)


def disk_full_at_the_detections(tmp, mp):
    mp.setattr(safeguards.os, "posix_fallocate", no_space, raising=False)
    return run_args(tmp)


def disk_full_mid_write(tmp, mp):
    args = run_args(tmp)
    mp.setattr(os, "fsync", no_space)  # every atomic write syncs before it renames
    return args


def another_run_writing(tmp, mp):
    args = run_args(tmp)
    lock = output_lock(tmp / "out")
    lock.__enter__()  # held as the other run would hold it, until the test releases it
    HELD_LOCKS.append(lock)
    return args


def bad_weights_file(tmp, mp):
    args = run_args(tmp)
    (tmp / "fake.pt").write_text("not weights\n" * 10)
    args[args.index("--weights") + 1] = str(tmp / "fake.pt")
    return args


def nan_frame_interval(tmp, mp):
    return run_args(tmp, None, None, "--frame-interval", "nan")


def negative_max_gap(tmp, mp):
    return run_args(tmp, None, None, "--max-gap", "-1")


def overwrite_a_folder_not_ours(tmp, mp):
    (tmp / "out").mkdir()
    (tmp / "out" / "run.json").write_text("")  # an empty run.json does not make a folder ours
    (tmp / "out" / "thesis.docx").write_text("mine")
    return run_args(tmp, None, None, "--overwrite")


# ------------------------------------------------------------------ evaluate-tracks, evaluate, annotate, train, demo


def zero_detections_scored(tmp, mp):
    assert main(run_args(tmp, movie(tmp, name="empty.tif", array=np.zeros((3, 48, 48), np.uint16)))) == 0
    truth = tmp / "gt" / "TRA"
    truth.mkdir(parents=True)
    for t in range(3):
        labels = np.zeros((48, 48), np.uint16)
        labels[10:20, 10:20] = 1
        tifffile.imwrite(truth / f"man_track{t:03d}.tif", labels)
    (truth / "man_track.txt").write_text("1 0 2 0\n")
    return ["evaluate-tracks", "--pred", str(tmp / "out"), "--gt", str(tmp / "gt"), "--output", str(tmp / "score")]


def evaluate_tracks_output_is_a_file(tmp, mp):
    (tmp / "score").write_text("mine")
    return ["evaluate-tracks", "--pred", str(tmp), "--gt", str(tmp), "--output", str(tmp / "score")]


def evaluate_output_under_proc(tmp, mp):
    return ["evaluate", "--config", "stage1_dsb2018_cpu", "--weights", str(weights(tmp)),
            "--output", "/proc/pcnacycle-eval", "--quiet"]


def annotate_output_under_sys(tmp, mp):
    image = movie(tmp, name="frame.tif", array=np.ones((48, 48), np.uint16))
    return ["annotate", "--weights", str(weights(tmp)), "--images", str(image), "--output", "/sys/pcnacycle"]


def annotate_keeps_corrections(tmp, mp):
    image = movie(tmp, name="frame.tif", array=np.ones((48, 48), np.uint16))
    (tmp / "ann").mkdir()
    (tmp / "ann" / "via_region_data.json").write_text("{}")
    return ["annotate", "--weights", str(weights(tmp)), "--images", str(image), "--output", str(tmp / "ann")]


def train_output_is_a_file(tmp, mp):
    (tmp / "model").write_text("mine")
    (tmp / "data").mkdir()
    return ["train", "--config", "stage1_dsb2018_cpu", "--output", str(tmp / "model"),
            "DATASETS.ROOT", str(tmp / "data")]


def train_output_under_proc(tmp, mp):
    return ["train", "--config", "stage1_dsb2018_cpu", "--output", "/proc/pcnacycle-train",
            "DATASETS.ROOT", str(tmp)]


def train_disk_full(tmp, mp):
    root = make_dsb_folder(tmp / "dsb", n_images=3)
    mp.setattr(os, "fsync", no_space)  # every file train writes is written atomically, synced first
    return ["train", "--config", "stage1_dsb2018_cpu", "--output", str(tmp / "model"), "--quiet",
            "DATASETS.ROOT", str(root), "DATASETS.VAL_SIZE", "1"]


def demo_output_is_a_file(tmp, mp):
    (tmp / "demo").write_text("mine")
    return ["demo", "--output", str(tmp / "demo")]


def demo_overwrite_a_folder_not_ours(tmp, mp):
    (tmp / "demo").mkdir()
    (tmp / "demo" / "thesis.docx").write_text("mine")
    return ["demo", "--output", str(tmp / "demo"), "--overwrite"]


def demo_output_under_proc(tmp, mp):
    return ["demo", "--output", "/proc/pcnacycle-demo"]


def batch_output_is_a_file(tmp, mp):
    movie(tmp)
    (tmp / "movies.csv").write_text("movie,pcna,frame_interval\nm1,pcna.tif,10\n")
    (tmp / "summary").write_text("mine")
    return ["batch", "--weights", str(weights(tmp)), "--manifest", str(tmp / "movies.csv"),
            "--output", str(tmp / "summary"), "--workers", "1", "--quiet"]


def correct_output_under_proc(tmp, mp):
    assert main(run_args(tmp)) == 0
    (tmp / "edits.yaml").write_text("edits: []\n")
    return ["correct", str(tmp / "out"), "--edits", str(tmp / "edits.yaml"), "--output", "/proc/pcnacycle-fixed"]


def correct_in_place_while_a_run_writes(tmp, mp):
    assert main(run_args(tmp)) == 0
    (tmp / "edits.yaml").write_text("edits: []\n")
    lock = output_lock(tmp / "out")
    lock.__enter__()  # a second `run --overwrite` into the same folder, still writing
    HELD_LOCKS.append(lock)
    return ["correct", str(tmp / "out"), "--edits", str(tmp / "edits.yaml"), "--in-place"]


# ------------------------------------------------------------------ simulate


def simulate_args(tmp, *extra):
    return ["simulate", "--output", str(tmp / "sim"), "--size", "64", "64", "--cells", "3", "--quiet", *extra]


def simulate_short_movie(tmp, mp):
    return simulate_args(tmp, "--frames", "5")  # the default annotated-frame count fits the movie


def simulate_enormous_movie(tmp, mp):
    mp.setattr(safeguards, "available_memory", lambda: 8 * 10**9)
    return ["simulate", "--output", str(tmp / "sim"), "--frames", "100000", "--size", "2048", "2048"]


def simulate_disk_too_small(tmp, mp):
    mp.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 1000, 1000))
    return simulate_args(tmp, "--frames", "5")


def simulate_disk_full_mid_write(tmp, mp):
    mp.setattr(os, "fsync", no_space)
    return simulate_args(tmp, "--frames", "3")


def simulate_output_under_sys(tmp, mp):
    return ["simulate", "--output", "/sys/pcnacycle-sim", "--frames", "3"]


def simulate_overwrite_a_folder_not_ours(tmp, mp):
    (tmp / "sim" / "truth").mkdir(parents=True)
    (tmp / "sim" / "truth" / "my_labels.tif").write_text("mine")
    return simulate_args(tmp, "--frames", "3", "--overwrite")


CASES = [
    Case("truncated TIFF", truncated_tiff, 2, "bad.tif: the file is truncated"),
    Case("truncated ImageJ movie", truncated_imagej_movie, 2, "cut.tif: the file is truncated or damaged (its "
         "metadata declares 5 plane(s), 1 were found)"),
    Case("4-D TIFF without axes", four_d_without_axes, 2, "shape (4, 2, 48, 48) whose axes the file does not name"),
    Case("5-D TIFF without axes", five_d_without_axes, 2, "five.tif: a 5-D stack"),
    Case("1×1-pixel frames", one_pixel_frames, 2,
         "dot.tif: frames of 3×1 pixels (file shape (3, 1, 1)) are too small"),
    Case("NaN and inf pixels", nan_and_inf_pixels, 0, "float.tif: frame 0 holds 25 NaN or infinite pixel(s)"),
    Case("all-zero movie", all_zero_movie, 0, "zero.tif: every pixel is 0"),
    Case("constant movie", constant_movie, 0, "flat.tif: every pixel holds the same value (700)"),
    Case("saturated movie", saturated_movie, 0, "of pixels are saturated (at 65535)"),
    Case("run --output is a file", output_is_a_file, 2, "results.csv: exists and is not a folder"),
    Case("run --output under /proc", output_under_proc, 2, "cannot write in /proc"),
    Case("run --output under /sys", output_under_sys, 2, "cannot write in /sys/kernel"),
    Case("run --output below a file", output_below_a_file, 2, "notes.txt is not a folder"),
    Case("run: disk too small", disk_too_small, 2, "needed on disk"),
    Case("run: disk full at the detections", disk_full_at_the_detections, 2,
         "detections.raw: No space left on device"),
    Case("run: disk full mid-write", disk_full_mid_write, 2, "No space left on device; free some space"),
    Case("run: another run writing", another_run_writing, 2, "another pcnacycle process is writing there"),
    Case("run: bad weights file", bad_weights_file, 2, "fake.pt: not a PyTorch weights file that loads safely"),
    Case("run --frame-interval nan", nan_frame_interval, 2, "frame_interval"),
    Case("run --max-gap -1", negative_max_gap, 2, "max_gap=-1"),
    Case("run --overwrite a folder not ours", overwrite_a_folder_not_ours, 2, "no readable run.json"),
    Case("evaluate-tracks on zero detections", zero_detections_scored, 0, "the result holds no track"),
    Case("evaluate-tracks --output is a file", evaluate_tracks_output_is_a_file, 2,
         "score: exists and is not a folder"),
    Case("evaluate --output under /proc", evaluate_output_under_proc, 2, "cannot write in /proc"),
    Case("annotate --output under /sys", annotate_output_under_sys, 2, "cannot write in /sys"),
    Case("annotate over corrections", annotate_keeps_corrections, 2, "via_region_data.json already exists"),
    Case("train --output is a file", train_output_is_a_file, 2, "model: exists and is not a folder"),
    Case("train --output under /proc", train_output_under_proc, 2, "cannot write in /proc"),
    Case("train: disk full", train_disk_full, 2, "No space left on device; free some space"),
    Case("demo --output is a file", demo_output_is_a_file, 2, "demo: exists and is not a folder"),
    Case("demo --output under /proc", demo_output_under_proc, 2, "cannot write in /proc"),
    Case("demo --overwrite a folder not ours", demo_overwrite_a_folder_not_ours, 2, "not written by pcnacycle demo"),
    Case("batch --output is a file", batch_output_is_a_file, 2, "summary: exists and is not a folder"),
    Case("correct --output under /proc", correct_output_under_proc, 2, "cannot write in /proc"),
    Case("correct --in-place while a run writes", correct_in_place_while_a_run_writes, 2,
         "another pcnacycle process is writing there"),
    Case("simulate --frames 5", simulate_short_movie, 0, "sim"),
    Case("simulate an enormous movie", simulate_enormous_movie, 2, "100000 frames of 2048×2048"),
    Case("simulate: disk too small", simulate_disk_too_small, 2, "needed on disk"),
    Case("simulate: disk full mid-write", simulate_disk_full_mid_write, 2, "No space left on device"),
    Case("simulate --output under /sys", simulate_output_under_sys, 2, "cannot write in /sys"),
    Case("simulate --overwrite a folder not ours", simulate_overwrite_a_folder_not_ours, 2,
         "no readable simulation.json"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_or_is_handled(case, tmp_path, monkeypatch, capsys, caplog):
    argv = case.make(tmp_path, monkeypatch)
    capsys.readouterr()
    try:
        status = main(argv)
    finally:
        while HELD_LOCKS:
            HELD_LOCKS.pop().__exit__(None, None, None)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert status == case.status, err
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert case.fragment in lines[0]
    else:
        assert case.fragment in out + err + caplog.text


# ------------------------------------------------------------------ what the refusals leave behind


def test_a_full_disk_leaves_no_staging_and_no_results(tmp_path, monkeypatch):
    for make in (disk_full_at_the_detections, disk_full_mid_write):
        folder = tmp_path / make.__name__
        folder.mkdir()
        assert main(make(folder, monkeypatch)) == 2
        monkeypatch.undo()
        assert sorted(p.name for p in folder.iterdir()) == ["pcna.tif", "w.pt"]  # no out/, no .out.incomplete/


def test_a_simulation_that_fills_the_disk_removes_what_it_wrote_and_keeps_the_users_files(tmp_path, monkeypatch):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "notes.txt").write_text("mine")
    real_fsync, calls = os.fsync, []

    def fsync_until_full(fd):  # a few files fit, then the disk is full
        calls.append(fd)
        if len(calls) > 5:
            no_space()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    # the folder holds a file of the user's, so it needs --overwrite, and is not ours: write into a subfolder
    assert main(simulate_args(tmp_path / "sim", "--frames", "3")) == 2
    assert len(calls) == 6
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == ["sim/notes.txt"]


def test_a_second_process_is_refused_while_a_run_writes(tmp_path, capsys):
    """Two processes: one holds the output's lock as a running ``run`` does, the other is refused."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pcnacycle.safeguards import output_lock\n"
         f"with output_lock({str(tmp_path / 'out')!r}):\n    print('locked', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(run_args(tmp_path)) == 2
        assert "another pcnacycle process is writing there" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert main(run_args(tmp_path)) == 0  # the lock goes with its process
    assert json.loads((tmp_path / "out" / "run.json").read_text())["frames"] == 4
    assert not (tmp_path / ".out.lock").exists()
