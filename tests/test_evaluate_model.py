"""Evaluation of a trained model end to end (the metric functions: test_evaluate.py)."""

import json
import shutil

import numpy as np
import pytest

from pcnacycle.cli import main
from pcnacycle.config import load_config
from pcnacycle.errors import PcnacycleError
from pcnacycle.evaluation.evaluator import evaluate


def test_evaluate_command_writes_every_report(trained_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--config", str(trained_run / "config.yaml"), "--weights", str(trained_run),
                 "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "segm" in printed
    results = json.loads((out / "eval.json").read_text())
    for iou_type in ("bbox", "segm"):
        assert set(results[iou_type]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "per_class"}
        assert set(results[iou_type]["per_class"]) == {"nucleus"}
        assert 0 <= results[iou_type]["AP50"] <= 100
    assert results["images"] == 2 and results["split"] == "val"
    assert [row["threshold"] for row in results["matching"]][0] == 0.5
    assert (out / "confusion.csv").read_text().splitlines()[0].startswith("true,nucleus,missed")
    assert (out / "confusion.png").stat().st_size > 0 and (out / "matching.csv").is_file()
    # The figure logged at the end of training is the one evaluation gives on the same split.
    logged = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["segm/AP50"] == pytest.approx(results["segm"]["AP50"])


def test_weights_for_another_channel_or_class_count_are_refused(trained_run):
    three_channels = load_config(trained_run / "config.yaml", ["INPUT.CHANNELS", "[gray, gray, gray]"])
    with pytest.raises(PcnacycleError, match=r"1 input channel\(s\).*INPUT\.CHANNELS"):
        evaluate(three_channels, trained_run, progress=False)
    three_classes = load_config(trained_run / "config.yaml", ["MODEL.ROI_HEADS.NUM_CLASSES", "3",
                                                              "MODEL.CLASS_NAMES", "[a, b, c]"])
    with pytest.raises(PcnacycleError, match=r"predict 1 class\(es\).*NUM_CLASSES is 3"):
        evaluate(three_classes, trained_run, progress=False)


def test_missing_or_empty_split_is_a_clear_error(trained_run, tmp_path):
    cfg = load_config(trained_run / "config.yaml")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(trained_run / "model_final.pt", lone / "model_final.pt")
    with pytest.raises(PcnacycleError, match="no split file.*--split all"):
        evaluate(cfg, lone, progress=False)
    (lone / "split.json").write_text(json.dumps({"train": [], "val": []}))
    with pytest.raises(PcnacycleError, match="split is empty"):
        evaluate(cfg, lone, progress=False)
    results = evaluate(cfg, lone, split="all", progress=False)
    assert results["images"] == 6


def test_split_file_and_class_agnostic_scoring(trained_run, tmp_path):
    cfg = load_config(trained_run / "config.yaml")
    split = json.loads((trained_run / "split.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({"train": split["val"], "val": split["train"][:1]}))
    results = evaluate(cfg, trained_run, split_file=tmp_path / "other.json", class_agnostic=True, progress=False)
    assert results["images"] == 1 and results["class_agnostic"]
    assert set(results["segm"]["per_class"]) == {"nucleus"}
    with pytest.raises(PcnacycleError, match="no such split file"):
        evaluate(cfg, trained_run, split_file=tmp_path / "missing.json", progress=False)


def test_weights_of_another_architecture_are_a_clear_error(trained_run):
    from pcnacycle.engine.predictor import load_model

    deeper = load_config(trained_run / "config.yaml", ["MODEL.FPN.OUT_CHANNELS", "64"])
    with pytest.raises(PcnacycleError, match="does not fit the config's model.*FPN"):
        load_model(trained_run / "model_final.pt", deeper)
    model, cfg = load_model(trained_run / "model_final.pt")  # the config saved in the checkpoint
    assert cfg.MODEL.FPN.OUT_CHANNELS == 32 and not model.training


def test_predictor_loads_once_and_answers_raw_channels_as_predict_image_does(trained_run):
    from conftest import draw_discs
    from pcnacycle.engine.predictor import Predictor, load_model, predict_image

    cfg = load_config(trained_run / "config.yaml", ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.001"])
    predictor = Predictor(trained_run, cfg)  # a training folder stands for its model_final.pt
    assert predictor.weights == trained_run / "model_final.pt" and predictor.class_names == ["nucleus"]
    rng = np.random.default_rng(3)
    frame = np.clip(rng.normal(20, 4, (64, 64)) + 160 * draw_discs((64, 64), 5, rng).any(0), 0, 255).astype(np.uint8)
    found = predictor.predict({"gray": frame})
    n = len(found["scores"])
    assert n > 0 and found["label_image"].shape == (64, 64) and found["label_image"].dtype == np.int32
    assert found["boxes"].shape == (n, 4) and found["probs"].shape == (n, 1) and found["labels"].shape == (n,)
    model, cfg = load_model(trained_run / "model_final.pt", cfg)
    direct = predict_image(model, predictor.compose({"gray": frame}), cfg)
    np.testing.assert_array_equal(found["label_image"], direct["label_image"])
    np.testing.assert_allclose(found["scores"], direct["scores"])
