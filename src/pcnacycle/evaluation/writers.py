"""Evaluation output files: the confusion table as CSV and as a PNG heat map."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io import atomic_write
from .confusion import _check_confusion


def write_confusion_csv(confusion: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a :func:`phase_confusion` table to ``path`` as CSV, atomically."""
    _check_confusion(confusion)
    with atomic_write(path, "w") as handle:
        confusion.to_csv(handle)


def plot_confusion(confusion: pd.DataFrame, path: str | os.PathLike) -> None:
    """Draw a :func:`phase_confusion` table as a PNG heat map with counts.

    The ``("spurious", "missed")`` cell, which cannot hold anything, is left
    blank. The file at ``path`` is replaced atomically.
    """
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_confusion(confusion)
    counts = confusion.to_numpy(dtype=np.int64)
    size = 1.2 + 0.9 * counts.shape[0]
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, label="nuclei")
    axes.set_xticks(range(counts.shape[1]), [str(c) for c in confusion.columns])
    axes.set_yticks(range(counts.shape[0]), [str(r) for r in confusion.index])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    # White text on dark cells, black on light ones.
    dark = counts > counts.max() / 2 if counts.max() else np.zeros_like(counts, bool)
    last = counts.shape[0] - 1
    for row in range(counts.shape[0]):
        for col in range(counts.shape[1]):
            if (row, col) == (last, last):
                continue
            axes.text(
                col,
                row,
                str(counts[row, col]),
                ha="center",
                va="center",
                color="white" if dark[row, col] else "black",
            )
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=150)
