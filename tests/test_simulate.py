"""The PCNA movie simulator: ground truth, determinism, phase appearance, output folder, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage import draw

from conftest import FAST
from pcnacycle.errors import PcnacycleError
from pcnacycle.phases import CLASSES, PHASE_CLASS, PHASES
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate, simulate_movie
from pcnacycle.simulation.writers import write_movie

SMALL = SimulationParams(frames=30, size=(128, 128), cells=8, seed=1, **FAST)
ANNOTATED = 6


@pytest.fixture(scope="module")
def movie():
    return simulate_movie(SMALL)


@pytest.fixture(scope="module")
def folder(movie, tmp_path_factory):
    return write_movie(movie, tmp_path_factory.mktemp("sim") / "movie", annotated_frames=ANNOTATED)


def read_csv(path):
    return pd.read_csv(path, dtype={"image": str, "class": str, "arrested": str}, keep_default_na=False)


# ------------------------------------------------------------------ ground truth


def test_every_labelled_object_has_a_phase_and_its_measures(movie):
    objects = movie.objects
    assert set(objects["phase"]) <= set(PHASES)
    assert (objects["class"] == objects["phase"].map(PHASE_CLASS)).all()
    for t in range(SMALL.frames):
        labels = movie.labels[t]
        rows = objects[objects["frame"] == t].set_index("track")
        ids = np.unique(labels)
        assert sorted(rows.index) == ids[ids > 0].tolist()
        area = np.bincount(labels.ravel())[rows.index]
        assert (rows["area"].to_numpy() == area).all()
        centroids = np.array(ndi.center_of_mass(labels > 0, labels, rows.index))
        np.testing.assert_allclose(rows[["centroid_y", "centroid_x"]].to_numpy(), centroids, atol=1e-6)
        means = ndi.mean(movie.pcna[t].astype(float), labels, rows.index)
        np.testing.assert_allclose(rows["mean_pcna"].to_numpy(), means, rtol=1e-9)


def test_tracks_are_contiguous_and_every_table_agrees(movie, folder):
    objects, tracks = movie.objects, movie.tracks.set_index("track")
    assert (tracks["parent"] > 0).any(), "the fast cycle should produce divisions"
    for track, rows in objects.groupby("track"):
        frames = rows["frame"].to_numpy()
        assert frames.tolist() == list(range(tracks.at[track, "first_frame"], tracks.at[track, "last_frame"] + 1))
        assert (rows["parent"] == tracks.at[track, "parent"]).all()
    assert sorted(objects["track"].unique()) == sorted(tracks.index)

    truth = folder / "truth"
    np.testing.assert_array_equal(tifffile.imread(truth / "labels.tif"), movie.labels)
    pd.testing.assert_frame_equal(read_csv(truth / "tracks.csv"), movie.tracks, check_dtype=False)
    written = read_csv(truth / "objects.csv")
    pd.testing.assert_frame_equal(written, movie.objects, check_dtype=False)
    man_track = np.loadtxt(truth / "ctc" / "01_GT" / "TRA" / "man_track.txt", dtype=int, ndmin=2)
    np.testing.assert_array_equal(man_track, movie.tracks[["track", "first_frame", "last_frame", "parent"]].to_numpy())
    phases = read_csv(truth / "phases.csv")
    assert phases["track"].tolist() == movie.tracks["track"].tolist()
    assert phases["parent"].tolist() == movie.tracks["parent"].tolist()
    for t in (0, 17, SMALL.frames - 1):
        ctc = truth / "ctc"
        np.testing.assert_array_equal(tifffile.imread(ctc / "01" / f"t{t:03d}.tif"), movie.pcna[t])
        np.testing.assert_array_equal(tifffile.imread(ctc / "01_GT" / "TRA" / f"man_track{t:03d}.tif"), movie.labels[t])
        np.testing.assert_array_equal(tifffile.imread(ctc / "01_GT" / "SEG" / f"man_seg{t:03d}.tif"), movie.labels[t])
    assert len(list((truth / "ctc" / "01").glob("t*.tif"))) == SMALL.frames


def test_daughters_start_in_g1_next_to_their_mother_after_her_m_phase(movie):
    objects = movie.objects.set_index(["frame", "track"])
    tracks = movie.tracks.set_index("track")
    daughters = tracks[tracks["parent"] > 0]
    assert len(daughters) > 0
    for mother, pair in daughters.groupby("parent"):
        assert len(pair) == 2
        end = tracks.at[mother, "last_frame"]
        assert objects.at[(end, mother), "phase"] == "M"
        for track, row in pair.iterrows():
            assert row["first_frame"] == end + 1
            first = objects.loc[(row["first_frame"], track)]
            assert first["phase"] == "G1"
            last = objects.loc[(end, mother)]
            distance = np.hypot(first["centroid_y"] - last["centroid_y"], first["centroid_x"] - last["centroid_x"])
            assert distance < 2 * SMALL.nucleus_radius


def test_phase_durations_count_the_frames_of_each_phase(movie):
    durations = movie.durations.set_index("track")
    counts = (movie.objects.groupby(["track", "phase"]).size().unstack(fill_value=0)
              .reindex(columns=list(PHASES), fill_value=0))
    for phase in PHASES:
        np.testing.assert_array_equal(durations[f"{phase}_frames"], counts.loc[durations.index, phase])
        np.testing.assert_allclose(durations[f"{phase}_minutes"], durations[f"{phase}_frames"] * SMALL.frame_interval)
    tracks = movie.tracks.set_index("track")
    divided = tracks["last_frame"] < SMALL.frames - 1
    assert not durations.loc[divided[divided].index, "cut_end"].any()
    assert (durations.loc[divided[divided].index, "M_frames"] >= 1).all()
    assert not durations.loc[tracks["parent"] > 0, "cut_start"].any()
    # a daughter that divides within the movie shows its whole cycle, G1 to M
    whole = durations[(tracks["parent"] > 0) & divided]
    assert len(whole) > 0
    assert (whole[[f"{p}_frames" for p in PHASES]] >= 1).all().all()


def test_arrested_cells_never_leave_their_phase():
    movie = simulate_movie(SimulationParams(frames=20, size=(96, 96), cells=6, seed=4, arrested_fraction=1.0, **FAST))
    durations = movie.durations
    assert len(movie.tracks) == 6 and (movie.tracks["parent"] == 0).all()
    assert set(durations["arrested"]) <= {"G1", "G2"}
    for row in durations.itertuples():
        phases = set(movie.objects.loc[movie.objects["track"] == row.track, "phase"])
        assert phases == {row.arrested}
    assert durations["cut_end"].all()


def test_cycling_cells_are_not_marked_arrested(movie):
    assert (movie.durations["arrested"] == "").all()


# ------------------------------------------------------------------ determinism


def test_same_seed_same_movie_other_seed_other_movie():
    params = SimulationParams(frames=6, size=(64, 64), cells=3, seed=7, **FAST)
    first, second = simulate_movie(params), simulate_movie(params)
    for name in ("pcna", "dic", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    pd.testing.assert_frame_equal(first.objects, second.objects)
    other = simulate_movie(SimulationParams(frames=6, size=(64, 64), cells=3, seed=8, **FAST))
    assert not np.array_equal(first.pcna, other.pcna)
    assert not np.array_equal(first.labels, other.labels)


# ------------------------------------------------------------------ appearance


@pytest.fixture(scope="module")
def bright_movie():
    """Many objects of every phase at high signal-to-noise.

    Daughters recover fast here so that the short G1 of ``FAST`` is not all
    newborn dimness (that is tested on its own).
    """
    return simulate_movie(SimulationParams(frames=30, size=(192, 192), cells=18, seed=2, g1_photons=3000.0,
                                           read_noise=0.5, recovery_minutes=10.0, **FAST))


def per_object(movie, measure):
    """``measure(pixels, local_std)`` of every nucleus's interior, by phase: {phase: array}."""
    values = {p: [] for p in PHASES}
    offset = movie.params.camera_offset
    for t in range(movie.params.frames):
        image = movie.pcna[t].astype(float) - offset
        mean = ndi.uniform_filter(image, 3)
        local_std = np.sqrt(np.maximum(ndi.uniform_filter(image**2, 3) - mean**2, 0))
        for row in movie.objects[movie.objects["frame"] == t].itertuples():
            interior = ndi.binary_erosion(movie.labels[t] == row.track, iterations=2)
            if interior.sum() >= 20:
                values[row.phase].append(measure(image[interior], local_std[interior]))
    return {p: np.array(v) for p, v in values.items()}


