"""A per-process cache of what was read from files, read again when a file changes."""

from __future__ import annotations

import os
from typing import Any, Callable, Hashable


class FileCache:
    """Values computed from files, each kept until its file's modification time or size changes.

    Each DataLoader worker builds its own. An entry is keyed on the file's
    path and a ``part`` (e.g. the array of an ``.npz``); a changed file
    replaces its entries rather than adding to them.
    """

    def __init__(self):
        self._entries: dict[tuple[str, Hashable], tuple[tuple[int, int], Any]] = {}

    def get(self, path: str | os.PathLike, part: Hashable, read: Callable[[], Any]) -> Any:
        """The value of ``(path, part)``, from ``read()`` when absent or the file changed since."""
        try:
            stat = os.stat(path)
        except OSError:  # the reader says what is wrong with the file, naming it
            return read()
        signature = (stat.st_mtime_ns, stat.st_size)
        key = (str(path), part)
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            entry = self._entries[key] = (signature, read())
        return entry[1]
