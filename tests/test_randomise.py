"""The randomised simulator: draws inside their ranges, recorded, reproducible; texture follows nucleus size."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import FAST
from pcnacycle.errors import PcnacycleError
from pcnacycle.simulation.foci import _update_foci
from pcnacycle.simulation.lifecycle import _founders
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.randomise import RandomisationRanges, draw_params
from pcnacycle.simulation.simulator import simulate, simulate_movie

BASE = SimulationParams(frames=4, size=(96, 96), cells=6, seed=3, **FAST)


def test_drawn_values_lie_in_their_ranges_and_reach_the_parameters():
    ranges = RandomisationRanges()
    for seed in range(20):
        params, drawn = draw_params(replace(BASE, seed=seed), ranges)
        params.validate()
        for name, value in drawn.items():
            if name == "bit_depth":
                assert value in ranges.bit_depths
            else:
                low, high = getattr(ranges, name)
                assert low <= value <= high, name
        assert params.nucleus_radius == pytest.approx(drawn["nucleus_diameter"] / 2)
        assert params.foci_ratio == drawn["foci_ratio"]
        assert params.defocus == pytest.approx(drawn["defocus"] * drawn["nucleus_diameter"] / 22)
        assert params.nucleoli_count[1] == drawn["nucleoli_most"] and params.bit_depth == drawn["bit_depth"]
        assert params.scale_texture and 1 <= params.cells <= BASE.cells
        # what is not randomised stays the base movie's
        assert (params.frames, params.size, params.s_minutes) == (BASE.frames, BASE.size, BASE.s_minutes)


def test_expression_spread_is_drawn_last_so_earlier_draws_keep_their_values():
    """Changing the range of cell_brightness_sd (added after the others) changes no other drawn value, and the
    drawn spread reaches the movie's parameters."""
    wide, narrow = (draw_params(replace(BASE, seed=5), RandomisationRanges(cell_brightness_sd=bounds))
                    for bounds in ((0.6, 0.7), (0.1, 0.1)))
    assert wide[1].pop("cell_brightness_sd") > 0.5 and narrow[1].pop("cell_brightness_sd") == 0.1
    assert wide[1] == narrow[1]
    assert wide[0].cell_brightness_sd > 0.5 and narrow[0].cell_brightness_sd == 0.1


def test_expression_spread_spans_stable_lines_and_transfections():
    """Drawn in the logarithm: most movies vary little between cells, some a hundredfold as real PCNA fields do."""
    spreads = np.array([draw_params(replace(BASE, seed=seed))[1]["cell_brightness_sd"] for seed in range(80)])
    assert spreads.min() < 0.2 and spreads.max() > 1.8 and 0.3 < np.median(spreads) < 0.8
    wide = replace(BASE, cells=60, size=(256, 256), cell_brightness_sd=2.5)
    brightness = np.array([cell.brightness for cell in _founders(wide, np.random.default_rng(0))])
    low, high = np.percentile(brightness, [5, 95])
    assert high / low > 30


def test_draws_differ_between_seeds_and_span_the_size_range():
    large = replace(BASE, size=(512, 512))
    diameters = [draw_params(replace(large, seed=seed))[1]["nucleus_diameter"] for seed in range(40)]
    assert len(set(diameters)) == 40
    assert min(diameters) < 25 and max(diameters) > 70


def test_nucleus_sizes_are_capped_to_fit_the_field():
    diameters = [draw_params(replace(BASE, seed=seed))[1]["nucleus_diameter"] for seed in range(40)]
    assert max(diameters) < 60  # one 60-px nucleus would cover 40% of a 96 x 96 field
    with pytest.raises(PcnacycleError, match="size"):
        draw_params(replace(BASE, size=(64, 64)), RandomisationRanges(nucleus_diameter=(60.0, 100.0)))


def test_narrow_ranges_are_respected():
    ranges = RandomisationRanges(nucleus_diameter=(30.0, 30.0), bit_depths=(8,))
    params, _ = draw_params(BASE, ranges)
    assert params.nucleus_radius == pytest.approx(15.0) and params.bit_depth == 8


@pytest.mark.parametrize("kwargs, name", [
    ({"nucleus_diameter": (100.0, 15.0)}, "nucleus_diameter"),
    ({"defocus": (0.0, 60.0)}, "defocus"),
    ({"coverage": (0.1,)}, "coverage"),
    ({"bit_depths": (7,)}, "bit_depths"),
])
def test_impossible_ranges_are_refused_naming_the_range(kwargs, name):
    with pytest.raises(PcnacycleError, match=name):
        RandomisationRanges(**kwargs)


