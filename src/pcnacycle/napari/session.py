"""A correction session: edits appended to the CLI's edits file, the run corrected after each (no Qt).

The correction widget is a thin shell over :class:`CorrectionSession`, so
what a click does is exactly what ``pcnacycle correct RUN --edits EDITS
--output CORRECTED`` does with the file the session keeps.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import PcnacycleError
from ..io import read_manifest, remove_outputs

log = logging.getLogger(__name__)

#: The corrected run's marker file, listing what it holds (as ``pcnacycle run`` writes it).
RUN_MARKER = "run.json"


def default_paths(source: Path) -> tuple[Path, Path]:
    """``(edits file, corrected run folder)`` beside the run ``source``: ``RUN-edits.yaml``, ``RUN-corrected``."""
    return source.parent / f"{source.name}-edits.yaml", source.parent / f"{source.name}-corrected"


class CorrectionSession:
    """Edits of one run, kept in an edits file, and the corrected run they give.

    Parameters
    ----------
    source : the run being corrected (never written to)
    edits_path : the edits file; edits already in it are the session's first edits
    output : the corrected run folder, rewritten after each edit (only files
        its own ``run.json`` lists are replaced)
    """

    def __init__(self, source: str | os.PathLike, edits_path: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None):
        from ..correct import read_edits

        self.source = Path(source)
        default_edits, default_output = default_paths(self.source)
        self.edits_path = Path(edits_path) if edits_path else default_edits
        self.output = Path(output) if output else default_output
        if self.output.resolve() == self.source.resolve():
            raise PcnacycleError(f"{self.output}: the corrected run cannot replace the run it corrects")
        self.edits: list[dict[str, Any]] = read_edits(self.edits_path) if self.edits_path.exists() else []

    @property
    def shown(self) -> Path:
        """The folder that shows the session's state: the corrected run, or the source before any edit."""
        return self.output if self.edits and (self.output / RUN_MARKER).is_file() else self.source

    def apply(self, edit: dict[str, Any]) -> Path:
        """Append ``edit``, correct the run with all edits, write the edits file; return the corrected run.

        Raises
        ------
        PcnacycleError
            When the edit is invalid or the correction fails; the edits file
            and the corrected run then stay as they were (``correct_run``
            writes into a staging folder first).
        """
        return self._commit(self.edits + [dict(edit)])

    def undo(self) -> Path:
        """Drop the last edit and correct again (or go back to the source run); return the folder to show."""
        if not self.edits:
            raise PcnacycleError(f"{self.edits_path}: no edit to undo")
        return self._commit(self.edits[:-1])

    def _commit(self, edits: list[dict[str, Any]]) -> Path:
        from ..correct import correct_run, write_edits

        if edits:
            # correct_run checks every edit before writing, into a staging folder; on the output only the
            # files of the previous correction (listed in its run.json) are replaced
            correct_run(self.source, edits, output=self.output, overwrite=True)
        elif (self.output / RUN_MARKER).is_file():
            remove_outputs(self.output, read_manifest(self.output, RUN_MARKER))
        write_edits(self.edits_path, edits)
        self.edits = edits
        log.info("%d edit(s) in %s; showing %s", len(edits), self.edits_path, self.shown)
        return self.shown
