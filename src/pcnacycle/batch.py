"""``pcnacycle batch``: many movies through ``run`` on Dask, then one summary across them.

The manifest is a CSV with one row per movie: ``movie`` (a unique name, the
output sub-folder), ``pcna`` and optionally ``dic``, ``frame_interval``,
``condition`` and any other columns, which are carried into the summaries.
It is checked whole before any work starts.

Each movie becomes ``OUTPUT/<movie>/``, an ordinary run folder written by
:func:`pcnacycle.pipeline.run` (staged, renamed into place only when
complete). A movie whose folder holds a finished run is skipped, so running
the same command again after a crash or ``kill -9`` redoes only what was
unfinished; a failing movie is reported and the others go on.

Outputs in the output folder, besides the run folders::

    summary.csv                  one row per cell: movie, condition, manifest columns, phase durations
    summary_by_condition.csv     per condition and phase: cells, median and IQR of complete phases (minutes)
    summary_by_condition.png     phase durations compared across conditions
    batch.json                   each movie's status and error, how sure the detector was (written last)

Dask is imported only here, inside functions: ``import pcnacycle`` never loads it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import PcnacycleError
from .io import MANIFEST_KEY, atomic_write, write_json
from .safeguards import check_output_folder

log = logging.getLogger(__name__)

PHASES = ("G1", "S", "G2", "M")
REQUIRED_COLUMNS = ("movie", "pcna")
#: What the batch itself writes into the output folder; no movie may take one of these names.
SUMMARY_FILES = ("summary.csv", "summary_by_condition.csv", "summary_by_condition.png", "batch.json")
#: Condition of movies whose manifest has no ``condition`` column or leaves the cell empty.
DEFAULT_CONDITION = "unspecified"
#: Seconds to wait for an existing scheduler before giving up.
CONNECT_TIMEOUT_S = 5
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_RUN_MARKER = "run.json"


# ------------------------------------------------------------------ the manifest


@dataclass
class Movie:
    """One checked manifest row: the arguments of its ``run`` and the columns carried into the summaries."""

    name: str
    pcna: Path
    dic: Path | None
    frame_interval: float | None
    condition: str
    columns: dict = field(default_factory=dict)


def read_movie_list(path: str | os.PathLike) -> list[Movie]:
    """Read and check a batch manifest; every fault names its row and column.

    Parameters
    ----------
    path : CSV file with columns ``movie``, ``pcna`` and optionally ``dic``,
        ``frame_interval`` (minutes), ``condition`` and any others. Relative
        paths are taken from the manifest's own folder.

    Returns
    -------
    list of :class:`Movie`, in the manifest's order.

    Raises
    ------
    PcnacycleError
        For an unreadable file, a missing column, a movie name that is empty,
        repeated or not a safe folder name, a missing PCNA or DIC file, or a
        frame interval that is not a positive number.
    """
    path = Path(path)
    if not path.is_file():
        raise PcnacycleError(f"{path}: no such manifest file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PcnacycleError(f"{path}: not a readable CSV manifest ({str(exc).strip().splitlines()[0]})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    for column in REQUIRED_COLUMNS:
        if column not in table:
            raise PcnacycleError(f"{path}: no column {column!r} (columns: {', '.join(table.columns) or 'none'}); "
                                 "a manifest needs movie and pcna, and may have dic, frame_interval, condition")
    if table.columns.duplicated().any():
        raise PcnacycleError(f"{path}: column {table.columns[table.columns.duplicated()][0]!r} appears twice")
    if not len(table):
        raise PcnacycleError(f"{path}: lists no movie")
    folder = path.parent
    seen: dict[str, int] = {}
    movies = []
    for index, row in enumerate(table.to_dict("records")):
        row = {key: value.strip() for key, value in row.items()}
        where = f"{path}, row {index + 1} (line {index + 2})"
        name = row["movie"]
        if not _SAFE_NAME.fullmatch(name) or name in SUMMARY_FILES:
            raise PcnacycleError(f"{where}, column movie: {name!r} is not a safe folder name (letters, digits, "
                                 f"'.', '_', '+', '-', not starting with '.', and none of {', '.join(SUMMARY_FILES)})")
        if name.lower() in seen:
            raise PcnacycleError(f"{where}, column movie: {name!r} repeats row {seen[name.lower()] + 1}; "
                                 "movie names must be unique (letter case aside)")
        seen[name.lower()] = index
        movies.append(Movie(name=name, pcna=_input_file(folder, row["pcna"], f"{where}, column pcna"),
                            dic=_input_file(folder, row["dic"], f"{where}, column dic") if row.get("dic") else None,
                            frame_interval=_frame_interval(row.get("frame_interval", ""), where),
                            condition=row.get("condition") or DEFAULT_CONDITION, columns=row))
    return movies


def _input_file(folder: Path, value: str, where: str) -> Path:
    if not value:
        raise PcnacycleError(f"{where}: empty; give the movie's TIFF file")
    file = folder / Path(value).expanduser()  # an absolute value stays as it is
    if not file.is_file():
        raise PcnacycleError(f"{where}: {file}: no such file")
    return file


def _frame_interval(value: str, where: str) -> float | None:
    """Minutes between frames, or None (empty: the movie's metadata, else run's default)."""
    if not value:
        return None
    try:
        minutes = float(value)
    except ValueError:
        minutes = math.nan
    if not math.isfinite(minutes) or minutes <= 0:
        raise PcnacycleError(f"{where}, column frame_interval: {value!r} is not a positive number of minutes")
    return minutes


# ------------------------------------------------------------------ one movie, on a worker

_MODEL_LOCK = threading.Lock()
#: The one model this worker process holds: key → Predictor. One entry, so a long-lived worker
#: serving batches with other weights does not pile models up.
_MODEL_CACHE: dict[tuple, object] = {}


def worker_model(weights: Path, onnx: str | None = None):
    """A :class:`~pcnacycle.engine.predictor.Predictor` for ``weights`` (and ``onnx``: see Predictor), loaded
    once per worker process and reused for every movie."""
    from . import pipeline

    key = (str(weights.resolve()), weights.stat().st_mtime_ns, onnx)
    with _MODEL_LOCK:
        if key not in _MODEL_CACHE:
            _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = pipeline.Predictor(weights, onnx=onnx)
        return _MODEL_CACHE[key]


def detector_threads(torch_threads: int | dict | None) -> int | None:
    """Torch threads for a movie on this worker.

    ``torch_threads`` is a number, None (keep), or the Dask threads of each
    host of an existing cluster: the host's cores are then shared by the
    movies it runs at once, whatever its worker processes and threads.
    """
    if not isinstance(torch_threads, dict):
        return torch_threads
    from dask.distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    running = torch_threads.get(get_address_host(worker.address)) or worker.state.nthreads or 1
    return max(1, usable_cores() // running)


def process_movie(movie: Movie, weights: str, output: str, settings, torch_threads: int | dict | None,
                  onnx: str | None = None) -> dict:
    """Run one movie into ``output/<movie>``; never raises, so one bad movie cannot stop the batch.

    Returns
    -------
    dict
        ``movie``, ``status`` ("done" or "failed"), ``error`` (one line, or
        None) and ``seconds``.
    """
    from . import pipeline
    from .engine.predictor import load_weights_path

    start = time.perf_counter()
    logging.getLogger("pcnacycle").setLevel(logging.INFO)  # so each run's log.txt gets its INFO lines
    try:
        threads = detector_threads(torch_threads)
        if threads:
            import torch

            torch.set_num_threads(threads)
        path = load_weights_path(weights)
        pipeline.run(path, movie.pcna, Path(output) / movie.name, dic=movie.dic,
                     frame_interval=movie.frame_interval, settings=settings,
                     progress=False, predictor=worker_model(path, onnx))
        status, error = "done", None
    except PcnacycleError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - any fault of one movie is reported, the batch goes on
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    if error:
        error = " ".join(error.split())  # one line, whatever the exception said
    return {"movie": movie.name, "status": status, "error": error,
            "seconds": round(time.perf_counter() - start, 2)}


def finished_run(folder: Path, movie: Movie) -> bool:
    """Whether ``folder`` holds a complete run of ``movie`` (its run.json, written last, lists its outputs).

    Raises
    ------
    PcnacycleError
        When it holds a complete run of another PCNA file: the manifest has
        changed, and the old results are not ours to replace silently.
    """
    try:
        summary = json.loads((folder / _RUN_MARKER).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(summary, dict) or MANIFEST_KEY not in summary:
        return False
    if Path(summary.get("pcna", "")).resolve() != movie.pcna.resolve():
        raise PcnacycleError(f"{folder} holds a finished run of {summary.get('pcna')}, but the manifest now gives "
                             f"{movie.pcna} for movie {movie.name!r}; remove that folder or choose another --output")
    return True


# ------------------------------------------------------------------ the batch, on the client


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a SLURM allocation), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(movies: int, cores: int) -> int:
    """Worker processes of the local cluster: one per two cores (each movie then detects on two threads).

    Movies parallelise perfectly and a detector's threads do not, but each
    worker holds its own model in memory, so not one worker per core.
    """
    return max(1, min(movies, cores // 2))


def connect(workers: int | None, scheduler: str | None, pending: int, processes: bool = True):
    """A Dask client and the detector threads each movie may use.

    Parameters
    ----------
    workers : worker processes of a new local cluster (default :func:`default_workers`).
    scheduler : address of a running ``dask.distributed`` scheduler (e.g. a
        dask-jobqueue cluster's); then no local cluster is made.
    pending : movies to run, so that no idle workers are started.
    processes : False runs the local workers as threads of this process (tests).

    Returns
    -------
    client, cluster (None for an existing scheduler), torch_threads
        Detector threads per movie: a number for a local cluster, Dask
        threads per host for an existing one (see :func:`detector_threads`),
        None to leave them as they are (workers in this process).
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise PcnacycleError('pcnacycle batch needs Dask: pip install "pcnacycle[batch]"') from exc
    # Dask narrates every connection and worker at INFO; the batch's own progress bar and errors say enough.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler is not None:
        if workers is not None:
            raise PcnacycleError("--workers and --scheduler exclude each other: an existing scheduler has its "
                                 "own workers")
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PcnacycleError(f"--scheduler {scheduler}: no Dask scheduler answered within "
                                 f"{CONNECT_TIMEOUT_S} s ({reason})") from None
        return client, None, _threads_on_hosts(client)
    if workers is not None and workers < 1:
        raise PcnacycleError(f"--workers {workers}: must be at least 1")
    cores = usable_cores()
    workers = workers or default_workers(pending, cores)
    # One movie at a time per worker; the cores are shared out between the workers' detectors.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster, (max(1, cores // workers) if processes else None)


def _threads_on_hosts(client) -> dict[str, int]:
    """Dask threads per host, to share each host's cores out between the movies it runs at once."""
    threads: dict[str, int] = {}
    for info in client.scheduler_info().get("workers", {}).values():
        threads[info.get("host", "")] = threads.get(info.get("host", ""), 0) + int(info.get("nthreads", 1))
    return threads


def run_batch(weights: str | os.PathLike, manifest: str | os.PathLike, output: str | os.PathLike, *,
              workers: int | None = None, scheduler: str | None = None, settings=None,
              onnx: str | os.PathLike | None = None, progress: bool = True, processes: bool = True) -> dict[str, dict]:
    """Run every movie of ``manifest`` into ``output/<movie>`` on Dask and summarise them.

    Parameters
    ----------
    weights : checkpoint file or training folder, reachable at the same path from every worker.
    manifest : CSV, see :func:`read_movie_list`.
    output : folder for the run folders and the summaries (made if missing).
    workers, scheduler, processes : see :func:`connect`.
    settings : :class:`~pcnacycle.settings.RunSettings` for every movie.
    onnx : run each worker's backbone, FPN and RPN head from this ONNX file (see
        :class:`~pcnacycle.engine.predictor.Predictor`), reachable at the same path from every worker.

    Returns
    -------
    dict
        Per movie name: ``status`` ("done", "skipped": finished before, or
        "failed"), ``error`` (one line or None), ``seconds``, and from its
        ``run.json`` how sure the detector was (``confident_calls_share``) and
        what the texture evidence was learnt from (``texture_evidence_from``;
        both None without a finished run).
    """
    from .engine.predictor import load_weights_path
    from .settings import RunSettings

    settings = settings or RunSettings()
    weights = load_weights_path(weights).resolve()
    movies = read_movie_list(manifest)
    output = check_output_folder(output)
    results = {m.name: {"movie": m.name, "status": "skipped", "error": None, "seconds": 0.0} for m in movies}
    pending = []
    for movie in movies:
        if not finished_run(output / movie.name, movie):
            pending.append(movie)
    log.info("%d movie(s) in %s: %d finished before, %d to run", len(movies), manifest,
             len(movies) - len(pending), len(pending))
    if pending:
        client, cluster, torch_threads = connect(workers, scheduler, len(pending), processes)
    output.mkdir(parents=True, exist_ok=True)  # only now: bad input and an absent scheduler leave nothing
    if pending:
        try:
            results.update(_run_movies(client, pending, weights, output, settings, torch_threads,
                                       str(Path(onnx).resolve()) if onnx else None, progress))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    write_summaries(output, movies)
    for movie in movies:
        results[movie.name].update(_how_sure(output / movie.name))
    unsure = [m.name for m in movies if results[m.name]["confident_calls_share"] is not None
              and results[m.name]["texture_evidence_from"] is None]
    if unsure:
        log.warning("no texture evidence for S in %d movie(s), whose phases rest on the detector's calls alone "
                    "(too few calls sure enough to learn it from): %s", len(unsure), ", ".join(unsure))
    write_json(output / "batch.json", {"weights": str(weights), "manifest": str(Path(manifest).resolve()),
                                       "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                                       "movies": list(results.values()),
                                       MANIFEST_KEY: [*SUMMARY_FILES]})
    return results


def _how_sure(run_dir: Path) -> dict:
    """A finished run's ``confident_calls_share`` and ``texture_evidence_from`` (None where not recorded)."""
    keys = ("confident_calls_share", "texture_evidence_from")
    try:
        summary = json.loads((run_dir / _RUN_MARKER).read_text())
    except (OSError, ValueError):
        return dict.fromkeys(keys)
    return {key: summary.get(key) if isinstance(summary, dict) else None for key in keys}


def _run_movies(client, pending: list[Movie], weights: Path, output: Path, settings, torch_threads,
                onnx: str | None, progress: bool) -> dict[str, dict]:
    """Submit every pending movie; each one's result as it completes, failures logged at once."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    futures = {client.submit(process_movie, movie, str(weights), str(output.resolve()), settings, torch_threads,
                             onnx, key=f"pcnacycle-movie-{movie.name}-{time.time_ns()}", pure=False): movie
               for movie in pending}
    results = {}
    bar = tqdm(as_completed(futures), total=len(futures), desc="movies", unit="movie", disable=not progress)
    for future in bar:
        movie = futures[future]
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a worker that died (killed, out of memory) fails its movie only
            result = {"movie": movie.name, "status": "failed", "error": " ".join(f"{type(exc).__name__}: {exc}"
                                                                               .split()), "seconds": None}
        results[movie.name] = result
        if result["status"] == "failed":
            log.error("movie %s failed: %s", movie.name, result["error"])
    return results


# ------------------------------------------------------------------ summaries across movies


def cell_table(output: Path, movies: list[Movie]) -> pd.DataFrame:
    """Every finished movie's ``phases.csv`` (one row per cell), preceded by its movie, condition and manifest columns.

    Movies without a finished run, or whose model's classes gave no phases, contribute no rows.
    """
    tables = []
    for movie in movies:
        phases = output / movie.name / "phases.csv"
        if not (output / movie.name / _RUN_MARKER).is_file() or not phases.is_file():
            continue
        cells = pd.read_csv(phases)
        carried = {"movie": movie.name, "condition": movie.condition,
                   **{k: v for k, v in movie.columns.items() if k not in ("movie", "condition")}}
        clash = sorted(set(carried) & set(cells.columns))
        if clash:
            raise PcnacycleError(f"manifest column {clash[0]!r} clashes with a column of {phases}; rename it")
        tables.append(cells.assign(**carried)[[*carried, *cells.columns]])
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["movie", "condition"])


def condition_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per condition and phase: cells with that phase complete, and the median and IQR of its minutes.

    A phase counts for a cell when the cell was seen in it (frames > 0) and
    the movie did not cut it (``<phase>_cut`` false): a duration known only
    as a lower bound would bias the median down.

    Returns
    -------
    DataFrame
        ``condition, phase, cells`` (int), ``median_minutes, q25_minutes,
        q75_minutes, iqr_minutes`` (float, NaN without cells).
    """
    rows = []
    conditions = list(dict.fromkeys(cells["condition"])) if len(cells) else []
    for condition in conditions:
        group = cells[cells["condition"] == condition]
        for phase in PHASES:
            minutes = complete_durations(group, phase)
            q25, median, q75 = np.percentile(minutes, [25, 50, 75]) if len(minutes) else (np.nan,) * 3
            rows.append({"condition": condition, "phase": phase, "cells": len(minutes),
                         "median_minutes": median, "q25_minutes": q25, "q75_minutes": q75,
                         "iqr_minutes": q75 - q25})
    columns = ["condition", "phase", "cells", "median_minutes", "q25_minutes", "q75_minutes", "iqr_minutes"]
    return pd.DataFrame(rows, columns=columns)


def complete_durations(cells: pd.DataFrame, phase: str) -> np.ndarray:
    """(n,) float64 minutes of ``phase`` in the cells that went through all of it."""
    seen = cells[f"{phase}_frames"].to_numpy() > 0
    whole = ~cells[f"{phase}_cut"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    return cells.loc[seen & whole, f"{phase}_minutes"].to_numpy(np.float64)


def write_summaries(output: Path, movies: list[Movie]) -> None:
    """``summary.csv``, ``summary_by_condition.csv`` and ``summary_by_condition.png`` in ``output``."""
    cells = cell_table(output, movies)
    by_condition = condition_table(cells)
    for name, table in (("summary.csv", cells), ("summary_by_condition.csv", by_condition)):
        with atomic_write(output / name, "w") as handle:
            table.to_csv(handle, index=False, float_format="%.6g")
    plot_conditions(cells, output / "summary_by_condition.png")
    log.info("%d cell(s) from %d movie(s) summarised in %s", len(cells),
             cells["movie"].nunique() if len(cells) else 0, output / "summary.csv")


def plot_conditions(cells: pd.DataFrame, path: Path) -> None:
    """One panel per phase: box plots of complete phase durations (hours), one box per condition."""
    from matplotlib.figure import Figure  # drawn on its own Figure: no pyplot state, no backend switch

    conditions = list(dict.fromkeys(cells["condition"])) if len(cells) else []
    fig = Figure(figsize=(3.2 * len(PHASES), 3.6))
    axes = fig.subplots(1, len(PHASES), squeeze=False)
    for ax, phase in zip(axes[0], PHASES):
        hours = [complete_durations(cells[cells["condition"] == c], phase) / 60 for c in conditions]
        if any(len(h) for h in hours):
            ax.boxplot([h if len(h) else [np.nan] for h in hours], showfliers=True)
        ax.set_xticks(range(1, len(conditions) + 1),
                      [f"{c}\n(n={len(h)})" for c, h in zip(conditions, hours)], fontsize=8)
        ax.set(title=phase, ylabel="hours" if phase == PHASES[0] else None)
    fig.suptitle("complete phase durations by condition")
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
