"""Texture evidence for S: the measurement per nucleus, the ratio learnt per movie, and its use by the resolver."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from pcnacycle.errors import PcnacycleError
from pcnacycle.phases import CLASSES
from pcnacycle.tracking.detections import frame_detections, nuclear_texture
from pcnacycle.tracking.evidence import confidence_levels, confident_calls, texture_log_ratio
from pcnacycle.tracking.resolve import resolve_phases


def _disk(shape, centre, radius):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _two_nuclei(rng):
    """A smooth nucleus (label 1) and one with bright foci (label 2), blurred, on a background of 100."""
    labels = np.zeros((64, 128), np.int32)
    labels[_disk(labels.shape, (32, 32), 14)] = 1
    labels[_disk(labels.shape, (32, 96), 14)] = 2
    signal = 400.0 * (labels > 0)
    foci = np.zeros_like(signal)
    points = rng.integers(-9, 10, size=(12, 2)) + (32, 96)
    foci[points[:, 0], points[:, 1]] = 6000.0
    image = 100.0 + ndi.gaussian_filter(signal, 1.0) + ndi.gaussian_filter(foci, 1.2) * (labels == 2)
    return labels, image


def test_foci_make_a_nucleus_grainy_and_a_smooth_nucleus_its_blurred_edge_does_not():
    labels, image = _two_nuclei(np.random.default_rng(0))
    smooth, grainy = nuclear_texture(labels, image, np.array([1, 2]))
    whole = image[labels == 1] - 100.0
    assert smooth < 0.05 and smooth < 0.5 * whole.std() / whole.mean()  # its blurred rim is left out
    assert grainy > 0.2


def test_a_mask_drawn_a_pixel_wide_leaves_a_smooth_nucleus_smooth():
    # What a detector hands over: its mask runs a pixel past the nucleus, into the blurred fall of its edge.
    labels, image = _two_nuclei(np.random.default_rng(3))
    wide = np.where(_disk(labels.shape, (32, 32), 15), 1, labels)
    grainy = nuclear_texture(labels, image, np.array([2]))[0]
    border_only = nuclear_texture(wide, image, np.array([1]), rim=1)[0]
    default = nuclear_texture(wide, image, np.array([1]))[0]
    assert border_only > 0.1  # with only its border pixels left out, the edge's fall reads as grain
    assert default < 0.05 < 0.2 < grainy  # two edge layers left out: smooth again, foci still grainy


def test_the_rim_is_a_whole_number_of_layers_at_least_the_border():
    labels, image = _two_nuclei(np.random.default_rng(4))
    with pytest.raises(PcnacycleError, match="rim=0"):
        nuclear_texture(labels, image, np.array([1]), rim=0)
    with pytest.raises(PcnacycleError, match="rim=1.5"):
        nuclear_texture(labels, image, np.array([1]), rim=1.5)


def test_texture_does_not_depend_on_camera_gain_or_offset():
    labels, image = _two_nuclei(np.random.default_rng(1))
    np.testing.assert_allclose(nuclear_texture(labels, 3.0 * image + 500.0, np.array([1, 2])),
                               nuclear_texture(labels, image, np.array([1, 2])), rtol=1e-9)


def test_a_nucleus_no_brighter_than_the_background_has_no_texture_and_a_tiny_one_is_measured_whole():
    labels = np.zeros((32, 32), np.int32)
    labels[4:14, 4:14] = 1
    labels[20, 20] = 2  # one pixel: too few are left inside its rim
    image = np.full(labels.shape, 100.0)
    image[4:14, 4:14] = 50.0  # darker than the background
    image[20, 20] = 300.0
    texture = nuclear_texture(labels, image, np.array([1, 2]))
    assert np.isnan(texture[0]) and texture[1] == 0.0
    assert nuclear_texture(labels, image, np.array([], np.int64)).shape == (0,)


def test_frame_detections_measure_texture_with_the_intensity():
    labels, image = _two_nuclei(np.random.default_rng(2))
    table = frame_detections(labels, np.full((2, 3), 1 / 3), 0, intensity_image=image)
    assert table["texture_pcna"].iloc[1] > table["texture_pcna"].iloc[0]
    assert "texture_pcna" not in frame_detections(labels, np.full((2, 3), 1 / 3), 0).columns


def _calls_and_texture(rng, n=200, s_share=0.4):
    """p_S and texture of n nuclei: S grainy (log texture around -1.2), others smooth (around -2)."""
    is_s = rng.random(n) < s_share
    texture = np.exp(np.where(is_s, -1.2, -2.0) + rng.normal(0, 0.15, n))
    p_s = np.where(is_s, 0.97, 0.02)
    return is_s, texture, p_s


def test_the_ratio_is_learnt_from_the_confident_calls_and_bounded():
    rng = np.random.default_rng(3)
    is_s, texture, p_s = _calls_and_texture(rng)
    llr = texture_log_ratio(texture, p_s)
    assert (llr[is_s] > 0).mean() > 0.99 and (llr[~is_s] < 0).mean() > 0.99
    assert np.abs(llr).max() <= 4.0
    # the same nuclei where the detector hesitates: the texture still speaks for them
    unsure = texture_log_ratio(np.r_[texture, np.exp(-1.2), np.exp(-2.0)], np.r_[p_s, 0.5, 0.5])
    assert unsure[-2] > 2 and unsure[-1] < -2
    assert texture_log_ratio(np.r_[texture, np.nan], np.r_[p_s, 0.5])[-1] == 0.0


def test_smooth_s_calls_weaken_smoothness_as_evidence_against_s_but_not_foci_as_evidence_for_it():
    """A quarter of the confident S calls are smooth (S nuclei whose foci are not yet visible): a smooth
    nucleus then weighs no more than log(1/4) against S, while a grainy one speaks for S as before."""
    rng = np.random.default_rng(6)
    is_s, texture, p_s = _calls_and_texture(rng, n=400)
    clean = texture_log_ratio(texture, p_s)
    smooth_s = is_s & (rng.random(len(is_s)) < 0.25)
    texture_with_hidden_foci = np.where(smooth_s, np.exp(-2.0 + rng.normal(0, 0.15, len(is_s))), texture)
    mixed = texture_log_ratio(texture_with_hidden_foci, p_s)
    smooth = ~is_s
    assert clean[smooth].min() == -4.0  # with no smooth S call, smoothness is strong evidence
    share = smooth_s.sum() / is_s.sum()
    assert mixed[smooth].min() >= np.log(share) - 0.05 and np.median(mixed[smooth]) < np.log(share) + 0.1
    grainy = is_s & ~smooth_s
    assert np.median(mixed[grainy]) > 2 and np.median(mixed[grainy]) > np.median(clean[grainy]) - 0.5


def test_an_unsure_model_still_teaches_the_texture_from_its_surest_calls():
    """A model shown nuclei unlike its training movies calls S at 0.82 at best: the texture is learnt from
    its calls at 0.8 and tells S from not S as it would from calls at 0.9; calls at 0.6 teach nothing."""
    rng = np.random.default_rng(3)
    is_s, texture, _ = _calls_and_texture(rng)
    unsure = np.where(is_s, 0.82, 0.15)
    assert not texture_log_ratio(texture, unsure, confident=(0.9,)).any()  # 0.9 only: nothing learnt
    llr = texture_log_ratio(texture, unsure)
    assert (llr[is_s] > 0).mean() > 0.99 and (llr[~is_s] < 0).mean() > 0.99
    np.testing.assert_allclose(llr, texture_log_ratio(texture, np.where(is_s, 0.97, 0.02)))
    assert not texture_log_ratio(texture, np.where(is_s, 0.6, 0.4)).any()


def test_confident_calls_are_taken_at_the_highest_level_that_gives_enough_of_both():
    assert confidence_levels(0.7) == (0.9, 0.8, 0.7) and confidence_levels(0.9) == (0.9,)
    assert confidence_levels(0.95) == (0.95,) and confidence_levels(0.75) == (0.9, 0.8, 0.75)
    p_s = np.r_[np.full(25, 0.95), np.full(10, 0.03), np.full(15, 0.15), np.full(30, 0.5), np.nan]
    s_calls, other, level = confident_calls(p_s)  # 10 not-S calls at 0.9 are too few; 25 at 0.8
    assert level == 0.8 and s_calls.sum() == 25 and other.sum() == 25 and not s_calls[-1] and not other[-1]
    assert confident_calls(p_s, (0.9,)) is None and confident_calls(p_s, 0.8, min_count=26) is None
    assert confident_calls(np.full(40, 0.5)) is None


@pytest.mark.parametrize("case", ["too few", "S smoother"])
def test_no_texture_term_when_the_movie_cannot_teach_one(case):
    rng = np.random.default_rng(4)
    is_s, texture, p_s = _calls_and_texture(rng, n=30 if case == "too few" else 200)
    if case == "S smoother":
        texture = 1.0 / texture
    assert not texture_log_ratio(texture, p_s).any()


def _population(rng, early_s_frames, texture_weight):
    """30 cells G1 (6) → S (10) → G2 (4); the detector calls the first ``early_s_frames`` S frames G1/G2."""
    phases = ["G1"] * 6 + ["S"] * 10 + ["G2"] * 4
    calls = ["G1/G2"] * 6 + ["G1/G2"] * early_s_frames + ["S"] * (10 - early_s_frames) + ["G1/G2"] * 4
    rows = []
    for cell in range(1, 31):
        grain = np.where(np.array(phases) == "S", -1.2, -2.0) + rng.normal(0, 0.1, len(phases))
        for t, (call, g) in enumerate(zip(calls, grain)):
            probs = {c: 0.05 for c in CLASSES} | {call: 0.9}
            rows.append({"frame": t, "track": cell, "parent": 0, "texture_pcna": np.exp(g),
                         **{f"p_{c}": p for c, p in probs.items()}})
    table = pd.DataFrame(rows)
    resolved = resolve_phases(table, 30.0, texture_evidence=texture_weight, estimate_durations=False,
                              phase_minutes={"G1": 180, "S": 300, "G2": 120, "M": 60})
    return phases, resolved


def test_early_s_the_detector_calls_g1_is_resolved_s_by_its_texture():
    phases, resolved = _population(np.random.default_rng(5), early_s_frames=3, texture_weight=1.0)
    assert (resolved.groupby("track")["phase"].agg(list) == pd.Series([phases] * 30, index=range(1, 31))).all()
    # without the texture, the cells enter S where the detector says so: three frames late
    _, blind = _population(np.random.default_rng(5), early_s_frames=3, texture_weight=0.0)
    assert blind.loc[blind["track"] == 1, "phase"].tolist()[6:9] == ["G1"] * 3


def test_the_ratio_never_turns_back_as_nuclei_get_smoother_or_grainier():
    """Smooth nuclei vary little and S nuclei a lot, so the two Gaussians' ratio is quadratic: held beyond the
    point where it would turn, it never rises as a nucleus gets smoother, nor falls as it gets grainier."""
    rng = np.random.default_rng(7)
    is_s = rng.random(400) < 0.4
    texture = np.exp(np.where(is_s, -1.0 + rng.normal(0, 0.4, 400), -2.0 + rng.normal(0, 0.05, 400)))
    p_s = np.where(is_s, 0.97, 0.02)
    grid = np.exp(np.linspace(-4.0, 1.0, 201))
    llr = texture_log_ratio(np.r_[texture, grid], np.r_[p_s, np.full(len(grid), 0.5)])[len(texture):]
    assert (np.diff(llr) >= -1e-12).all()
    very_smooth = llr[grid < np.exp(-2.5)]
    assert (very_smooth == llr[0]).all() and llr[0] < -2  # as much against S as smooth nuclei, no more
    assert llr[-1] == 4.0


def test_a_little_grain_above_tight_smooth_nuclei_speaks_for_s():
    """Smooth nuclei within 0.05 of each other, S nuclei spread widely: a nucleus 0.25 grainier than the
    smooth ones is far outside them and within S's spread, so it counts for S though it is nearer the
    smooth centre than the S one."""
    rng = np.random.default_rng(8)
    is_s = rng.random(400) < 0.4
    texture = np.exp(np.where(is_s, -1.0 + rng.normal(0, 0.4, 400), -2.0 + rng.normal(0, 0.05, 400)))
    p_s = np.where(is_s, 0.97, 0.02)
    faint = texture_log_ratio(np.r_[texture, np.exp(-1.75)], np.r_[p_s, 0.5])[-1]
    assert faint > 1


def _cells_with_own_grain(rng, cells=40):
    """Each cell's smooth nuclei have their own log texture (between cells sd 0.3, within 0.05): 12 frames
    called G1/G2, then 8 called S (log texture +0.8 over the cell's own, sd 0.3: early, mid and late foci),
    then one faint early-S frame at +0.3 over the cell's own, called G1/G2."""
    rows = []
    for cell in range(1, cells + 1):
        own = -2.0 + rng.normal(0, 0.3)
        for t in range(21):
            grain, p_s = ((own, 0.02) if t < 12 else (own + 0.8 + rng.normal(0, 0.3), 0.97) if t < 20
                          else (own + 0.3, 0.3))
            rows.append({"track": cell, "texture": np.exp(grain + rng.normal(0, 0.05)), "p_s": p_s, "faint": t == 20,
                         "own": own})
    return pd.DataFrame(rows)


def test_faint_foci_are_read_against_the_cells_own_smooth_frames():
    cells = _cells_with_own_grain(np.random.default_rng(9))
    texture, p_s, track = cells["texture"].to_numpy(), cells["p_s"].to_numpy(), cells["track"].to_numpy()
    own = texture_log_ratio(texture, p_s, track)[cells["faint"]]
    movie = texture_log_ratio(texture, p_s)[cells["faint"]]
    assert (own > 0).mean() > 0.75  # nearly every faint frame counts for S against its own cell's G1 ...
    assert (movie > 0).mean() < 0.55  # ... against all cells', those of the smoother cells count against it
    assert np.median(own) > 3 and np.median(movie) < 0


def test_a_track_without_smooth_calls_is_read_against_the_movie():
    """A track with no confident not-S call (999) is read as one whose smooth calls sit at the movie's median
    (500): the same texture gets the same ratio in both."""
    cells = _cells_with_own_grain(np.random.default_rng(10))
    smooth = cells["p_s"] <= 0.1
    median = float(np.median(cells.loc[smooth, "texture"]))  # adding more at the median leaves it there
    at_median = pd.DataFrame({"track": 500, "texture": [median] * 12 + [np.exp(-1.7)], "p_s": [0.02] * 12 + [0.5]})
    alone = pd.DataFrame({"track": 999, "texture": [np.exp(-1.7)], "p_s": [0.5]})
    table = pd.concat([cells, at_median, alone], ignore_index=True)
    llr = texture_log_ratio(table["texture"].to_numpy(), table["p_s"].to_numpy(), table["track"].to_numpy())
    assert llr[-1] == pytest.approx(llr[-2])
    assert llr[-1] != pytest.approx(texture_log_ratio(table["texture"].to_numpy(), table["p_s"].to_numpy())[-1])


def _still_cells(rng, top):
    """30 nuclei standing 60 px apart for 20 frames, G1 (6) → S (10) → G2 (4), the detector's call at ``top``."""
    rows = []
    for cell in range(30):
        for t in range(20):
            phase = "G1/G2" if t < 6 or t >= 16 else "S"
            rest = (1 - top) / 2
            rows.append({"frame": t, "label": cell + 1, "centroid_y": 40.0, "centroid_x": 40.0 + 60 * cell,
                         "area": 300.0, "mean_pcna": 500.0,
                         "texture_pcna": np.exp((-1.2 if phase == "S" else -2.0) + rng.normal(0, 0.1)),
                         **{f"p_{c}": top if c == phase else rest for c in CLASSES}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("top, lowest, texture_from, warned", [
    (0.95, 0.7, 0.9, False), (0.85, 0.7, 0.8, False), (0.85, 0.9, None, True), (0.6, 0.7, None, True)])
def test_run_json_says_how_sure_the_calls_were_and_what_the_texture_was_learnt_from(top, lowest, texture_from,
                                                                                     warned, caplog):
    from pcnacycle.pipeline import analyse
    from pcnacycle.settings import RunSettings

    with caplog.at_level("INFO"):
        _, _, summary = analyse(_still_cells(np.random.default_rng(0), top), 30.0,
                                RunSettings(estimate_durations=False, texture_min_confidence=lowest))
    assert summary["confident_calls_share"] == (1.0 if top >= 0.9 else 0.0)
    assert summary["texture_evidence_from"] == texture_from
    assert ("no second look at S from texture" in caplog.text) == warned
    assert f"{100 * summary['confident_calls_share']:.0f} % of nuclei called with probability ≥ 0.9" in caplog.text
