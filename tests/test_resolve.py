"""Phase resolution: the cycle-order HMM on hand-built sequences and on simulated ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import FAST
from pcnacycle.errors import PcnacycleError
from pcnacycle.phases import CLASSES, PHASES
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie
from pcnacycle.tracking.resolve import phase_durations, resolve_phases

FAST_MINUTES = dict(G1=60.0, S=80.0, G2=40.0, M=30.0)
FRAMES = [f"{p}_frames" for p in PHASES]


def with_class_probs(objects, calls, confidence=1.0):
    """``objects`` with p_<class> columns putting ``confidence`` on each row's call, the rest spread."""
    probs = np.full((len(objects), len(CLASSES)), (1 - confidence) / (len(CLASSES) - 1))
    probs[np.arange(len(objects)), [CLASSES.index(c) for c in calls]] = confidence
    return objects.assign(**{f"p_{c}": probs[:, k] for k, c in enumerate(CLASSES)})


def one_track(calls, track=1, parent=0, first_frame=0, confidence=0.9):
    frames = np.arange(first_frame, first_frame + len(calls))
    table = pd.DataFrame(dict(frame=frames, track=track, parent=parent))
    return with_class_probs(table, calls, confidence)


# 5 G1/G2, 4 S, 3 G1/G2, 2 M, with a wrong call inside G1 and inside S (a wrong call next to a
# phase boundary, e.g. in the middle of a 3-frame G2, fits a shifted boundary just as well)
NOISY = ["G1/G2", "S", "G1/G2", "G1/G2", "G1/G2", "S", "S", "G1/G2", "S", "G1/G2", "G1/G2", "G1/G2", "M", "M"]


def test_a_noisy_sequence_gives_the_true_phases_and_durations():
    daughters = pd.concat([one_track(["G1/G2"] * 3, track=t, parent=1, first_frame=14) for t in (2, 3)])
    objects = pd.concat([one_track(NOISY), daughters], ignore_index=True)
    resolved = resolve_phases(objects, frame_interval=10.0, phase_minutes=FAST_MINUTES)
    mother = resolved[resolved["track"] == 1]
    assert mother["phase"].tolist() == ["G1"] * 5 + ["S"] * 4 + ["G2"] * 3 + ["M"] * 2
    assert (resolved.loc[resolved["track"] > 1, "phase"] == "G1").all()
    durations = phase_durations(resolved, frame_interval=10.0).set_index("track")
    assert durations.loc[1, FRAMES].tolist() == [5, 4, 3, 2]
    assert durations.loc[1, [f"{p}_minutes" for p in PHASES]].tolist() == [50.0, 40.0, 30.0, 20.0]
    assert durations.loc[1, "cut_start"] and not durations.loc[1, "cut_end"]
    assert durations.loc[1, ["G1_cut", "S_cut", "G2_cut", "M_cut"]].tolist() == [True, False, False, False]
    assert not durations.loc[2, "cut_start"] and durations.loc[2, "cut_end"] and durations.loc[2, "G1_cut"]
    assert durations["lineage"].tolist() == [1, 1, 1] and (durations["arrested"] == "").all()


def test_a_daughter_born_in_telophase_starts_in_m_then_g1():
    # (three S calls: a G1 of 20 minutes against 11 hours expected needs more than two; see the next test)
    resolved = resolve_phases(one_track(["M", "M", "G1/G2", "G1/G2", "S", "S", "S"], track=2, parent=1), 10.0)
    assert resolved["phase"].tolist() == ["M", "M", "G1", "G1", "S", "S", "S"]


@pytest.mark.parametrize("after_birth", [2, 12])
def test_a_short_run_of_wrong_calls_makes_no_phase_but_sustained_evidence_does(after_birth):
    # A daughter's G1 is expected to last 11 hours (66 frames): two S calls after it are a chance run, not an
    # S phase, however soon after birth they come; five are S. Memoryless durations (cv 1) take the two.
    def calls(s_frames):
        return one_track(["G1/G2"] * after_birth + ["S"] * s_frames, track=2, parent=1)

    two = resolve_phases(calls(2), 10.0)["phase"].tolist()
    assert two == ["G1"] * (after_birth + 2)
    assert resolve_phases(calls(5), 10.0)["phase"].tolist() == ["G1"] * after_birth + ["S"] * 5
    memoryless = resolve_phases(calls(2), 10.0, phase_duration_cv=1.0)["phase"].tolist()
    assert memoryless == ["G1"] * after_birth + ["S"] * 2


