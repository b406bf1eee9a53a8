"""Phase resolution: the cycle-order HMM on hand-built sequences and on simulated ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcnacycle.errors import PcnacycleError
from pcnacycle.resolve import phase_durations, resolve_phases
from pcnacycle.simulate import CLASSES, PHASES, SimulationParams, simulate_movie

from conftest import FAST

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
    resolved = resolve_phases(one_track(["M", "M", "G1/G2", "G1/G2", "S", "S"], track=2, parent=1), 10.0)
    assert resolved["phase"].tolist() == ["M", "M", "G1", "G1", "S", "S"]


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
