"""Reports: phase-coloured overlays and a self-contained HTML page.

The HTML embeds every figure as a data URI, so the one file can be mailed,
archived or opened from a cluster's scratch space without its folder.
"""

from __future__ import annotations

import base64
import html
import io as _io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from .evaluation.checks import DETECTION, PHASE_ACCURACY
from .io import write_text
from .phases import PHASE_COLOURS, UNKNOWN_PHASE_COLOUR


def phase_overlay(image: np.ndarray, label_image: np.ndarray, classes: Sequence[str],
                  fill: float = 0.25) -> np.ndarray:
    """Nuclei outlined and lightly filled in their phase's colour over a grey image.

    Parameters
    ----------
    image : (H, W) array, any real dtype (shown from its 1st to 99.8th percentile)
    label_image : (H, W) int, 0 background, object i has label i + 1
    classes : class name of each object, ``classes[i]`` for label i + 1
    fill : opacity of the fill inside each nucleus

    Returns
    -------
    (H, W, 3) uint8 RGB
    """
    from .data.dataset import normalize_intensity

    grey = normalize_intensity(image, (1.0, 99.8))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    palette = np.array([(0, 0, 0)] + [PHASE_COLOURS.get(c, UNKNOWN_PHASE_COLOUR) for c in classes], np.float32) / 255
    colours = palette[label_image]
    inside = label_image > 0
    rgb[inside] = (1 - fill) * rgb[inside] + fill * colours[inside]
    edges = find_boundaries(label_image, mode="inner")
    rgb[edges] = colours[edges]
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def png_bytes(figure_or_array) -> bytes:
    """PNG encoding of a matplotlib figure or an (H, W[, 3]) uint8 array."""
    buffer = _io.BytesIO()
    if isinstance(figure_or_array, np.ndarray):
        import imageio.v3 as iio

        iio.imwrite(buffer, figure_or_array, extension=".png")
    else:
        figure_or_array.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


class HtmlReport:
    """A page built section by section, then written atomically as one HTML file."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str) -> None:
        """A paragraph; `backticked` words are set as code (the backticks themselves are not shown)."""
        self.parts.append(f"<p>{inline_code(html.escape(text))}</p>")

    def table(self, frame: pd.DataFrame, float_format: str = "{:.2f}") -> None:
        self.parts.append(frame.to_html(float_format=lambda v: float_format.format(v), na_rep="–", border=0,
                                        classes="table"))

    def image(self, png: bytes | str | os.PathLike, caption: str = "", width: int | None = None) -> None:
        data = png if isinstance(png, bytes) else Path(png).read_bytes()
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        style = f' style="width:{width}px"' if width else ""
        self.parts.append(f'<figure><img src="{uri}"{style}><figcaption>{html.escape(caption)}</figcaption></figure>')

    def raw(self, markup: str) -> None:
        """Insert trusted HTML (built by this module, never user text)."""
        self.parts.append(markup)

    def row(self) -> "_Row":
        return _Row(self)

    def save(self, path: str | os.PathLike) -> Path:
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
figcaption {{ font-size: 0.85em; color: #555; max-width: 420px; }}
.table {{ border-collapse: collapse; margin: 0.5em 0; }}
.table td, .table th {{ padding: 0.2em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
.legend span {{ display: inline-block; padding: 0.1em 0.6em; margin-right: 0.4em; border-radius: 3px; }}
</style></head><body>
<h1>{html.escape(self.title)}</h1>
{chr(10).join(self.parts)}
</body></html>
"""
        write_text(path, page)
        return Path(path)


class _Row:
    """Figures added inside ``with report.row():`` sit side by side."""

    def __init__(self, report: HtmlReport):
        self.report = report

    def __enter__(self):
        self.report.parts.append("<div>")
        return self.report

    def __exit__(self, *exc):
        self.report.parts.append("</div>")


def inline_code(escaped: str) -> str:
    """Markdown-style `code` spans of already-escaped text as ``<code>`` elements."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def score_table(report: pd.DataFrame | dict) -> tuple[pd.DataFrame, str | None]:
    """A per-class precision/recall/F1 table ready to print, and a note on the scores it cannot give.

    Parameters
    ----------
    report : :func:`pcnacycle.evaluation.confusion.classification_report`'s table, or
        the ``{class: {precision, recall, f1, support}}`` dict of ``eval.json``
        (undefined scores as None or NaN).

    Returns
    -------
    table : DataFrame
        ``precision``, ``recall``, ``f1`` as float (NaN where undefined, for
        printing as "–") and ``support`` as int.
    note : str or None
        Why each undefined score is undefined, e.g. "–: precision of M is
        undefined, nothing was predicted M".
    """
    table = report.copy() if isinstance(report, pd.DataFrame) else pd.DataFrame.from_dict(report, orient="index")
    scores = ["precision", "recall", "f1"]
    table[scores] = table[scores].astype(float)
    table["support"] = table["support"].astype(np.int64)
    undefined = [f"{column} of {name} ({_why_undefined(str(name), column)})"
                 for name, row in table.iterrows() for column in ("precision", "recall") if np.isnan(row[column])]
    note = "– marks a score that is 0/0, undefined: " + "; ".join(undefined) if undefined else None
    return table, note


def _why_undefined(row: str, column: str) -> str:
    """Why ``column`` of :func:`pcnacycle.evaluation.confusion.classification_report`'s ``row`` is 0/0."""
    if row == PHASE_ACCURACY:
        return "no nucleus was matched"
    if row == DETECTION:
        return "nothing was detected" if column == "precision" else "no true nucleus"
    return f"nothing was predicted {row}" if column == "precision" else f"no true {row} nucleus"


def legend_html(classes: Sequence[str]) -> str:
    """Coloured chips naming each class, as used in the overlays."""
    chips = "".join(
        f'<span style="background: rgb{PHASE_COLOURS.get(c, UNKNOWN_PHASE_COLOUR)}">{html.escape(c)}</span>'
        for c in classes
    )
    return f'<p class="legend">{chips}</p>'