def test_a_division_the_mother_is_not_ready_for_is_undone():
    # The tracker gave track 1, born in G1 (of track 7) and in G1 throughout, two daughters: a new nucleus
    # appeared beside her. A cell divides after G2, so the division is false: the nearer "daughter" goes on as
    # track 1, the other has no parent. A mother seen through S keeps hers (mitosis_skip: no M call needed).
    def table(mother_calls):
        mother = one_track(mother_calls, parent=7).assign(centroid_y=20.0, centroid_x=20.0)
        near = one_track(["G1/G2"] * 6, track=2, parent=1, first_frame=len(mother_calls)).assign(
            centroid_y=21.0, centroid_x=20.0)
        far = one_track(["G1/G2"] * 6, track=3, parent=1, first_frame=len(mother_calls)).assign(
            centroid_y=20.0, centroid_x=32.0)
        return pd.concat([mother, near, far], ignore_index=True)

    false = resolve_phases(table(["G1/G2"] * 12), 10.0, phase_minutes=FAST_MINUTES)
    assert false.attrs["divisions_undone"] == 1
    assert false.groupby("track")["parent"].first().to_dict() == {1: 7, 3: 0}
    assert (false["track"] == 1).sum() == 18 and (false.loc[false["track"] == 1, "phase"] == "G1").all()

    true = resolve_phases(table(["G1/G2"] * 3 + ["S"] * 6 + ["G1/G2"] * 3), 10.0, phase_minutes=FAST_MINUTES)
    assert true.attrs["divisions_undone"] == 0
    assert true.groupby("track")["parent"].first().to_dict() == {1: 7, 2: 1, 3: 1}
    assert true.loc[true["track"] == 1, "phase"].tolist()[-3:] == ["G2"] * 3

    user_set = resolve_phases(table(["G1/G2"] * 12).assign(frozen=lambda t: t["track"] == 3), 10.0,
                              phase_minutes=FAST_MINUTES, frozen_column="frozen")
    assert user_set.attrs["divisions_undone"] == 0
    assert user_set.groupby("track")["parent"].first().to_dict() == {1: 7, 2: 1, 3: 1}


def test_gaps_count_in_the_phase_that_spans_them():
    calls = one_track(["G1/G2", "G1/G2", "S", "S", "G1/G2"], confidence=0.99)
    gapped = calls.assign(frame=[0, 1, 4, 5, 6])  # frames 2 and 3 missed, between G1 and S
    durations = phase_durations(resolve_phases(gapped, 10.0, phase_minutes=FAST_MINUTES), 10.0)
    assert durations[FRAMES].values.tolist() == [[4, 2, 1, 0]]


@pytest.fixture(scope="module")
def movie():
    return simulate_movie(SimulationParams(frames=40, size=(128, 128), cells=8, seed=1, **FAST))


def test_true_classes_of_a_simulation_give_its_phases_and_durations(movie):
    objects = with_class_probs(movie.objects.drop(columns="phase"), movie.objects["class"])
    resolved = resolve_phases(objects, movie.params.frame_interval, phase_minutes=FAST_MINUTES)
    np.testing.assert_array_equal(resolved["phase"], movie.objects["phase"])
    ours = phase_durations(resolved, movie.params.frame_interval)
    truth = movie.durations
    assert ours["track"].tolist() == truth["track"].tolist()
    columns = ["parent", *FRAMES, *[f"{p}_minutes" for p in PHASES], "cut_start", "arrested"]
    pd.testing.assert_frame_equal(ours[columns], truth[columns], check_dtype=False)
    # the simulator knows when a phase ends exactly at the last frame; we cannot, so we may flag more
    assert (ours["cut_end"] | ~truth["cut_end"]).all()


def test_arrested_cells_are_found_and_mostly_placed_by_brightness():
    # 30-min frames: a whole cycle in about 40 frames, daughters recover their brightness within G1
    movie = simulate_movie(SimulationParams(frames=40, size=(128, 128), cells=12, seed=2, frame_interval=30.0,
                                            arrested_fraction=0.4))
    objects = with_class_probs(movie.objects.drop(columns="phase"), movie.objects["class"])
    durations = phase_durations(resolve_phases(objects, 30.0), 30.0).set_index("track")
    truth = movie.durations.set_index("track")
    arrested = truth.index[truth["arrested"] != ""]
    assert len(arrested) >= 4
    assert ((durations["arrested"] != "") == (truth["arrested"] != "")).all()
    assert (durations.loc[arrested, "arrested"] == truth.loc[arrested, "arrested"]).mean() >= 0.75