def test_s_phase_nuclei_are_textured_by_replication_foci(bright_movie):
    roughness = per_object(bright_movie, lambda pixels, local_std: local_std.mean() / pixels.mean())
    assert all(len(roughness[p]) >= 10 for p in ("G1", "S", "G2"))
    assert roughness["S"].mean() > 2 * roughness["G1"].mean()
    assert roughness["S"].mean() > 2 * roughness["G2"].mean()
    # most S nuclei, not just a few, are rougher than a typical G1 nucleus
    assert np.mean(roughness["S"] > np.median(roughness["G1"])) > 0.8


def test_g2_is_brighter_than_g1_and_mitosis_dims(bright_movie):
    brightness = bright_movie.objects.groupby("phase")["mean_pcna"].mean() - bright_movie.params.camera_offset
    assert (bright_movie.objects["phase"] == "M").sum() >= 5
    assert brightness["G2"] > 1.3 * brightness["G1"]
    assert brightness["M"] < 0.75 * brightness["G2"]
    # within each mother: her M frames are dimmer than her G2 frames
    objects = bright_movie.objects
    for _, rows in objects[objects["track"].isin(objects.loc[objects["phase"] == "M", "track"])].groupby("track"):
        by_phase = rows.groupby("phase")["mean_pcna"].mean()
        if "G2" in by_phase:
            assert by_phase["M"] < by_phase["G2"]


