"""Synthetic PCNA time-lapse movies with exact ground truth.

No annotated PCNA movie is public, so the simulator provides both the training
data (``annotated/``) and the answer key for every pipeline stage
(``truth/``): segmentation, phase calls, tracks and phase durations.

Model
-----
Every cell is a state machine G1 → S → G2 → M → division. Phase durations are
drawn per cell (log-normal, minutes) and rounded to whole frames, at least one
frame each, so every phase a cell passes through is seen. Founder cells start
at a random point of their cycle; an optional fraction of them is arrested
(stays in G1, or stays in G2, for the whole movie).

Nuclei are slightly irregular ellipses: an elliptic norm divided by a smooth
radial modulation ``1 + Re(sum_k c_k exp(i k phi))`` (k = 2, 3, 4). They drift
(persistent random walk), turn, grow through interphase, and push each other
apart (soft pairwise repulsion) so that they touch but rarely overlap; any
residual overlap goes to the nucleus whose normalised radius is smaller there,
which keeps each nucleus's centre its own. Cells are kept inside the field of
view, so tracks end only at division or at the end of the movie.

Appearance (PCNA channel): G1 uniform and moderate with faint texture and dark
nucleoli; S with replication foci whose pattern evolves (early: many small foci
throughout, mid: along the rim and around nucleoli, late: few large clumps);
G2 uniform and brighter; M a dim, larger, rounded cell with a dark chromosome
plate that splits in anaphase; daughters start small and dim in G1. DIC: relief
shading of a cell height map on a textured background, mitotic cells round and
tall with a bright rim. Both channels go through a camera model: uneven
illumination, defocus blur, photobleaching (PCNA), Poisson shot noise,
Gaussian read noise and a camera offset, optional stage jitter.

Each cell is rendered only inside its bounding box, so the cost scales with the
number of cells, not with cells × frame size.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import PcnacycleError
from ..io import MANIFEST_KEY, files_under, remove_outputs, write_json
from ..phases import PHASE_CLASS, PHASES
from .cells import _Cell
from .foci import _update_foci
from .lifecycle import _advance, _founders
from .motion import _move, _separate
from .params import Movie, SimulationParams, _check_annotated_frames
from .render import _background_height, _camera, _debris, _dic_photons, _illumination, _pcna_photons, _render
from .truth import _measure, _track_tables
from .writers import ANNOTATED_FRAMES, _check_output, _check_room, _prepare_output, pool_annotated, write_movie


def simulate_movie(params: SimulationParams, *, progress: bool = False) -> Movie:
    """Simulate a movie in memory.

    Parameters
    ----------
    params : SimulationParams
        Checked first; an impossible value raises :class:`PcnacycleError`.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Movie
        Images ``(T, H, W)`` uint16 and the ground-truth tables.
    """
    params.validate()
    # a fifth stream for what older movies lacked keeps their first four draws, hence their pixels
    streams = np.random.SeedSequence(params.seed).spawn(5)
    cell_rng, render_rng, noise_rng, field_rng, debris_rng = (np.random.default_rng(s) for s in streams)
    frames, shape = params.frames, tuple(params.size)
    pad = int(math.ceil(3 * params.jitter)) + 1
    illumination = _illumination(shape, params.illumination_falloff, field_rng)
    dic_illumination = _illumination(shape, params.illumination_falloff / 3, field_rng)
    background = _background_height(shape, pad, field_rng)
    debris = _debris(shape, params, debris_rng)
    offsets = np.clip(field_rng.normal(0, params.jitter, (frames, 2)), -3 * params.jitter, 3 * params.jitter)
    grid = tuple(g.ravel().astype(np.float64) for g in np.indices(shape))

    pcna = np.empty((frames, *shape), np.uint16)
    dic = np.empty((frames, *shape), np.uint16)
    labels = np.empty((frames, *shape), np.uint16)
    objects = []
    cells = _founders(params, cell_rng)
    finished: list[_Cell] = []
    next_track = len(cells) + 1
    for t in tqdm(range(frames), desc="simulating", unit="frame", disable=not progress):
        if t > 0:
            cells, ended, next_track = _advance(cells, t - 1, next_track, params, cell_rng)
            finished += ended
            _move(cells, params, cell_rng)
        _separate(cells, params, cell_rng)
        for cell in cells:
            _update_foci(cell, params, cell_rng)
            cell.phase_frames[cell.phase] += 1
        frame = _render(cells, params, offsets[t], render_rng)
        labels[t] = frame.labels
        pcna[t] = _camera(_pcna_photons(frame, params, illumination, t, debris), params, noise_rng)
        shift = np.round(offsets[t]).astype(int) + pad
        dic_background = background[shift[0]: shift[0] + shape[0], shift[1]: shift[1] + shape[1]]
        dic[t] = _camera(_dic_photons(frame, params, dic_illumination, dic_background), params, noise_rng)
        ids = np.array([c.track for c in cells])
        measured = _measure(labels[t], pcna[t], ids, grid)
        phases = [PHASES[c.phase] for c in cells]
        objects.append(pd.DataFrame({
            "frame": t, "track": ids, "parent": [c.parent for c in cells], "phase": phases,
            "class": [PHASE_CLASS[p] for p in phases], **measured,
        }))
    for cell in cells:
        cell.last_frame = frames - 1
    tracks, durations = _track_tables(finished + cells, params)
    objects = pd.concat(objects, ignore_index=True).sort_values(["frame", "track"], ignore_index=True)
    return Movie(params, pcna, dic, labels, objects, tracks, durations)


def simulate(output, *, frames=60, size=(512, 512), cells=40, seed=0, frame_interval=10.0,
             annotated_frames=None, jitter=0.0, arrested_fraction=0.0, overwrite=False, progress=True,
             randomise=False, **params) -> Path:
    """Simulate a PCNA movie with ground truth and write it to ``output``.

    Parameters are those of :class:`SimulationParams` (any of its fields may
    be given, e.g. ``m_minutes=(104, 10)``; the others keep their defaults);
    ``annotated_frames`` frames (default 25, or every frame of a shorter
    movie) go to ``annotated/`` for training. Every
    argument is checked, and the output folder too, before any work.
    ``randomise`` (True, or a
    :class:`~pcnacycle.simulation.randomise.RandomisationRanges`) draws the
    movie's appearance from ranges that span real microscopes, seeded by
    ``seed``; ``simulation.json`` records the ranges and the drawn values.

    Returns
    -------
    pathlib.Path
        The output folder.
    """
    known = {f.name for f in fields(SimulationParams)}
    if set(params) - known:
        raise PcnacycleError(f"unknown simulation parameter(s) {sorted(set(params) - known)}")
    params = SimulationParams(frames=frames, size=size, cells=cells,
                              seed=seed, frame_interval=frame_interval, jitter=jitter,
                              arrested_fraction=arrested_fraction, **params)
    params.validate()
    randomisation = None
    if randomise:
        from .randomise import RandomisationRanges, draw_params, ranges_used

        ranges = randomise if isinstance(randomise, RandomisationRanges) else RandomisationRanges()
        randomisation = {"ranges": ranges_used(ranges, params)}
        params, randomisation["drawn"] = draw_params(params, ranges)
    annotated_frames = min(ANNOTATED_FRAMES, frames) if annotated_frames is None else annotated_frames
    _check_annotated_frames(annotated_frames, frames)
    output = Path(output)
    _check_output(output, overwrite)
    _check_room(output, params)
    movie = simulate_movie(params, progress=progress)
    movie.randomisation = randomisation
    return write_movie(movie, output, annotated_frames=annotated_frames, overwrite=overwrite)


#: Written last in a folder of several movies, listing every file written: its presence marks a complete set.
SET_MARKER = "movies.json"


def simulate_movies(output, movies: int, *, seed: int = 0, overwrite: bool = False, progress: bool = True,
                    **kwargs) -> Path:
    """Several movies, and their annotated frames pooled into one training dataset.

    Movie ``k`` gets seed ``seed + k`` and goes to ``output/movie_<seed + k>/``
    (a folder as :func:`simulate` writes it); ``output/annotated/`` pools
    their annotated frames (:func:`~pcnacycle.simulation.writers.pool_annotated`),
    ready for ``DATASETS.ROOT``. With ``randomise`` each movie draws its own
    look, so a model trained on the pool sees as many microscopes as movies.
    Other keyword arguments are those of :func:`simulate`.

    ``movies.json`` is written last and lists every file, so that
    ``overwrite`` replaces only what an earlier set wrote. When a movie
    fails, what this call wrote is removed again.

    Returns
    -------
    pathlib.Path
        The output folder.
    """
    if isinstance(movies, bool) or not isinstance(movies, int) or movies < 1:
        raise PcnacycleError(f"movies={movies!r}: must be a whole number of movies, 1 or more")
    output = Path(output)
    users = _prepare_output(output, overwrite, marker=SET_MARKER, legacy=())
    names = [f"movie_{seed + k}" for k in range(movies)]
    try:
        for name, movie_seed in zip(names, range(seed, seed + movies)):
            simulate(output / name, seed=movie_seed, progress=progress, **kwargs)
        pool_annotated({name: output / name / "annotated" for name in names}, output / "annotated")
        write_json(output / SET_MARKER, {"movies": names, "seeds": list(range(seed, seed + movies)),
                                         MANIFEST_KEY: sorted((files_under(output) - users) | {SET_MARKER})})
    except BaseException:
        remove_outputs(output, files_under(output) - users)
        raise
    return output
