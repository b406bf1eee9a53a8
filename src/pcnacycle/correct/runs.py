"""Reading a run folder, applying edits, re-resolving and writing the corrected run."""

from __future__ import annotations

import os
import pathlib
from typing import Any

from ..settings import RunSettings


def validate_edits(run_dir: str | os.PathLike, edits: list[dict[str, Any]] | str | os.PathLike) -> None:
    """Check ``edits`` against the run in ``run_dir`` without writing anything.

    Raises
    ------
    PcnacycleError
        One line naming the edit's index and fields: unknown track, frame
        outside the track, a lineage cycle, a third daughter, unknown op,
        missing field, wrong type.
    """
    raise NotImplementedError


def correct_run(run_dir: str | os.PathLike, edits: list[dict[str, Any]] | str | os.PathLike,
                output: str | os.PathLike | None = None, in_place: bool = False,
                settings: RunSettings | None = None) -> pathlib.Path:
    """Apply ``edits`` to the run in ``run_dir``, re-resolve phases and durations, write the corrected run.

    Returns the folder written.
    """
    raise NotImplementedError