def test_g2_is_brighter_than_g1_with_default_durations_and_noise():
    movie = simulate_movie(SimulationParams(frames=2, size=(256, 256), cells=60, seed=5))
    brightness = movie.objects.groupby("phase")["mean_pcna"].mean() - movie.params.camera_offset
    assert (movie.objects["phase"] == "G2").sum() >= 10
    assert brightness["G2"] > 1.3 * brightness["G1"]


def test_daughters_are_born_dimmer_and_smaller_than_their_mother(movie):
    objects = movie.objects
    daughters = movie.tracks[movie.tracks["parent"] > 0]
    for row in daughters.itertuples():
        first = objects[(objects["track"] == row.track) & (objects["frame"] == row.first_frame)].iloc[0]
        mother = objects[objects["track"] == row.parent]
        assert first["area"] < mother.loc[mother["phase"] == "M", "area"].mean()
        if (mother["phase"] == "G2").any():
            assert first["mean_pcna"] < mother.loc[mother["phase"] == "G2", "mean_pcna"].mean()


def test_mitotic_cells_spread_over_a_larger_area(bright_movie):
    objects = bright_movie.objects
    mean_area = objects.groupby("phase")["area"].mean()
    assert mean_area["M"] > 1.2 * mean_area["G2"]


def test_images_carry_camera_noise_and_offset(movie):
    background = movie.pcna[:, movie.labels[0] == 0][0]
    assert background.std() > 1
    assert abs(np.median(background) - SMALL.camera_offset - SMALL.background_photons) < 10
    assert movie.dic.dtype == np.uint16 and movie.dic.shape == movie.pcna.shape
    # DIC shows the cells: the image differs inside nuclei from a blank field's noise
    assert movie.dic[0].std() > 3 * np.sqrt(SMALL.dic_photons)


# ------------------------------------------------------------------ annotated folder


