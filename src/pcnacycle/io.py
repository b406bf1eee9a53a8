"""Reading images and writing outputs without ever leaving a half-written file.

Every writer here writes to a temporary file in the destination folder and
renames it into place, so an interrupted run (even ``kill -9``) leaves either
the previous file or the complete new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from .errors import PcnacycleError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed to ``path`` on success.

    For writers that want a file name rather than an open handle. On an
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the mode any new file gets, so collaborators can read it
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() (e.g. a full disk) does not say which file it was
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it to ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def log_to_file(path: str | os.PathLike) -> Iterator[None]:
    """Copy everything the package logs into ``path`` while the block runs."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("pcnacycle")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def quieter(name: str, level: int) -> Iterator[None]:
    """Drop the lines of logger ``name`` below ``level`` while the block runs (its own level restored after)."""
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(max(saved, level))
    try:
        yield
    finally:
        logger.setLevel(saved)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_tiff(path: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
    """Write ``array`` as a (zlib-compressed) TIFF to ``path`` atomically."""
    import tifffile

    kwargs.setdefault("compression", "zlib")
    with atomic_path(path) as tmp:
        # tifffile names its file itself, so it gets the temporary path, not a handle.
        tifffile.imwrite(tmp, array, **kwargs)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG, JPEG or TIFF file into a numpy array, as stored.

    Returns
    -------
    ndarray
        ``(H, W)`` for grey images, ``(H, W, C)`` for colour PNG/JPEG, and the
        stored axis order for TIFF stacks (e.g. ``(T, H, W)``). The dtype is
        the file's own (uint8, uint16, float32, ...).

    Raises
    ------
    PcnacycleError
        If the file is missing or cannot be decoded; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise PcnacycleError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        return np.asarray(iio.imread(path, plugin="pillow"))
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise PcnacycleError(f"{path}: cannot be read as an image ({exc})") from exc


# ------------------------------------------------------------------ what a command wrote

#: The key of a command's marker file (run.json, simulation.json, demo.json) listing the files it wrote.
MANIFEST_KEY = "outputs"


def files_under(folder: str | os.PathLike) -> set[str]:
    """Relative POSIX paths of every file below ``folder`` (empty when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def read_manifest(folder: str | os.PathLike, marker: str, legacy: Iterable[str] = ()) -> list[str]:
    """The files a pcnacycle command recorded as written in ``folder/marker``.

    ``legacy`` are glob patterns (relative to ``folder``) of what older
    versions wrote without a manifest, used when the marker is one of ours
    but lists nothing.

    Raises
    ------
    PcnacycleError
        When the marker is missing or not a JSON object written by pcnacycle:
        the folder is then not ours to clear.
    """
    folder = Path(folder)
    path = folder / marker
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        content = None
    if not isinstance(content, dict):
        raise PcnacycleError(f"{folder} holds files but no readable {marker} written by pcnacycle; refusing to "
                             "overwrite it (choose another output folder)")
    listed = content.get(MANIFEST_KEY)
    if isinstance(listed, list) and all(isinstance(p, str) for p in listed):
        return listed
    return sorted({p.relative_to(folder).as_posix() for pattern in legacy for p in folder.glob(pattern)
                   if p.is_file()} | {marker})


def remove_outputs(folder: str | os.PathLike, outputs: Iterable[str]) -> int:
    """Delete the listed files (only those inside ``folder``) and the folders they leave empty; return the count.

    Everything else in ``folder`` — a user's notes, analyses, other files —
    stays where it is.
    """
    folder = Path(folder).resolve()
    removed, parents = 0, set()
    for name in outputs:
        path = (folder / name)
        if folder not in path.resolve().parents or not (path.is_file() or path.is_symlink()):
            continue  # never outside the folder, never a folder named in a manifest
        path.unlink()
        removed += 1
        parents.update(p for p in path.parents if folder in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only when empty
    return removed


def move_into(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Move every file of ``source`` into ``destination`` (same relative paths), then remove ``source``."""
    source, destination = Path(source), Path(destination)
    for name in sorted(files_under(source)):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source / name, target)
    for folder in sorted((p for p in source.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    source.rmdir()


def read_yaml(path: str | os.PathLike, what: str, kind: str = "YAML"):
    """The content of a YAML (or JSON) file the user wrote; one line naming the file when it cannot be read.

    ``what`` says what the file is for ("the edits file", "run settings"),
    ``kind`` what it should have been ("YAML", "YAML or JSON").
    """
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PcnacycleError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PcnacycleError(f"{path}: not a {kind} file ({str(exc).splitlines()[0]})") from None


def fresh_stage(output: str | os.PathLike) -> Path:
    """An empty staging folder beside ``output`` (``.NAME.incomplete``), where a job writes before :func:`publish`.

    What an earlier, killed job left there is removed first: a staging
    folder is never a finished result.
    """
    output = Path(output)
    stage = output.parent / f".{output.name}.incomplete"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def publish(stage: str | os.PathLike, output: str | os.PathLike, previous: Iterable[str] | None) -> None:
    """Put a finished staging folder in place of ``output``.

    ``previous`` is the manifest of the earlier run in ``output`` (None when
    there is none): only those files are removed, so the user's own files in
    the folder stay. A new folder is one rename; into an existing one the
    files are moved one by one.
    """
    stage, output = Path(stage), Path(output)
    if previous is not None:
        remove_outputs(output, previous)
    if output.exists():
        move_into(stage, output)
    else:
        stage.rename(output)