def test_randomised_movie_is_recorded_and_reproducible(tmp_path):
    kwargs = {"frames": 4, "size": (96, 96), "cells": 6, "seed": 5, "annotated_frames": 1, "progress": False,
              "randomise": True}
    first = simulate(tmp_path / "a", **kwargs)
    second = simulate(tmp_path / "b", **kwargs)
    other = simulate(tmp_path / "c", **{**kwargs, "seed": 6})
    record = json.loads((first / "simulation.json").read_text())
    drawn = record["randomisation"]["drawn"]
    assert record["nucleus_radius"] == pytest.approx(drawn["nucleus_diameter"] / 2)
    assert record["randomisation"]["ranges"]["nucleus_diameter"][0] == 15.0
    assert 15.0 <= drawn["nucleus_diameter"] <= record["randomisation"]["ranges"]["nucleus_diameter"][1]
    assert (first / "pcna.tif").read_bytes() == (second / "pcna.tif").read_bytes()
    assert (first / "pcna.tif").read_bytes() != (other / "pcna.tif").read_bytes()


def test_plain_movies_record_no_randomisation(tmp_path):
    out = simulate(tmp_path / "plain", frames=2, size=(64, 64), cells=2, annotated_frames=0, progress=False)
    assert "randomisation" not in json.loads((out / "simulation.json").read_text())


def s_phase_foci(radius: float, scale_texture: bool) -> tuple[float, float]:
    """Mean focus sd (px) and mean foci per nucleus of mid-S nuclei of a given size."""
    params = SimulationParams(frames=1, size=(1024, 1024), cells=12, seed=0, nucleus_radius=radius,
                              nucleus_radius_sd=0.0, scale_texture=scale_texture, **FAST)
    rng = np.random.default_rng(0)
    sds, counts = [], []
    for cell in _founders(params, rng):
        cell.phase, cell.frames_in_phase, cell.foci = 1, cell.durations[1] // 2, np.zeros((0, 4))
        _update_foci(cell, params, rng)
        sds.extend(cell.foci[:, 3])
        counts.append(len(cell.foci))
    return float(np.mean(sds)), float(np.mean(counts))


def test_scaled_texture_grows_foci_with_the_nucleus_and_keeps_their_number():
    small_sd, small_count = s_phase_foci(8.0, scale_texture=True)
    large_sd, large_count = s_phase_foci(24.0, scale_texture=True)
    assert large_sd / small_sd == pytest.approx(3.0, rel=0.2)
    assert large_count / small_count == pytest.approx(1.0, rel=0.3)


def test_unscaled_texture_keeps_foci_in_pixels_as_movies_always_had():
    small_sd, small_count = s_phase_foci(8.0, scale_texture=False)
    large_sd, large_count = s_phase_foci(24.0, scale_texture=False)
    assert large_sd / small_sd == pytest.approx(1.0, rel=0.2)
    assert large_count / small_count > 5


def test_camera_clips_at_its_bit_depth():
    movie = simulate_movie(replace(BASE, bit_depth=8, camera_offset=10.0, g1_photons=2000.0))
    assert movie.pcna.max() == 255


def test_debris_adds_unlabelled_bright_specks():
    clean = simulate_movie(replace(BASE, cells=1))
    dirty = simulate_movie(replace(BASE, cells=1, debris=40.0))
    np.testing.assert_array_equal(clean.labels, dirty.labels)
    outside = clean.labels[0] == 0
    assert dirty.pcna[0][outside].max() > clean.pcna[0][outside].max() + 100


def test_mitotic_pcna_spreads_beyond_the_mask_when_asked():
    def ring_to_inside(m_cytoplasm):
        movie = simulate_movie(SimulationParams(frames=1, size=(96, 96), cells=1, seed=0, g1_photons=3000.0,
                                                read_noise=0.0, defocus=0.0, arrested_fraction=0.0,
                                                cytoplasm_ratio=0.0, m_cytoplasm=m_cytoplasm,
                                                g1_minutes=(1.0, 0.0), s_minutes=(1.0, 0.0),
                                                g2_minutes=(1.0, 0.0), m_minutes=(10000.0, 0.0)))
        from scipy import ndimage as ndi

        mask = movie.labels[0] > 0
        ring = ndi.binary_dilation(mask, iterations=2) & ~mask
        image = movie.pcna[0].astype(float) - movie.params.background_photons - movie.params.camera_offset
        return image[ring].mean() / image[mask].mean()

    assert ring_to_inside(0.6) > 2 * ring_to_inside(0.0)