def test_annotated_classes_match_labels_and_truth(movie, folder):
    annotated = folder / "annotated"
    classes = read_csv(annotated / "classes.csv")
    names = sorted(p.stem for p in (annotated / "labels").glob("*.tif"))
    assert len(names) == ANNOTATED
    assert names[0] == "frame_000" and names[-1] == f"frame_{SMALL.frames - 1:03d}"
    assert set(classes["class"]) <= set(CLASSES)
    for name in names:
        frame = int(name.split("_")[1])
        labels = tifffile.imread(annotated / "labels" / f"{name}.tif")
        np.testing.assert_array_equal(labels, movie.labels[frame])
        np.testing.assert_array_equal(tifffile.imread(annotated / "pcna" / f"{name}.tif"), movie.pcna[frame])
        np.testing.assert_array_equal(tifffile.imread(annotated / "dic" / f"{name}.tif"), movie.dic[frame])
        rows = classes[classes["image"] == name].set_index("label")["class"]
        ids = np.unique(labels)
        assert sorted(rows.index) == ids[ids > 0].tolist()
        truth = movie.objects[movie.objects["frame"] == frame].set_index("track")["class"]
        assert rows.sort_index().equals(truth.sort_index().rename_axis("label"))


def test_via_polygons_rasterise_back_to_the_label_masks(movie, folder):
    annotated = folder / "annotated"
    via = json.loads((annotated / "via_region_data.json").read_text())
    classes = read_csv(annotated / "classes.csv")
    assert len(via) == ANNOTATED
    height, width = SMALL.size
    for key, entry in via.items():
        pcna_file = annotated / "pcna" / entry["filename"]
        assert key == f"{entry['filename']}{entry['size']}"
        assert entry["size"] == pcna_file.stat().st_size
        labels = tifffile.imread(annotated / "labels" / entry["filename"])
        name = entry["filename"].removesuffix(".tif")
        class_of = classes[classes["image"] == name].set_index("label")["class"]
        assert len(entry["regions"]) == len(class_of)
        matched = set()
        for region in entry["regions"]:
            shape = region["shape_attributes"]
            xs, ys = np.array(shape["all_points_x"]), np.array(shape["all_points_y"])
            assert shape["name"] == "polygon" and len(xs) == len(ys) >= 3
            assert xs.min() >= 0 and xs.max() <= width - 1 and ys.min() >= 0 and ys.max() <= height - 1
            polygon = np.zeros(labels.shape, bool)
            polygon[draw.polygon(ys, xs, shape=labels.shape)] = True
            label = np.bincount(labels[polygon]).argmax() if labels[polygon].any() else 0
            assert label > 0
            mask = labels == label
            iou = (polygon & mask).sum() / (polygon | mask).sum()
            assert iou > 0.95, (key, label, iou)
            assert region["region_attributes"]["phase"] == class_of[label]
            matched.add(label)
        assert matched == set(class_of.index)


def test_simulate_writes_the_whole_folder(tmp_path):
    out = simulate(tmp_path / "sim", frames=5, size=(64, 64), cells=2, seed=3, annotated_frames=2, progress=False)
    assert out == tmp_path / "sim"
    for name in ("pcna.tif", "dic.tif", "truth/labels.tif"):
        assert tifffile.imread(out / name).shape == (5, 64, 64)
        assert tifffile.imread(out / name).dtype == np.uint16
    info = json.loads((out / "simulation.json").read_text())
    assert info["seed"] == 3 and info["frame_interval"] == 10.0 and info["frames"] == 5
    assert info["annotated_frames"] == 2 and info["pcnacycle_version"]
    assert sorted(p.name for p in (out / "annotated" / "pcna").iterdir()) == ["frame_000.tif", "frame_004.tif"]
    assert not list(out.rglob("*.tmp")), "no temporary file may be left behind"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, parameter", [
    ({"size": (32, 512)}, "size"),
    ({"size": (128,)}, "size"),
    ({"size": (128.0, 128)}, "size"),
    ({"size": "512"}, "size"),
    ({"cells": 0}, "cells"),
    ({"cells": -3}, "cells"),
    ({"cells": 1000, "size": (128, 128)}, "cells"),
    ({"frames": 0}, "frames"),
    ({"frame_interval": 0}, "frame_interval"),
    ({"frame_interval": -5.0}, "frame_interval"),
    ({"frames": 5, "annotated_frames": 10}, "annotated_frames"),
    ({"annotated_frames": -1}, "annotated_frames"),
    ({"jitter": -1.0}, "jitter"),
    ({"arrested_fraction": 1.5}, "arrested_fraction"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, parameter):
    with pytest.raises(PcnacycleError, match=parameter):
        simulate(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value", [
    ("g1_minutes", (0.0, 10.0)),
    ("s_minutes", (-60.0, 10.0)),
    ("g2_minutes", (60.0, -1.0)),
    ("m_minutes", (30.0,)),
])
def test_bad_phase_durations_are_refused(field, value):
    params = SimulationParams(frames=3, size=(64, 64), cells=1, **{**FAST, field: value})
    with pytest.raises(PcnacycleError, match=field):
        simulate_movie(params)


