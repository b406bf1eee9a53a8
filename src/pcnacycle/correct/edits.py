"""The edits file of ``pcnacycle correct``: reading, checking its form, and writing it.

An edits file is a YAML mapping with one key, ``edits``, a list of edits
applied in order; each is a mapping with ``op`` and that operation's fields::

    edits:
      - {op: split, track: 4, frame: 20}          # frames >= 20 of track 4 become a new track, no mother
      - {op: join, track: 9, onto: 4}             # track 9 continues track 4 (its frames get id 4)
      - {op: parent, track: 12, mother: 4}        # 12 is a daughter of 4
      - {op: orphan, track: 13}                   # 13 has no mother
      - {op: phase, track: 4, first: 10, last: 14, phase: S}
      - {op: delete, track: 7}                    # or {op: delete, track: 7, first: 3, last: 5}
      - {op: merge, frame: 6, labels: [21, 22]}   # two masks of one nucleus become one (id 21)
      - {op: relabel, frame: 6, label: 23, track: 4}

Here only the form is checked (known ``op``, every field present, of the
right type, nothing unknown); whether the tracks and frames exist in a run is
checked by :func:`pcnacycle.correct.validate_edits`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import PcnacycleError
from ..io import read_yaml, write_text

PHASE_NAMES = ("G1", "S", "G2", "M")

#: For each op: its required fields, then its optional ones (both in the order they are written).
OPERATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "split": (("track", "frame"), ()),
    "join": (("track", "onto"), ()),
    "parent": (("track", "mother"), ()),
    "orphan": (("track",), ()),
    "phase": (("track", "first", "last", "phase"), ()),
    "delete": (("track",), ("first", "last")),
    "merge": (("frame", "labels"), ()),
    "relabel": (("frame", "label", "track"), ()),
}

#: Fields holding a track id (≥ 1); the others of _FRAME_FIELDS hold frame indices (≥ 0).
_TRACK_FIELDS = ("track", "onto", "mother", "label")
_FRAME_FIELDS = ("frame", "first", "last")


def edit_name(index: int, edit: Mapping[str, Any]) -> str:
    """``edits[3] (split track 4 frame 20)``: how messages name an edit."""
    op = edit.get("op", "?") if isinstance(edit, Mapping) else "?"
    op = op if isinstance(op, str) else "?"
    fields = " ".join(f"{k} {edit[k]}" for k in (*OPERATIONS.get(op, ((), ()))[0],
                                                  *OPERATIONS.get(op, ((), ()))[1])
                      if isinstance(edit, Mapping) and k in edit and k != "op")
    return f"edits[{index}] ({op}{' ' + fields if fields else ''})"


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_edit(index: int, edit, source: str = "") -> dict[str, Any]:
    """One edit, checked for form and returned as a plain dict in field order.

    Raises
    ------
    PcnacycleError
        ``<source>: edits[<index>] (...): <what is wrong>`` for an unknown op,
        a missing, unknown or mistyped field.
    """
    prefix = f"{source}: " if source else ""
    if not isinstance(edit, Mapping):
        raise PcnacycleError(f"{prefix}edits[{index}]: must be a mapping with 'op', got {edit!r}")
    where = f"{prefix}{edit_name(index, edit)}"
    op = edit.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise PcnacycleError(f"{where}: 'op' must be one of {', '.join(OPERATIONS)}, got {op!r}")
    required, optional = OPERATIONS[op]
    missing = [k for k in required if k not in edit]
    if missing:
        raise PcnacycleError(f"{where}: missing field(s) {', '.join(map(repr, missing))} (a {op} edit has "
                             f"{', '.join((*required, *optional))})")
    unknown = sorted(set(map(str, edit)) - {"op", *required, *optional})
    if unknown:
        raise PcnacycleError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} (a {op} edit has "
                             f"{', '.join((*required, *optional))})")
    if op == "delete" and ("first" in edit) != ("last" in edit):
        raise PcnacycleError(f"{where}: give both 'first' and 'last', or neither to delete the whole track")
    for key in (*required, *optional):
        if key not in edit:
            continue
        value = edit[key]
        if key in _TRACK_FIELDS and not (_is_int(value) and value >= 1):
            raise PcnacycleError(f"{where}: '{key}' must be a track id (an integer ≥ 1), got {value!r}")
        if key in _FRAME_FIELDS and not (_is_int(value) and value >= 0):
            raise PcnacycleError(f"{where}: '{key}' must be a frame index (an integer ≥ 0), got {value!r}")
    if op == "phase" and edit["phase"] not in PHASE_NAMES:
        raise PcnacycleError(f"{where}: 'phase' must be one of {', '.join(PHASE_NAMES)}, got {edit['phase']!r}")
    if op == "merge":
        labels = edit["labels"]
        if (isinstance(labels, (str, bytes, Mapping)) or not hasattr(labels, "__len__") or len(labels) != 2
                or not all(_is_int(v) and v >= 1 for v in labels)):
            raise PcnacycleError(f"{where}: 'labels' must be two mask labels [a, b] (integers ≥ 1), got {labels!r}")
        if labels[0] == labels[1]:
            raise PcnacycleError(f"{where}: 'labels' must be two different labels, got {list(labels)!r}")
    if "first" in edit and "last" in edit and edit["first"] > edit["last"]:
        raise PcnacycleError(f"{where}: 'first' ({edit['first']}) is after 'last' ({edit['last']})")
    # plain ints and strings (numpy's, e.g. from napari, would not survive yaml.safe_dump)
    plain = {k: [int(v) for v in edit[k]] if k == "labels" else str(edit[k]) if k == "phase" else int(edit[k])
             for k in (*required, *optional) if k in edit}
    return {"op": op, **plain}


def check_edits(edits, source: str = "") -> list[dict[str, Any]]:
    """Every edit of a list checked with :func:`check_edit`; a copy as plain dicts."""
    if not isinstance(edits, (list, tuple)):
        prefix = f"{source}: " if source else ""
        raise PcnacycleError(f"{prefix}'edits' must be a list of edits, got {type(edits).__name__}")
    return [check_edit(i, edit, source) for i, edit in enumerate(edits)]


def read_edits(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The edits of a YAML edits file, checked for form.

    Parameters
    ----------
    path : the YAML file: a mapping with key ``edits``, a list of mappings each with ``op``.

    Returns
    -------
    list of dict
        One dict per edit, ``op`` first, fields in their documented order.

    Raises
    ------
    PcnacycleError
        One line naming the file, the edit's index and the field at fault.
    """
    path = Path(path)
    loaded = read_yaml(path, "the edits file")
    if not isinstance(loaded, Mapping) or "edits" not in loaded:
        raise PcnacycleError(f"{path}: must be a YAML mapping with key 'edits' (a list of edits, each with 'op')")
    unknown = sorted(set(map(str, loaded)) - {"edits"})
    if unknown:
        raise PcnacycleError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; the only key is 'edits'")
    return check_edits(loaded["edits"] if loaded["edits"] is not None else [], str(path))


def write_edits(path: str | os.PathLike, edits: list[dict[str, Any]]) -> None:
    """Write ``edits`` (checked for form first) to ``path`` as an edits file, atomically.

    Raises
    ------
    PcnacycleError
        When an edit is malformed (nothing is written then).
    """
    checked = check_edits(edits)
    # one edit per line, in flow style, as a person would write them
    lines = ["edits:"] + [f"  - {yaml.safe_dump(edit, default_flow_style=True, sort_keys=False).strip()}"
                          for edit in checked]
    write_text(path, "\n".join(lines if checked else ["edits: []"]) + "\n")