def test_single_frame_whole_movie_cells_and_no_cells():
    single = resolve_phases(one_track(["S"]), 10.0)
    assert single["phase"].tolist() == ["S"]
    always = one_track(["G1/G2"] * 6, confidence=1.0).assign(mean_pcna=100.0)
    durations = phase_durations(resolve_phases(always, 10.0), 10.0)
    assert durations["G1_frames"].tolist() == [6] and durations["arrested"].tolist() == ["G1"]
    empty = resolve_phases(one_track([]), 10.0)
    assert len(empty) == 0 and "phase" in empty.columns
    assert len(phase_durations(empty, 10.0)) == 0


def test_bad_input_raises_a_clear_error():
    objects = one_track(["G1/G2", "S"])
    with pytest.raises(PcnacycleError, match="p_S"):
        resolve_phases(objects.drop(columns="p_S"), 10.0)
    with pytest.raises(PcnacycleError, match="frame_interval"):
        resolve_phases(objects, -5.0)
    with pytest.raises(PcnacycleError, match="frame_interval"):
        phase_durations(resolve_phases(objects, 10.0), 0)
    with pytest.raises(PcnacycleError, match="phase"):
        phase_durations(objects, 10.0)


def test_a_division_missed_inside_a_track_restarts_the_cycle_and_links_both_daughters():
    # one cell seen G1, S, G2, then the tracker followed one daughter on: G1 again and S
    calls = ["G1/G2"] * 4 + ["S"] * 6 + ["G1/G2"] * 3 + ["G1/G2"] * 8 + ["S"] * 4
    cell = one_track(calls, confidence=0.95).assign(area=[100.0 + 6 * t for t in range(13)] + [70.0] * 12,
                                                    centroid_y=50.0, centroid_x=50.0)
    sister = one_track(["G1/G2"] * 12, track=2, first_frame=13, confidence=0.95).assign(
        area=70.0, centroid_y=62.0, centroid_x=50.0)
    resolved = resolve_phases(pd.concat([cell, sister], ignore_index=True), 30.0, division_distance=30.0)
    assert resolved["phase"].tolist()[:25] == ["G1"] * 4 + ["S"] * 6 + ["G2"] * 3 + ["G1"] * 8 + ["S"] * 4
    mother = resolved.loc[resolved["frame"] < 13, "track"].unique().tolist()
    daughters = resolved.loc[resolved["frame"] >= 13].groupby("track")["parent"].first()
    assert mother == [1] and len(daughters) == 2 and (daughters == 1).all()
    assert resolved.attrs["divisions_inferred"] == 1
    # up to the second S, without a drop in area or a sister: nothing says the cell divided, so it stays one
    # cell, in G2 after S
    steady = resolve_phases(cell.iloc[:21].assign(area=100.0), 30.0)
    assert steady["track"].nunique() == 1 and steady["phase"].tolist()[10:] == ["G2"] * 11


def test_a_missed_division_is_cut_where_the_nucleus_shrinks_not_a_frame_before():
    # no sister in sight: only the area says where the cell divided (as a 30-minute movie showed it: the
    # mother's last frame 860 px, her daughter 381 px, then 227). The two frames after the division would
    # outvote the mother's last one in a median of three, which used to cut the track a frame early and give
    # the daughter her mother's last G2 frame as G1.
    calls = ["G1/G2"] * 8 + ["S"] * 8 + ["G1/G2"] * 11
    area = [550.0] * 8 + [750.0] * 8 + [831, 774, 862, 880, 935, 882, 860] + [381, 227, 240, 260]
    cell = one_track(calls, confidence=0.85).assign(area=np.array(area, float), centroid_y=50.0, centroid_x=50.0)
    resolved = resolve_phases(cell, 30.0, division_distance=40.0)
    assert resolved.attrs["divisions_inferred"] == 1
    mother = resolved[resolved["track"] == 1]
    assert mother["frame"].max() == 22 and mother["phase"].iloc[-1] == "G2"
    daughter = resolved[resolved["parent"] == 1]
    assert daughter["frame"].min() == 23 and daughter["phase"].iloc[0] == "G1"