# ------------------------------------------------------------------ output folder


def test_a_non_empty_folder_is_left_untouched_without_overwrite(tmp_path, movie):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PcnacycleError, match="not empty"):
        simulate(out, frames=3, size=(64, 64), cells=1, annotated_frames=1, progress=False)
    with pytest.raises(PcnacycleError, match="not empty"):
        write_movie(movie, out, annotated_frames=1)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_movie_without_stale_frames(tmp_path):
    out = tmp_path / "again"
    simulate(out, frames=6, size=(64, 64), cells=2, annotated_frames=3, progress=False)
    (out / "notes.txt").write_text("mine")
    simulate(out, frames=4, size=(64, 64), cells=2, seed=1, annotated_frames=2, overwrite=True, progress=False)
    assert len(list((out / "truth" / "ctc" / "01").glob("t*.tif"))) == 4
    assert len(list((out / "annotated" / "labels").glob("*.tif"))) == 2
    assert tifffile.imread(out / "pcna.tif").shape[0] == 4
    assert json.loads((out / "simulation.json").read_text())["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_never_deletes_files_the_simulation_did_not_write(tmp_path):
    out = tmp_path / "again"
    simulate(out, frames=4, size=(64, 64), cells=2, annotated_frames=2, progress=False)
    (out / "truth" / "my_counts.csv").write_text("mine")
    (out / "annotated" / "corrected").mkdir()
    (out / "annotated" / "corrected" / "frame_000.json").write_text("{}")
    simulate(out, frames=3, size=(64, 64), cells=2, seed=1, annotated_frames=1, overwrite=True, progress=False)
    assert (out / "truth" / "my_counts.csv").read_text() == "mine"
    assert (out / "annotated" / "corrected" / "frame_000.json").is_file()
    listed = json.loads((out / "simulation.json").read_text())["outputs"]
    assert "truth/labels.tif" in listed and "truth/my_counts.csv" not in listed
    # a folder without a simulation.json of ours is not a simulation to replace
    other = tmp_path / "other"
    (other / "truth").mkdir(parents=True)
    (other / "truth" / "data.csv").write_text("precious")
    with pytest.raises(PcnacycleError, match="refusing to overwrite"):
        simulate(other, frames=3, size=(64, 64), cells=1, annotated_frames=1, overwrite=True, progress=False)
    assert (other / "truth" / "data.csv").read_text() == "precious"


def test_the_movies_carry_their_frame_interval_for_run(tmp_path):
    from pcnacycle.data.movie import MovieReader

    out = simulate(tmp_path / "s", frames=3, size=(64, 64), cells=1, frame_interval=30.0, annotated_frames=1,
                   progress=False)
    for name in ("pcna.tif", "dic.tif"):
        reader = MovieReader(out / name)
        assert reader.frames == 3 and reader.frame_interval == pytest.approx(30.0)
        reader.close()
