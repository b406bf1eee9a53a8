"""The bad-input catalogue of training (issue 13): one clear line, exit status 2, nothing left behind.

Each case makes its bad input in ``tmp_path`` and returns the command line
(run in-process through :func:`pcnacycle.cli.main`), with the exit status and
a message fragment naming the file, key or value at fault; the table has the
shape of ``test_bad_input_catalogue.py``'s. A refused input (status 2) gives
one ``error:`` line, no traceback, and leaves no output folder behind; a
handled one (status 0) trains and says what it did in ``log.txt``. New
commands and inputs join :data:`CASES`.
"""

from __future__ import annotations

import json
from collections import namedtuple

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from conftest import draw_discs, make_dsb_folder, tiny_overrides
from pcnacycle.cli import main


def labelmask_folder(root, n_images=3, shape=(32, 32), empty=(), classes=True):
    """``<root>/pcna/f<i>.tif`` with ``<root>/labels/f<i>.tif``; images listed in ``empty`` have no instance."""
    rng = np.random.default_rng(0)
    (root / "pcna").mkdir(parents=True)
    (root / "labels").mkdir()
    rows = ["image,label,class"]
    for i in range(n_images):
        masks = draw_discs(shape, 3, rng, radius=(3, 6))
        labels = np.zeros(shape, np.uint16)
        if i not in empty:
            for k, mask in enumerate(masks, start=1):
                labels[mask] = k
                rows.append(f"f{i},{k},{['G1/G2', 'S', 'M'][k % 3]}")
        tifffile.imwrite(root / "pcna" / f"f{i}.tif", (300 + 2000 * masks.any(0)).astype(np.uint16))
        tifffile.imwrite(root / "labels" / f"f{i}.tif", labels)
    if classes:
        (root / "classes.csv").write_text("\n".join(rows) + "\n")
    return root


LABELMASK = ["DATASETS.FORMAT", "labelmask", "INPUT.CHANNELS", "[pcna]", "DATASETS.VAL_SIZE", "1",
             "DATALOADER.NUM_WORKERS", "1"]
PHASES = ["MODEL.ROI_HEADS.NUM_CLASSES", "3", "MODEL.CLASS_NAMES", "[G1/G2, S, M]"]


def train_args(tmp_path, root, *extra, config="stage1_dsb2018_cpu"):
    return ["train", "--quiet", "--config", str(config), "--output", str(tmp_path / "out"),
            *tiny_overrides(root), *extra]


def binary_config(tmp_path):
    (tmp_path / "model.pt").write_bytes(bytes(range(256)) * 8)
    return train_args(tmp_path, make_dsb_folder(tmp_path / "dsb", 4), config=tmp_path / "model.pt")


def duplicate_key(tmp_path):
    (tmp_path / "twice.yaml").write_text("_BASE_: {}\nSOLVER:\n  MAX_ITER: 2\n  STEPS: [1]\nSOLVER:\n  BASE_LR: 0.1\n")
    return train_args(tmp_path, make_dsb_folder(tmp_path / "dsb", 4), config=tmp_path / "twice.yaml")


def steps_after_max_iter(tmp_path):
    return train_args(tmp_path, make_dsb_folder(tmp_path / "dsb", 4), "SOLVER.MAX_ITER", "100",
                      "SOLVER.STEPS", "[50, 500]")


def rate_not_a_number(tmp_path):
    return train_args(tmp_path, make_dsb_folder(tmp_path / "dsb", 4), "SOLVER.BASE_LR", "1e-3x")


def eval_period_below_minus_one(tmp_path):
    return train_args(tmp_path, make_dsb_folder(tmp_path / "dsb", 4), "TEST.EVAL_PERIOD", "-5")


def dsb_image_missing(tmp_path):
    root = make_dsb_folder(tmp_path / "dsb", 4)
    (root / "img002" / "images" / "img002.png").unlink()
    return train_args(tmp_path, root)


def dsb_mask_of_another_size(tmp_path):
    root = make_dsb_folder(tmp_path / "dsb", 4)
    iio.imwrite(root / "img003" / "masks" / "big.png", np.zeros((70, 64), np.uint8))
    return train_args(tmp_path, root)


def labelmask_classes_missing(tmp_path):
    root = labelmask_folder(tmp_path / "lm", classes=False)
    return train_args(tmp_path, root, *LABELMASK, *PHASES)