def test_division_evidence_peaks_at_the_first_small_frame_and_ignores_a_one_frame_dip():
    from pcnacycle.settings import RunSettings
    from pcnacycle.tracking.divisions import division_evidence_in_tracks

    # the mother's last frame 95, the daughter 45, then smaller still: the step is at the 45
    table = pd.DataFrame(dict(frame=np.arange(12), track=1, parent=0,
                              area=[100.0] * 5 + [95.0, 45.0, 30.0, 30.0, 30.0, 30.0, 30.0]))
    evidence = division_evidence_in_tracks(table, RunSettings(sister_evidence=0))
    assert np.argmax(evidence) == 6 and evidence[5] < 0 and evidence[7] < evidence[6]
    dip = table.assign(area=[100.0] * 6 + [45.0] + [100.0] * 5)  # a nucleus cut in two for one frame
    assert (division_evidence_in_tracks(dip, RunSettings(sister_evidence=0))[1:] < 0).all()


def test_a_nucleus_first_seen_as_a_fragment_is_not_taken_for_a_division():
    # the detector saw a piece of the nucleus in its first frame (a quarter of its area), then all of it:
    # a nucleus growing is no daughter, so the track stays one cell, in G1 from its first frame
    calls = ["G1/G2"] * 14 + ["S"] * 8 + ["G1/G2"] * 4
    cell = one_track(calls, confidence=0.95).assign(area=[70.0] + [250.0] * 25, centroid_y=50.0, centroid_x=50.0)
    resolved = resolve_phases(cell, 20.0, division_distance=30.0)
    assert resolved["track"].nunique() == 1 and resolved.attrs["divisions_inferred"] == 0
    assert resolved["phase"].tolist()[:2] == ["G1", "G1"]


@pytest.mark.parametrize("factor", [0.5, 1.5])
@pytest.mark.parametrize("estimate", [True, False])
def test_priors_half_or_one_and_a_half_times_off_still_resolve_a_known_sequence(factor, estimate):
    daughters = pd.concat([one_track(["G1/G2"] * 3, track=t, parent=1, first_frame=14) for t in (2, 3)])
    objects = pd.concat([one_track(NOISY), daughters], ignore_index=True)
    wrong = {p: m * factor for p, m in FAST_MINUTES.items()}
    resolved = resolve_phases(objects, 10.0, phase_minutes=wrong, estimate_durations=estimate)
    mother = resolved[resolved["track"] == 1]
    assert mother["phase"].tolist() == ["G1"] * 5 + ["S"] * 4 + ["G2"] * 3 + ["M"] * 2


def test_a_confident_call_is_not_overridden_by_the_track_history():
    # S, a wrong link into a G1 cell (no division evidence), then a long confident G1/G2 run and S again:
    # the forward-only order would force the last S frames into G2 or the first ones into G1
    calls = ["S"] * 8 + ["G1/G2"] * 12 + ["S"] * 8
    resolved = resolve_phases(one_track(calls, confidence=0.99), 30.0)
    assert resolved["phase"].tolist()[:8] == ["S"] * 8 and resolved["phase"].tolist()[-8:] == ["S"] * 8


def test_a_mother_without_m_evidence_gets_no_invented_m_frames():
    calls = ["G1/G2"] * 3 + ["S"] * 4 + ["G1/G2"] * 3
    mother = one_track(calls, confidence=0.95).assign(p_M=0.0)
    daughters = pd.concat([one_track(["G1/G2"] * 3, track=t, parent=1, first_frame=10) for t in (2, 3)])
    resolved = resolve_phases(pd.concat([mother, daughters], ignore_index=True), 10.0, phase_minutes=FAST_MINUTES)
    assert resolved.loc[resolved["track"] == 1, "phase"].tolist() == ["G1"] * 3 + ["S"] * 4 + ["G2"] * 3
    assert phase_durations(resolved, 10.0).set_index("track").at[1, "M_frames"] == 0


