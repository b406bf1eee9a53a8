import json
import logging

import numpy as np
import pytest

from pcnacycle.demo import MARKER, prepare_output, run_demo
from pcnacycle.errors import PcnacycleError
from pcnacycle.report import PHASE_COLOURS, HtmlReport, phase_overlay, png_bytes


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_a_self_contained_report(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pcnacycle.demo")
    report = run_demo(tmp_path / "demo", iterations=3, progress=False)
    assert report == tmp_path / "demo" / "report.html"
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 8  # 3 × 2 overlays, loss curve, confusion matrix
    for text in ("AP50", "G1/G2", "confusion", "Matching score"):
        assert text in page
    said = [r.getMessage() for r in caplog.records if r.name == "pcnacycle.demo"]
    assert "under 15" in said[0]  # says up front how long it takes
    assert said[-1].endswith("report.html")
    for path in ("sim_train/truth/ctc/01_GT/TRA/man_track.txt", "train/model_final.pt", "eval/eval.json"):
        assert (tmp_path / "demo" / path).is_file()
    listed = json.loads((tmp_path / "demo" / MARKER).read_text())["outputs"]
    assert {"report.html", "train/model_final.pt", "run/run.json", MARKER} <= set(listed)
    assert "Divisions: " in page and "Validation: segm AP50" in page
    assert str(tmp_path) not in page and "`" not in page  # no absolute path, no literal backticks


def test_demo_never_overwrites_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(PcnacycleError, match="not empty"):
        prepare_output(mine, overwrite=False)
    with pytest.raises(PcnacycleError, match="not written by pcnacycle demo"):
        prepare_output(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "precious"

    earlier = tmp_path / "earlier"
    (earlier / "train").mkdir(parents=True)
    (earlier / MARKER).write_text('{"outputs": ["report.html", "train/model_final.pt", "demo.json"]}')
    (earlier / "report.html").write_text("old")
    (earlier / "train" / "model_final.pt").write_text("weights")
    (earlier / "train" / "my_notes.txt").write_text("mine")
    (earlier / "thesis.docx").write_text("mine too")
    assert prepare_output(earlier, overwrite=True) == {"train/my_notes.txt", "thesis.docx"}
    assert sorted(p.name for p in earlier.rglob("*")) == ["my_notes.txt", "thesis.docx", "train"]


def test_phase_overlay_colours_each_nucleus_by_its_class():
    image = np.full((20, 30), 100, np.uint16)
    image[0, 0] = 0
    labels = np.zeros((20, 30), np.int32)
    labels[2:8, 2:8] = 1
    labels[10:18, 15:25] = 2
    rgb = phase_overlay(image, labels, ["S", "M"])
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[2, 2]) == PHASE_COLOURS["S"] and tuple(rgb[10, 15]) == PHASE_COLOURS["M"]  # outlines
    inside_s, inside_m = rgb[5, 5].astype(int), rgb[14, 20].astype(int)
    assert inside_s[2] < inside_s[0] and inside_m[1] < inside_m[0]  # tinted towards their colours
    background = rgb[labels == 0]
    assert (background[:, 0] == background[:, 1]).all() and (background[:, 1] == background[:, 2]).all()


def test_html_report_embeds_images_and_escapes_text(tmp_path):
    page = HtmlReport("a <title>")
    page.text("x < y & z")
    page.image(png_bytes(np.zeros((4, 4, 3), np.uint8)), "caption")
    path = page.save(tmp_path / "r.html")
    html = path.read_text()
    assert "x &lt; y &amp; z" in html and "a &lt;title&gt;" in html
    assert html.count("data:image/png;base64,") == 1