def labelmask_label_truncated(tmp_path):
    root = labelmask_folder(tmp_path / "lm")
    label = root / "labels" / "f1.tif"
    label.write_bytes(label.read_bytes()[:100])
    return train_args(tmp_path, root, *LABELMASK)


def labelmask_label_of_another_size(tmp_path):
    root = labelmask_folder(tmp_path / "lm")
    tifffile.imwrite(root / "labels" / "f2.tif", np.ones((20, 32), np.uint16))
    return train_args(tmp_path, root, *LABELMASK)


def labelmask_label_without_class(tmp_path):
    root = labelmask_folder(tmp_path / "lm")
    rows = (root / "classes.csv").read_text().splitlines()
    (root / "classes.csv").write_text("\n".join(r for r in rows if r != "f2,2,M") + "\n")
    return train_args(tmp_path, root, *LABELMASK, *PHASES)


def labelmask_all_empty(tmp_path):
    root = labelmask_folder(tmp_path / "lm", empty=(0, 1, 2))
    return train_args(tmp_path, root, *LABELMASK)


def via_every_polygon_faulty(tmp_path):
    root = labelmask_folder(tmp_path / "via", classes=False)
    bow_tie = {"name": "polygon", "all_points_x": [2, 12, 2, 12], "all_points_y": [2, 12, 12, 2]}
    export = {f"f{i}.tif": {"filename": f"f{i}.tif", "regions": [{"shape_attributes": bow_tie,
                                                                    "region_attributes": {}}]} for i in range(3)}
    (root / "via.json").write_text(json.dumps(export))
    return train_args(tmp_path, root, "DATASETS.FORMAT", "via2", "INPUT.CHANNELS", "[pcna]")


def labelmask_some_empty(tmp_path):
    root = labelmask_folder(tmp_path / "lm", n_images=4, empty=(1,))
    return train_args(tmp_path, root, *LABELMASK, "SOLVER.MAX_ITER", "1", "SOLVER.STEPS", "[]",
                      "TEST.EVAL_PERIOD", "-1", "DATALOADER.NUM_WORKERS", "0")


Case = namedtuple("Case", "name make status fragment")
CASES = [
    Case("binary config", binary_config, 2, "model.pt: not a text file"),
    Case("duplicate key", duplicate_key, 2, "twice.yaml: key 'SOLVER' is given twice (lines 2 and 5)"),
    Case("steps after max iter", steps_after_max_iter, 2,
         "'SOLVER.STEPS': step 500 is not before SOLVER.MAX_ITER 100"),
    Case("rate not a number", rate_not_a_number, 2,
         "'SOLVER.BASE_LR' (from command line): expected a number, got '1e-3x'"),
    Case("eval period below -1", eval_period_below_minus_one, 2, "'TEST.EVAL_PERIOD'"),
    Case("dsb image missing", dsb_image_missing, 2, "img002: expected the image at"),
    Case("dsb mask of another size", dsb_mask_of_another_size, 2, "masks/big.png: mask is 64×70 but its image"),
    Case("labelmask classes.csv missing", labelmask_classes_missing, 2, "classes.csv: missing"),
    Case("labelmask label truncated", labelmask_label_truncated, 2, "labels/f1.tif: cannot be read as an image"),
    Case("labelmask label of another size", labelmask_label_of_another_size, 2,
         "pcna/f2.tif: image is 32×32 but its labels"),
    Case("labelmask label without class", labelmask_label_without_class, 2,
         "classes.csv: no class for label 2 of image f2"),
    Case("labelmask all labels empty", labelmask_all_empty, 2, "all 3 label image(s) are empty"),
    Case("via every polygon faulty", via_every_polygon_faulty, 2,
         "via.json: no image has any annotated region that outlines a nucleus"),
    Case("labelmask some labels empty", labelmask_some_empty, 0,
         "skipped 1 of 4 label image(s) that hold no instance: f1"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_training_input(case, tmp_path, capsys):
    assert main(case.make(tmp_path)) == case.status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.status == 2:
        assert len(errors) == 1 and case.fragment in errors[0], err
        assert not (tmp_path / "out").exists()  # no config.yaml, log.txt or folder left by a run that never started
    else:
        assert not errors and case.fragment in (tmp_path / "out" / "log.txt").read_text()
        assert (tmp_path / "out" / "model_final.pt").is_file()
