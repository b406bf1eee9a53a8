import json
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import make_dsb_folder, tiny_overrides
from pcnacycle import load_config, train
from pcnacycle.cli import main
from pcnacycle.engine import trainer as trainer_module
from pcnacycle.engine.trainer import lr_factor
from pcnacycle.errors import PcnacycleError
from pcnacycle.modeling.model import FIRST_CONV, build_model, load_weights


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_every_output_and_the_loss_goes_down(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "split.json", "metrics.jsonl", "model_0000006.pt", "model_final.pt",
            "last_checkpoint", "loss_curve.png", "log.txt"} <= names
    assert (trained_run / "last_checkpoint").read_text().strip() == "model_final.pt"
    assert not [n for n in names if n.endswith(".tmp")]
    rows = [r for r in read_metrics(trained_run) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == list(range(1, 13))
    for key in ("lr", "total_loss", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                "loss_rpn_box_reg", "time", "data_time"):
        assert key in rows[0]
    first, last = sum(r["total_loss"] for r in rows[:3]) / 3, sum(r["total_loss"] for r in rows[-3:]) / 3
    assert last < 0.85 * first
    evals = [r for r in read_metrics(trained_run) if "segm/AP50" in r]
    assert evals and evals[-1]["iteration"] == 12  # validation scored at the end


def test_checkpoint_contents_load_without_pickled_code(trained_run):
    state = torch.load(trained_run / "model_0000006.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "iteration", "config", "rng"} <= set(state)
    assert state["iteration"] == 6
    assert state["config"]["SOLVER"]["MAX_ITER"] == 12
    assert state["scheduler"]["last_epoch"] == 6
    cfg = load_config(trained_run / "config.yaml")
    model = build_model(cfg)
    model.load_state_dict(state["model"])  # strict: every tensor present and shaped right


def test_learning_rate_schedule_is_detectron2s():
    cfg = load_config(None, ["SOLVER.WARMUP_ITERS", "10", "SOLVER.WARMUP_FACTOR", "0.1", "SOLVER.STEPS", "[20, 30]",
                             "SOLVER.GAMMA", "0.5", "SOLVER.MAX_ITER", "40"])
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 5) == pytest.approx(0.1 * 0.5 + 0.5)
    assert lr_factor(cfg, 10) == 1.0 and lr_factor(cfg, 19) == 1.0
    assert lr_factor(cfg, 20) == 0.5 and lr_factor(cfg, 30) == 0.25


def test_weight_decay_norm_applies_to_normalisation_parameters():
    from pcnacycle.engine.trainer import build_optimizer

    cfg = load_config(None, ["MODEL.RESNETS.DEPTH", "18", "SOLVER.WEIGHT_DECAY_NORM", "0.0",
                             "SOLVER.WEIGHT_DECAY", "0.0001"])
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    gn_weight = model.backbone.body.bn1.weight  # a GroupNorm, by default
    group = next(g for g in optimizer.param_groups if any(p is gn_weight for p in g["params"]))
    conv_group = next(g for g in optimizer.param_groups if any(p is model.backbone.body.conv1.weight
                                                                 for p in g["params"]))
    assert group["weight_decay"] == 0.0 and conv_group["weight_decay"] == 0.0001


def test_interrupted_and_resumed_run_matches_the_straight_run(trained_run, tmp_path):
    # The state a crash right after the iteration-6 checkpoint leaves behind,
    # including metrics logged after that checkpoint.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("config.yaml", "split.json", "model_0000006.pt", "metrics.jsonl"):
        shutil.copy(trained_run / name, crashed / name)
    with open(crashed / "metrics.jsonl", "a") as metrics:
        metrics.write('{"iteration": 13, "total_lo')  # killed in the middle of a write
    (crashed / "last_checkpoint").write_text("model_0000006.pt\n")
    train(load_config(crashed / "config.yaml"), crashed, resume=True, progress=False)

    straight = torch.load(trained_run / "model_final.pt", weights_only=True)
    resumed = torch.load(crashed / "model_final.pt", weights_only=True)
    assert resumed["iteration"] == straight["iteration"] == 12
    assert resumed["scheduler"]["_last_lr"] == straight["scheduler"]["_last_lr"]
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    straight_rows = [r for r in read_metrics(trained_run) if "total_loss" in r]
    resumed_rows = [r for r in read_metrics(crashed) if "total_loss" in r]
    assert [r["iteration"] for r in resumed_rows] == list(range(1, 13))  # no duplicated iterations
    assert [r["lr"] for r in resumed_rows] == [r["lr"] for r in straight_rows]
    assert resumed_rows[-1]["total_loss"] == pytest.approx(straight_rows[-1]["total_loss"], rel=1e-3)


def test_output_folder_of_a_previous_run_is_refused_without_resume(trained_run, tmp_path):
    cfg = load_config(trained_run / "config.yaml")
    with pytest.raises(PcnacycleError, match="--resume"):
        train(cfg, trained_run, progress=False)
    with pytest.raises(PcnacycleError, match="no last_checkpoint"):
        train(cfg, tmp_path / "fresh", resume=True, progress=False)


def test_an_output_folder_in_the_dataset_is_refused_before_anything_is_written(dsb_root):
    cfg = load_config(None, tiny_overrides(dsb_root))
    before = sorted(p.name for p in dsb_root.iterdir())
    for output in (dsb_root, dsb_root / "runs" / "one"):
        with pytest.raises(PcnacycleError, match="DATASETS.ROOT"):
            train(cfg, output, progress=False)
    assert sorted(p.name for p in dsb_root.iterdir()) == before


def test_weights_transfer_to_more_channels_and_classes(trained_run, tmp_path, caplog):
    cfg = load_config(None, tiny_overrides("unused", **{"INPUT.CHANNELS": "[pcna, dic, otsu]",
                                                        "MODEL.ROI_HEADS.NUM_CLASSES": 3,
                                                        "MODEL.CLASS_NAMES": "[G1/G2, S, M]"}))
    model = build_model(cfg)
    source = torch.load(trained_run / "model_final.pt", weights_only=True)["model"]
    with caplog.at_level("INFO"):
        report = load_weights(model, trained_run / "model_final.pt")
    state = model.state_dict()
    key = "backbone.body.layer1.0.conv1.weight"
    torch.testing.assert_close(state[key], source[key])
    assert report["adapted"] == [FIRST_CONV]
    assert state[FIRST_CONV].shape[1] == 3
    torch.testing.assert_close(state[FIRST_CONV].sum(1), source[FIRST_CONV].sum(1))  # same response to grey input
    assert "roi_heads.box_predictor.cls_score.weight" in report["reinitialised"]
    assert state["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4
    assert "re-initialised" in caplog.text


def test_frozen_backbone_stages_keep_their_weights_while_the_rest_trains(trained_run, tmp_path):
    root = trained_run.parent / "dsb"
    cfg = load_config(None, tiny_overrides(root, **{"MODEL.WEIGHTS": str(trained_run / "model_final.pt"),
                                                    "MODEL.BACKBONE.FREEZE_AT": 2, "SOLVER.MAX_ITER": 2,
                                                    "SOLVER.STEPS": "[1]", "TEST.EVAL_PERIOD": -1}))
    train(cfg, tmp_path / "frozen", progress=False)
    before = torch.load(trained_run / "model_final.pt", weights_only=True)["model"]
    after = torch.load(tmp_path / "frozen" / "model_final.pt", weights_only=True)["model"]
    for key in (FIRST_CONV, "backbone.body.bn1.weight", "backbone.body.layer1.1.conv2.weight"):  # stem, res2
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    for key in ("backbone.body.layer2.0.conv1.weight", "backbone.fpn.inner_blocks.0.0.weight"):
        assert not torch.equal(after[key], before[key])


def test_freezing_batch_norm_statistics_is_refused():
    with pytest.raises(PcnacycleError, match="MODEL.BACKBONE.FREEZE_AT"):
        load_config(None, ["MODEL.RESNETS.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", "2"])
    with pytest.raises(PcnacycleError, match="MODEL.BACKBONE.FREEZE_AT"):
        load_config(None, ["MODEL.BACKBONE.FREEZE_AT", "6"])


class PickledObject:
    """Stands for any Python object saved in a checkpoint besides tensors."""


def test_bad_weights_files_are_clear_errors(tmp_path):
    cfg = load_config(None, tiny_overrides("unused"))
    model = build_model(cfg)
    with pytest.raises(PcnacycleError, match="not found"):
        load_weights(model, tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(PcnacycleError, match="junk.pt: .*not a PyTorch file at all"):
        load_weights(model, tmp_path / "junk.pt")

    # any pickled object but tensors could run code when loaded
    torch.save({"model": {"w": torch.zeros(1)}, "extra": PickledObject()}, tmp_path / "pickled.pt")
    with pytest.raises(PcnacycleError, match="other than tensors") as caught:
        load_weights(model, tmp_path / "pickled.pt")
    assert "weights_only=False" not in str(caught.value)  # never advise loading an untrusted file unsafely
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(PcnacycleError, match="no tensor matches"):
        load_weights(model, tmp_path / "other.pt")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["train", "--config", "stage1_dsb2018_cpu", "--output", str(tmp_path / "o"),
                 "SOLVER.BASE_LRR", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'SOLVER.BASE_LRR'") and "Traceback" not in err
    assert main(["train", "--config", "stage1_dsb2018_cpu", "--output", str(tmp_path / "o")]) == 2
    assert "DATASETS.ROOT" in capsys.readouterr().err


def test_console_command_trains(tmp_path):
    root = make_dsb_folder(tmp_path / "dsb", n_images=4)
    out = tmp_path / "run"
    opts = tiny_overrides(root, **{"SOLVER.MAX_ITER": 2, "SOLVER.STEPS": "[1]", "DATASETS.VAL_SIZE": 1})
    done = subprocess.run([sys.executable, "-m", "pcnacycle.cli", "train", "--config", "stage1_dsb2018_cpu",
                           "--output", str(out), *opts], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("model_final.pt")
    assert (out / "model_final.pt").is_file()


def test_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    import os
    import signal
    import time

    root = make_dsb_folder(tmp_path / "dsb", n_images=4)
    out = tmp_path / "run"
    opts = tiny_overrides(root, **{"SOLVER.MAX_ITER": 500, "SOLVER.CHECKPOINT_PERIOD": 2, "DATASETS.VAL_SIZE": 1})
    command = [sys.executable, "-m", "pcnacycle.cli", "train", "--quiet", "--config", "stage1_dsb2018_cpu",
               "--output", str(out)]
    process = subprocess.Popen(command + opts, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "last_checkpoint").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let it get somewhere between two checkpoints
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    done_before = torch.load(out / (out / "last_checkpoint").read_text().strip(), weights_only=True)["iteration"]

    # Resume, asking for a shorter run so the test stays quick; the schedule must carry on unchanged.
    stop = done_before + 3
    resumed = subprocess.run(command + ["--resume"] + opts + ["SOLVER.MAX_ITER", str(stop)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from model_{done_before:07d}.pt at iteration {done_before}" in resumed.stderr
    rows = [r for r in read_metrics(out) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == list(range(1, stop + 1))
    cfg = load_config(out / "config.yaml")
    assert [r["lr"] for r in rows] == pytest.approx([0.01 * lr_factor(cfg, i) for i in range(stop)])
    assert torch.load(out / "model_final.pt", weights_only=True)["iteration"] == stop


def test_training_records_the_size_of_its_nuclei(trained_run):
    cfg = load_config(trained_run / "config.yaml")
    # the fixture's discs have radii 4 to 7 px
    assert 8 <= cfg.INPUT.NUCLEUS_DIAMETER <= 15
    saved = torch.load(trained_run / "model_final.pt", weights_only=True)["config"]
    assert saved["INPUT"]["NUCLEUS_DIAMETER"] == cfg.INPUT.NUCLEUS_DIAMETER


def discs_in_memory(count, shape=(48, 48), seed=1):
    """Images, label images and phase classes of ``count`` frames of bright discs, as arrays."""
    import numpy as np

    from conftest import draw_discs

    rng = np.random.default_rng(seed)
    images, label_images, classes = [], [], []
    for _ in range(count):
        masks = draw_discs(shape, 4, rng)
        label_images.append((masks * np.arange(1, len(masks) + 1)[:, None, None]).sum(0).astype(np.uint16))
        images.append({"pcna": (20 + 150 * masks.any(0) + rng.normal(0, 3, shape)).astype(np.float32)})
        classes.append({k: ("G1/G2", "S", "M")[k % 3] for k in range(1, len(masks) + 1)})
    return images, label_images, classes


def test_training_from_images_in_memory(tmp_path):
    from pcnacycle.data.arrays import array_records
    from pcnacycle.data.catalog import load_sample, read_records

    images, label_images, classes = discs_in_memory(4)
    opts = tiny_overrides("", **{"INPUT.CHANNELS": "[pcna]", "INPUT.CROP.ENABLED": "false", "SOLVER.MAX_ITER": 2,
                                 "SOLVER.STEPS": "[1]", "SOLVER.CHECKPOINT_PERIOD": 2, "DATASETS.VAL_SIZE": 1})
    weights = train(load_config("stage3_pcna_cpu", opts), tmp_path / "run", progress=False, images=images,
                    label_images=label_images, classes=classes)
    assert weights == tmp_path / "run" / "model_final.pt" and weights.is_file()
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(split["train"] + split["val"]) == [f"array/{i}" for i in range(4)] and len(split["val"]) == 1
    assert "segm/AP50" in read_metrics(tmp_path / "run")[-1]  # the in-memory val image was scored
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.DATASETS.FORMAT == "arrays" and saved.DATASETS.ROOT == ""
    with pytest.raises(PcnacycleError, match="images given in memory"):
        read_records(saved)

    records = array_records(saved, images, label_images, classes)
    sample = load_sample(saved, records[2])  # the catalog's "arrays" format hands back what was given
    assert sample["image_id"] == "array/2" and sample["masks"].shape == (4, 48, 48)
    assert (sample["masks"].sum(0) == (label_images[2] > 0)).all()
    assert sample["labels"].tolist() == [saved.MODEL.CLASS_NAMES.index(classes[2][k]) + 1 for k in range(1, 5)]


@pytest.mark.parametrize("change, message", [
    (lambda im, lab, cl: (im, lab[:3], cl), "images has 4 entries but label_images has 3"),
    (lambda im, lab, cl: (im, lab, [{}] * 4), r"classes\[0\]: no class for label 1"),
    (lambda im, lab, cl: (im, lab, None), "classes: needed for the 3 classes"),
    (lambda im, lab, cl: (im, [x[:10] for x in lab], cl),
     r"label_images\[0\]: expected integer labels of shape \(48, 48\)"),
    (lambda im, lab, cl: ([{"pcna": x["pcna"][None]} for x in im], lab, cl),
     r"images\[0\]\['pcna'\]: expected an \(H, W\)"),
])
def test_bad_arrays_are_refused_before_training(tmp_path, change, message):
    images, label_images, classes = change(*discs_in_memory(4))
    cfg = load_config("stage3_pcna_cpu", tiny_overrides("", **{"INPUT.CHANNELS": "[pcna]"}))
    with pytest.raises(PcnacycleError, match=message):
        train(cfg, tmp_path / "run", progress=False, images=images, label_images=label_images, classes=classes)
    assert not (tmp_path / "run" / "model_final.pt").exists()


def _interrupt_in_iteration(monkeypatch, number, interrupt):
    """Make ``interrupt()`` happen in iteration ``number`` (1-based), after its backward pass."""

    calls, clip = [], trainer_module._clip_gradients

    def clip_then_interrupt(cfg, model):
        calls.append(1)
        if len(calls) == number:
            interrupt()
        clip(cfg, model)

    monkeypatch.setattr(trainer_module, "_clip_gradients", clip_then_interrupt)


def _raise_ctrl_c():
    raise KeyboardInterrupt


def test_ctrl_c_saves_a_checkpoint_that_resumes_to_the_straight_run(trained_run, tmp_path, monkeypatch, caplog):
    cfg = load_config(trained_run / "config.yaml")
    out = tmp_path / "run"
    _interrupt_in_iteration(monkeypatch, 9, _raise_ctrl_c)  # 8 iterations done, the 9th cut short
    with caplog.at_level("WARNING"), pytest.raises(KeyboardInterrupt):
        train(cfg, out, progress=False)
    assert (out / "last_checkpoint").read_text().strip() == "model_0000008.pt"
    assert torch.load(out / "model_0000008.pt", weights_only=True)["iteration"] == 8
    assert not (out / "model_final.pt").exists()
    assert "interrupted at iteration 8: saved" in caplog.text and "--resume" in caplog.text
    monkeypatch.undo()

    train(load_config(out / "config.yaml"), out, resume=True, progress=False)
    straight = torch.load(trained_run / "model_final.pt", weights_only=True)
    resumed = torch.load(out / "model_final.pt", weights_only=True)
    assert resumed["scheduler"]["_last_lr"] == straight["scheduler"]["_last_lr"]
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    rows = [r for r in read_metrics(out) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == list(range(1, 13))
    assert [r["lr"] for r in rows] == [r["lr"] for r in read_metrics(trained_run) if "total_loss" in r]


def test_sigterm_saves_a_checkpoint_and_the_cli_exits_cleanly(dsb_root, tmp_path, monkeypatch, capsys, caplog):
    import os
    import signal

    out = tmp_path / "run"
    _interrupt_in_iteration(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGTERM))
    with caplog.at_level("WARNING"):
        assert main(["train", "--quiet", "--config", "stage1_dsb2018_cpu", "--output", str(out),
                     *tiny_overrides(dsb_root, **{"TEST.EVAL_PERIOD": -1})]) == 130
    assert capsys.readouterr().err == "interrupted\n"  # no traceback
    assert "interrupted at iteration 3: saved" in caplog.text
    assert (out / "last_checkpoint").read_text().strip() == "model_0000003.pt"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run


def test_final_weights_are_saved_before_the_final_evaluation_which_minus_one_skips(dsb_root, tmp_path, monkeypatch):
    seen = []

    def evaluator(cfg, records, progress):
        def evaluate(model, iteration):
            seen.append((iteration, (out / "model_final.pt").is_file()))
            return {"segm/AP50": 50.0}
        return evaluate

    monkeypatch.setattr(trainer_module, "make_training_evaluator", evaluator)
    out = tmp_path / "scored"
    short = {"SOLVER.MAX_ITER": 4, "SOLVER.STEPS": "[3]"}
    train(load_config(None, tiny_overrides(dsb_root, **short, **{"TEST.EVAL_PERIOD": 2})), out, progress=False)
    assert seen == [(2, False), (4, True)]
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pt"

    seen.clear()
    out = tmp_path / "unscored"
    train(load_config(None, tiny_overrides(dsb_root, **short, **{"TEST.EVAL_PERIOD": -1})), out, progress=False)
    assert seen == [] and (out / "model_final.pt").is_file()
    assert not [r for r in read_metrics(out) if "segm/AP50" in r]


def test_a_run_that_fails_before_training_removes_only_what_it_wrote(dsb_root, tmp_path):
    (dsb_root / "img001" / "images" / "img001.png").unlink()
    cfg = load_config(None, tiny_overrides(dsb_root))
    with pytest.raises(PcnacycleError, match="img001"):
        train(cfg, tmp_path / "new" / "run", progress=False)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(PcnacycleError, match="img001"):
        train(cfg, mine, progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


class _FailingDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise PcnacycleError(f"image {index}: cannot be read")


def test_a_dataset_error_in_a_worker_comes_back_as_its_own_line():
    from pcnacycle.data.dataset import next_batch

    batches = iter(torch.utils.data.DataLoader(_FailingDataset(), num_workers=1))
    with pytest.raises(PcnacycleError) as caught:
        next_batch(batches)
    assert str(caught.value) == "image 0: cannot be read"