def test_bad_new_parameters_are_refused_naming_them():
    for kwargs, name in (({"bit_depth": 9}, "bit_depth"), ({"nucleoli_count": (3, 1)}, "nucleoli_count"),
                         ({"m_cytoplasm": 1.5}, "m_cytoplasm"), ({"foci_size": 0}, "foci_size")):
        with pytest.raises(PcnacycleError, match=name):
            replace(BASE, **kwargs).validate()


def test_simulate_command_randomises_on_request_and_refuses_a_fixed_nucleus_size(tmp_path, capsys):
    from pcnacycle.cli import main

    args = ["simulate", "--output", str(tmp_path / "r"), "--frames", "2", "--size", "64", "64", "--cells", "3",
            "--annotated-frames", "1", "--seed", "9", "--quiet"]
    assert main([*args, "--randomise"]) == 0
    record = json.loads((tmp_path / "r" / "simulation.json").read_text())
    assert record["scale_texture"] and "drawn" in record["randomisation"]
    assert main([*args[:2], str(tmp_path / "s"), *args[3:], "--randomise", "--nucleus-radius", "5"]) == 2
    assert "--nucleus-radius: not with --randomise" in capsys.readouterr().err


def _set_args(tmp_path, *extra):
    return ["simulate", "--output", str(tmp_path / "set"), "--frames", "3", "--size", "64", "64", "--cells", "3",
            "--annotated-frames", "2", "--seed", "20", "--movies", "2", "--randomise", "--quiet", *extra]


def test_several_randomised_movies_pool_their_annotated_frames_into_one_dataset(tmp_path):
    import pandas as pd

    from pcnacycle.cli import main
    from pcnacycle.config import load_config
    from pcnacycle.data.labelmask import read_labelmask_records
    from pcnacycle.io import read_image

    assert main(_set_args(tmp_path)) == 0
    pool = tmp_path / "set" / "annotated"
    drawn = [json.loads((tmp_path / "set" / f"movie_{s}" / "simulation.json").read_text())["randomisation"]["drawn"]
             for s in (20, 21)]
    assert drawn[0]["nucleus_diameter"] != drawn[1]["nucleus_diameter"]  # each movie its own look
    classes = pd.read_csv(pool / "classes.csv")
    for seed in (20, 21):
        own = tmp_path / "set" / f"movie_{seed}" / "annotated"
        own_classes = pd.read_csv(own / "classes.csv")
        for frame in sorted(p.stem for p in (own / "labels").glob("*.tif")):
            pooled = f"movie_{seed}_{frame}"
            for channel in ("labels", "pcna"):
                assert np.array_equal(read_image(pool / channel / f"{pooled}.tif"),
                                      read_image(own / channel / f"{frame}.tif"))
            assert (classes[classes.image == pooled]["class"].tolist()
                    == own_classes[own_classes.image == frame]["class"].tolist())
    via = json.loads((pool / "via_region_data.json").read_text())
    assert sorted(v["filename"] for v in via.values()) == sorted(p.name for p in (pool / "pcna").glob("*.tif"))
    records = read_labelmask_records(pool, load_config("stage3_pcna_cpu", ["INPUT.CHANNELS", "[pcna, dic]"]))
    assert len(records) == 4  # two annotated frames of each movie, read as one label-mask dataset


def test_a_set_is_replaced_only_with_overwrite_and_keeps_the_users_files(tmp_path, capsys):
    from pcnacycle.cli import main

    def movies(count, *extra):
        args = _set_args(tmp_path, *extra)
        args[args.index("--movies") + 1] = str(count)
        return args

    assert main(movies(3)) == 0
    (tmp_path / "set" / "notes.txt").write_text("mine")
    assert main(movies(2)) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "set" / "movie_22").is_dir()
    assert main(movies(2, "--overwrite")) == 0
    assert not (tmp_path / "set" / "movie_22").exists()  # what the earlier, larger set wrote is gone
    assert len(list((tmp_path / "set" / "annotated" / "labels").glob("*.tif"))) == 4
    assert (tmp_path / "set" / "notes.txt").read_text() == "mine"
    # a single movie is not written over a set: the set's files are not a movie's to replace
    assert main(movies(1, "--overwrite")) == 2
    assert "simulation.json" in capsys.readouterr().err


def test_a_set_of_no_movies_is_refused(tmp_path, capsys):
    from pcnacycle.cli import main

    args = _set_args(tmp_path)
    args[args.index("--movies") + 1] = "0"
    assert main(args) == 2
    assert "movies=0" in capsys.readouterr().err and not (tmp_path / "set").exists()
