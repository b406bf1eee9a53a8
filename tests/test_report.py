"""Report tables and figures say what they show: undefined scores, integer counts, readable figures."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pandas as pd

from pcnacycle.demo import durations_figure
from pcnacycle.engine.trainer import plot_loss_curve
from pcnacycle.evaluation.confusion import classification_report
from pcnacycle.report import HtmlReport, score_table


def confusion_without_m_calls() -> pd.DataFrame:
    """283 G1/G2 and 40 S nuclei matched, 4 true M nuclei all called G1/G2: nothing is predicted M."""
    names = ["G1/G2", "S", "M", "missed"]
    counts = [[250, 20, 0, 13], [5, 30, 0, 5], [4, 0, 0, 0], [7, 2, 0, 0]]
    return pd.DataFrame(counts, index=["G1/G2", "S", "M", "spurious"], columns=names)


def test_undefined_precision_is_a_dash_with_its_reason_and_support_is_an_integer(tmp_path):
    report = classification_report(confusion_without_m_calls())
    as_saved = json.loads(json.dumps(report.replace({np.nan: None}).to_dict(orient="index")))  # eval.json's form
    for source in (report, as_saved):
        table, note = score_table(source)
        assert table.loc["G1/G2", "support"] == 283 and table["support"].dtype == np.int64
        assert np.isnan(table.loc["M", "precision"]) and table.loc["M", "recall"] == 0
        assert note == "– marks a score that is 0/0, undefined: precision of M (nothing was predicted M)"
    page = HtmlReport("t")
    page.table(table, "{:.3f}")
    html = page.save(tmp_path / "r.html").read_text()
    assert "<td>283</td>" in html and "283.000" not in html
    assert "<td>–</td>" in html and "nan" not in html.lower()


def test_backticked_words_are_set_as_code_and_no_backtick_reaches_the_page(tmp_path):
    page = HtmlReport("t")
    page.text("made by `pcnacycle demo` <fast>")
    html = page.save(tmp_path / "r.html").read_text()
    assert "<p>made by <code>pcnacycle demo</code> &lt;fast&gt;</p>" in html and "`" not in html


def test_loss_figure_is_drawn_at_the_width_reports_show_it_with_a_lone_validation_point(tmp_path):
    rows = [{"iteration": i, "total_loss": 2.0 / (1 + i), "loss_mask": 0.5} for i in range(0, 40, 5)]
    rows.append({"iteration": 40, "segm/AP50": 12.5})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_loss_curve(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    height, width = iio.imread(tmp_path / "loss.png").shape[:2]
    assert width == 560 and height == 560  # the demo report shows it 560 px wide: 1:1, fonts as drawn


def test_duration_boxes_hold_the_cells_the_table_counts():
    durations = {p: {"n": 0, "true_minutes": [], "found_minutes": []} for p in ("G1", "S", "G2", "M")}
    durations["S"] = {"n": 3, "true_minutes": [400.0, 420.0, 480.0], "found_minutes": [390.0, 450.0, 470.0]}
    figure = durations_figure({"phases": {"durations": durations}})
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert labels == ["G1\nn=0", "S\nn=3", "G2\nn=0", "M\nn=0"]
    flat = {float(line.get_ydata()[0]) for line in figure.axes[0].lines if len(set(line.get_ydata())) == 1}
    assert {420.0, 450.0} <= flat  # the true and the found median of the three S phases (with the caps)
