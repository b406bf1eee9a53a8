"""The hidden Markov model of the cell cycle behind the phase resolver: its states and its Viterbi.

States are the phases G1, S, G2, M and M-exit (the end of mitosis seen in a
daughter right after her birth), each made of one or more stages
(:class:`StateSpace`); :func:`viterbi` finds the most probable stage path of
many tracks at once. :mod:`pcnacycle.tracking.resolve` builds the emissions
and reads the paths.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..settings import RunSettings

__all__ = ["G1", "G2", "M", "M_EXIT", "S", "StateSpace", "viterbi"]

#: The phase states, by index.
G1, S, G2, M, M_EXIT = range(5)
#: Transitions that restart the cycle inside a track: a division the tracker missed.
_RESTARTS = ((G2, G1), (M, M_EXIT), (M, G1))


class StateSpace:
    """The model's states, each phase one or more stages, and the log transitions between them.

    With one memoryless state per phase (a plain HMM) a phase of one frame is
    the likeliest length of all, so any short run of wrong calls can become a
    phase. Here most cells pass G1, S and G2 through a chain of stages that
    each last one frame, then one memoryless stage: the phase lasts at least
    ``(1 - cv)`` of its expected duration and varies by about ``cv`` of it
    (``phase_duration_cv``; 1 is the plain HMM). In the other
    ``atypical_duration_share`` of the cells the phase is one memoryless stage
    of the same mean, so a short phase stays possible where the evidence asks
    for it, at the cost of ``log`` of that share. Each duration is one path
    through the stages, so the best path's probability is the duration's
    (unlike a chain of several memoryless stages, whose Erlang durations the
    Viterbi path would underrate). M and M-exit, seen in few frames, keep one
    stage.

    Attributes
    ----------
    phase : (n_states,) int
        The phase state (``G1`` … ``M_EXIT``) of each stage.
    log_entry : (n_states,) float
        Log chance of entering the phase at this stage (-inf for a chain's later stages).
    exits : list of 5 int arrays
        The stages each phase state is left from.
    slices : list of 5 slices
        The (contiguous) stages of each phase state.
    predecessors, log_p, is_restart : (n_states, k) int, float, bool
        The edges into each stage: where from, their log probability (-inf pads; a restart's holds its
        prior, before evidence) and whether they restart the cycle inside a track (a division the
        tracker missed). Besides these, a wrong link (``log_jump``) leads from any stage to any stage
        of another phase.
    restarts : (n_states, n_states) bool
        The stage pairs that restart the cycle.
    """

    def __init__(self, frame_interval: float, phase_minutes: Mapping[str, float], settings: RunSettings):
        minutes = [phase_minutes["G1"], phase_minutes["S"], phase_minutes["G2"], phase_minutes["M"],
                   phase_minutes["M"] / 2]
        share = settings.atypical_duration_share
        # per stage: its phase state, its chance to leave per frame (1: a chain stage, left after one frame),
        # and the log chance of entering the phase there
        phase, leave, log_entry, exits = [], [], [], []

        def memoryless(state: int, mean_frames: float, log_weight: float) -> int:
            # a constant chance to leave per frame makes a stay of 1 / chance frames on average (the chance
            # capped at one half, so that staying is never the less likely choice)
            phase.append(state)
            leave.append(min(1 / max(mean_frames, 1.0), 0.5))
            log_entry.append(log_weight)
            return len(phase) - 1

        for state, m in enumerate(minutes):
            frames = m / frame_interval
            chain = int((1 - settings.phase_duration_cv) * frames) if state in (G1, S, G2) else 0
            if chain == 0:
                exits.append(np.array([memoryless(state, frames, 0.0)]))
                continue
            for step in range(chain):  # one frame each, in order
                phase.append(state)
                leave.append(1.0)
                log_entry.append(math.log1p(-share) if step == 0 else -np.inf)
            typical = memoryless(state, frames - chain, -np.inf)
            atypical = memoryless(state, frames, math.log(share))
            exits.append(np.array([typical, atypical]))
        self.phase, self.log_entry, self.exits = np.array(phase), np.array(log_entry), exits
        starts = np.searchsorted(self.phase, np.arange(6))  # the stages of a phase are contiguous
        self.slices = [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]
        # a wrong link lands on any stage of another phase (each stage of each other phase counts it once,
        # a negligible excess of probability mass)
        self.log_jump = math.log(settings.jump_probability)
        edges = []  # (from, to, log p, restarts the cycle)
        for stage, chance in enumerate(leave):
            if chance < 1:
                edges.append((stage, stage, math.log1p(-chance - 4 * settings.jump_probability), False))
            else:  # a chain stage moves on to the next stage after one frame
                edges.append((stage, stage + 1, math.log1p(-4 * settings.jump_probability), False))
        # Leaving G2 goes to M, or with mitosis_skip straight to a restart; leaving M inside a track can only be
        # a restart, into M-exit or G1. A restart also needs the tracker to have missed the division
        # (missed_division); otherwise the track would have ended there.
        skip, missed = settings.mitosis_skip, settings.missed_division
        moves = {(G1, S): 1.0, (S, G2): 1.0, (G2, M): 1 - skip, (G2, G1): skip * missed,
                 (M, M_EXIT): missed / 2, (M, G1): missed / 2, (M_EXIT, G1): 1.0}
        entries = [np.flatnonzero((self.phase == state) & np.isfinite(self.log_entry)) for state in range(5)]
        for (a, b), weight in moves.items():
            for exit_stage in self.exits[a]:
                for entry in entries[b]:
                    edges.append((exit_stage, entry, math.log(leave[exit_stage] * weight) + self.log_entry[entry],
                                  (a, b) in _RESTARTS))
        # the edges into each stage, padded to the largest count with impossible ones
        into = [[e for e in edges if e[1] == stage] for stage in range(len(phase))]
        width = max(map(len, into))
        self.predecessors = np.zeros((len(phase), width), np.int64)
        self.log_p = np.full((len(phase), width), -np.inf)
        self.is_restart = np.zeros((len(phase), width), bool)
        for stage, incoming in enumerate(into):
            for k, (a, _, log_p, restart) in enumerate(incoming):
                self.predecessors[stage, k], self.log_p[stage, k], self.is_restart[stage, k] = a, log_p, restart
        self.log_restart_max = float(self.log_p[self.is_restart].max())
        self.restarts = np.zeros((len(phase), len(phase)), bool)
        to, slot = np.nonzero(self.is_restart)
        self.restarts[self.predecessors[to, slot], to] = True


def viterbi(log_emissions: np.ndarray, lengths: np.ndarray, log_start: np.ndarray, log_end: np.ndarray,
             space: StateSpace, restart_evidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most probable stage paths of many tracks at once.

    Parameters
    ----------
    log_emissions : (n, L, 5) float
        Per track, time step and phase state (every stage of a phase is seen alike); steps past a
        track's length are ignored.
    lengths : (n,) int ≥ 1
    log_start, log_end : (n, S) float
        Log prior of the first and last stage (-inf forbids it).
    space : StateSpace
        The S stages and the transitions between them: the sparse edges of a cell's course, and wrong
        links from any stage to any stage of another phase.
    restart_evidence : (n, L) float
        Log-likelihood ratio of a division between step t-1 and t, added to the restart transitions.

    Returns
    -------
    path : (n, L) int64
        The stage of each step (steps past a track's length repeat its last stage).
    jumped : (n, L) bool
        The step was reached by a wrong link.
    """
    n, steps, _ = log_emissions.shape
    stages = len(space.phase)
    score = log_start + log_emissions[:, 0][:, space.phase]
    back = np.empty((n, steps, stages), np.int16 if stages < 2 ** 15 else np.int64)
    back[:] = np.arange(stages)  # a finished track stays in its stage
    jumps = np.zeros((n, steps, stages), bool)
    restart_to, restart_slot = np.nonzero(space.is_restart)
    other_phase = ~np.eye(5, dtype=bool)
    # longest tracks first, so that the tracks still running at step t are the first ones
    order = np.argsort(-lengths, kind="stable")
    running = np.searchsorted(-lengths[order], -np.arange(steps), side="left")  # tracks longer than t
    for t in range(1, steps):
        alive = order[:running[t]]
        now = score[alive]
        candidates = now[:, space.predecessors] + space.log_p  # (alive, to, incoming)
        candidates[:, restart_to, restart_slot] += restart_evidence[alive, t, None]
        pick = candidates.argmax(axis=2)
        best = np.take_along_axis(candidates, pick[..., None], 2)[..., 0]
        came_from = space.predecessors[np.arange(stages), pick]
        # a wrong link comes from the best stage of another phase
        top_stage = np.stack([now[:, part].argmax(axis=1) + part.start for part in space.slices], axis=1)
        top = np.take_along_axis(now, top_stage, 1)  # (alive, 5): the best score in each phase
        source = np.where(other_phase[None], top[:, None, :], -np.inf).argmax(axis=2)  # (alive, 5 targets)
        link = (np.take_along_axis(top, source, 1) + space.log_jump)[:, space.phase]
        jumped = link > best
        back[alive, t] = np.where(jumped, np.take_along_axis(top_stage, source, 1)[:, space.phase], came_from)
        jumps[alive, t] = jumped
        score[alive] = np.where(jumped, link, best) + log_emissions[alive, t][:, space.phase]
    path = np.empty((n, steps), np.int64)
    path[:, -1] = (score + log_end).argmax(axis=1)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = np.take_along_axis(back[:, t], path[:, t, None], 1)[:, 0]
    return path, np.take_along_axis(jumps, path[..., None], 2)[..., 0]
