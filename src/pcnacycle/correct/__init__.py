"""``pcnacycle correct``: apply a user's edits to a run folder and write a corrected run.

The Python API, also used by the napari plugin::

    from pcnacycle.correct import read_edits, write_edits, validate_edits, correct_run

    edits = [{"op": "split", "track": 4, "frame": 20}, {"op": "phase", "track": 4, "first": 10, "last": 14,
                                                       "phase": "S"}]
    validate_edits("run", edits)              # one-line PcnacycleError naming the edit and field, if any
    write_edits("run-edits.yaml", edits)
    corrected = correct_run("run", "run-edits.yaml", output="run-corrected")

Modules: :mod:`.edits` (the edits file), :mod:`.operations` (each edit on the
table of nuclei), :mod:`.runs` (reading a run folder, re-resolving, writing).
"""

from .edits import OPERATIONS, PHASE_NAMES, read_edits, write_edits
from .runs import correct_run, validate_edits

__all__ = ["OPERATIONS", "PHASE_NAMES", "correct_run", "read_edits", "validate_edits", "write_edits"]