def test_durations_are_estimated_from_the_movie():
    movie = simulate_movie(SimulationParams(frames=60, size=(160, 160), cells=10, seed=4, **FAST))
    objects = with_class_probs(movie.objects.drop(columns="phase"), movie.objects["class"], confidence=0.9)
    far_off = {"G1": 150.0, "S": 30.0, "G2": 100.0, "M": 30.0}  # 2.5 times too long, 2.7 times too short
    resolved = resolve_phases(objects, 10.0, phase_minutes=far_off)
    used = resolved.attrs["phase_minutes"]
    assert abs(used["S"] - 80) <= 20 and abs(used["G1"] - 60) <= 30 and abs(used["G2"] - 40) <= 20
    assert (resolved["phase"] == movie.objects["phase"]).mean() >= 0.95


def test_bad_settings_are_refused_by_name():
    objects = one_track(["G1/G2", "S"])
    with pytest.raises(PcnacycleError, match="phase_minutes.G1"):
        resolve_phases(objects, 10.0, phase_minutes={"G1": -3})
    with pytest.raises(PcnacycleError, match="unknown phase"):
        resolve_phases(objects, 10.0, phase_minutes={"G3": 30})
    with pytest.raises(PcnacycleError, match="mitosis_skip"):
        resolve_phases(objects, 10.0, mitosis_skip=1.0)
    with pytest.raises(PcnacycleError, match="unknown run setting"):
        resolve_phases(objects, 10.0, phase_minute={"G1": 30})


def mitoses_in_a_row(cells=8, onset_p_m=0.12, seed=0):
    """``cells`` mothers seen G1, S, G2, then one frame of M the detector misses (p_M ``onset_p_m``, its
    call G1/G2) and three it calls M, each dividing into two daughters; every cell's interphase p_M at a
    level of its own (0.001 to 0.02, with noise)."""
    rng = np.random.default_rng(seed)
    tables, next_track = [], 1
    for _ in range(cells):
        calls = ["G1/G2"] * 6 + ["S"] * 6 + ["G1/G2"] * 4 + ["G1/G2"] + ["M"] * 3
        mother = one_track(calls, track=next_track, confidence=0.9)
        level = rng.uniform(0.001, 0.02)
        p_m = np.clip(level * np.exp(rng.normal(0, 0.3, len(calls))), 1e-4, None)
        p_m[16], p_m[17:] = onset_p_m, 0.95
        mother["p_M"] = p_m
        rest = mother[["p_G1/G2", "p_S"]].sum(axis=1).to_numpy()
        mother["p_G1/G2"] *= (1 - p_m) / rest
        mother["p_S"] *= (1 - p_m) / rest
        daughters = [one_track(["G1/G2"] * 4, track=next_track + k, parent=next_track, first_frame=len(calls))
                     for k in (1, 2)]
        tables += [mother, *daughters]
        next_track += 3
    return pd.concat(tables, ignore_index=True)


def test_m_probability_read_against_the_cells_own_level_finds_the_first_m_frame():
    from pcnacycle.tracking.evidence import mitosis_log_ratio

    cells = mitoses_in_a_row()
    evidence = mitosis_log_ratio(cells["p_M"].to_numpy(), cells["track"].to_numpy(), cells["frame"].to_numpy())
    mothers = cells["parent"] == 0
    onset = mothers & (cells["frame"] == 16)
    interphase = mothers & cells["frame"].between(1, 15)
    assert (evidence[onset] > 0).all() and np.median(evidence[interphase]) < 0
    assert (evidence[cells.groupby("track").cumcount().to_numpy() == 0] == 0).all()  # nothing before to rise from
    # the missed first M frame: G2 from the detector's probability alone, M when read against the cell's level
    for weight, phase in ((0.0, "G2"), (1.0, "M")):
        resolved = resolve_phases(cells, 10.0, phase_minutes=FAST_MINUTES, mitosis_evidence=weight)
        first_m = resolved[(resolved["parent"] == 0) & (resolved["frame"] == 16)]["phase"]
        assert (first_m == phase).all(), (weight, first_m.tolist())


def test_m_probability_that_never_leaves_the_cells_level_gives_no_m():
    # the same cells without the rise: the frame before M sits at the cell's level, and stays G2
    cells = mitoses_in_a_row(onset_p_m=0.005)
    resolved = resolve_phases(cells, 10.0, phase_minutes=FAST_MINUTES, mitosis_evidence=1.0)
    assert (resolved[(resolved["parent"] == 0) & (resolved["frame"] == 16)]["phase"] == "G2").all()
