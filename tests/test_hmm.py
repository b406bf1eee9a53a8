"""The cell-cycle HMM's Viterbi against brute force over every stage path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pcnacycle.settings import RunSettings
from pcnacycle.tracking.hmm import StateSpace, viterbi


def dense_transitions(space: StateSpace, evidence: float) -> np.ndarray:
    """(S, S) log score of every stage pair: the best of its edges (a restart's with ``evidence``) and a wrong link."""
    scores = np.where(space.phase[:, None] != space.phase[None, :], space.log_jump, -np.inf)
    for to, slot in zip(*np.nonzero(np.isfinite(space.log_p))):
        edge = space.log_p[to, slot] + (evidence if space.is_restart[to, slot] else 0.0)
        source = space.predecessors[to, slot]
        scores[source, to] = max(scores[source, to], edge)
    return scores


def path_scores(paths, space, emissions, evidence, start, end):
    """Log score of each path (rows of ``paths``) of one track."""
    phases = space.phase[paths]
    total = start[paths[:, 0]] + end[paths[:, -1]]
    total += emissions[np.arange(paths.shape[1]), phases].sum(axis=1)
    for t in range(1, paths.shape[1]):
        total += dense_transitions(space, evidence[t])[paths[:, t - 1], paths[:, t]]
    return total


@pytest.mark.parametrize("cv", [0.7, 1.0])
def test_the_viterbi_path_scores_as_well_as_the_best_of_all_paths(cv):
    # 60-minute frames keep the chains short (14 stages at cv 0.7), so every path of a 4-frame track can be scored
    space = StateSpace(60.0, RunSettings().phase_minutes, RunSettings(phase_duration_cv=cv))
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 5, 40)
    tracks, steps, stages = len(lengths), lengths.max(), len(space.phase)
    # nearly one-hot emissions that ignore the cycle's order, so that wrong links and restarts pay
    emissions = np.log(np.maximum(rng.dirichlet(np.ones(5) * 0.2, size=(tracks, steps)), 1e-12))
    evidence = rng.normal(0, 8, (tracks, steps))
    start = np.where(rng.random((tracks, stages)) < 0.2, -np.inf, 0.0)
    end = np.where(rng.random((tracks, stages)) < 0.2, -np.inf, 0.0)
    found, _ = viterbi(emissions, lengths, start, end, space, evidence)
    for track, length in enumerate(lengths):
        every = np.array(list(itertools.product(range(stages), repeat=int(length))))
        args = (space, emissions[track, :length], evidence[track, :length], start[track], end[track])
        best = path_scores(every, *args).max()
        assert path_scores(found[track, None, :length], *args)[0] == pytest.approx(best, abs=1e-9)
