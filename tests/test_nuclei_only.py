"""What training draws: nuclei annotated without a phase (DATASETS.NUCLEI_ONLY), the loss they get, and
images repeated by their rarest class (DATALOADER.SAMPLER_TRAIN RepeatFactorTrainingSampler)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import shutil

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from torchvision.models.detection import roi_heads as tv_roi_heads

from conftest import make_dsb_folder, tiny_overrides
from pcnacycle import load_config, train
from pcnacycle.cli import main
from pcnacycle.data.catalog import read_records
from pcnacycle.data.classes import UNKNOWN_PHASE
from pcnacycle.data.dataset import InstanceDataset
from pcnacycle.data.mixing import MixedSampler, RepeatFactorSampler, nuclei_only_data, repeat_factors
from pcnacycle.modeling.model import build_model
from pcnacycle.modeling.roi_heads import phase_classification_loss
from test_bad_input_training import LABELMASK, PHASES, labelmask_folder, train_args


def phase_model(seed=0):
    cfg = load_config(None, tiny_overrides("unused", **{"MODEL.ROI_HEADS.NUM_CLASSES": 3,
                                                        "MODEL.CLASS_NAMES": "[G1/G2, S, M]"}))
    torch.manual_seed(seed)
    return build_model(cfg).train()


def image_and_target(labels):
    """A 96² image with one bright square per label, and its target."""
    image = torch.full((1, 96, 96), 0.1)
    masks = torch.zeros((len(labels), 96, 96), dtype=torch.uint8)
    for i, _ in enumerate(labels):
        top = 8 + 28 * i
        image[:, top:top + 16, 20:36] = 0.9
        masks[i, top:top + 16, 20:36] = 1
    boxes = torch.tensor([[20, 8 + 28 * i, 36, 24 + 28 * i] for i in range(len(labels))], dtype=torch.float32)
    return image, {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64), "masks": masks}


def test_the_classification_loss_is_cross_entropy_when_every_phase_is_known():
    logits = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 0, 2, 1])
    assert torch.allclose(phase_classification_loss(logits, labels), F.cross_entropy(logits, labels))


def test_class_loss_weights_weigh_each_proposal_by_its_phase_and_reach_the_training_loss():
    logits = torch.randn(7, 4, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3, 0, UNKNOWN_PHASE, 3])
    weights = torch.tensor([1.0, 1.0, 1.5, 4.0])
    each = -logits.log_softmax(dim=1)
    expected = (sum(weights[int(y)] * each[i, int(y)] for i, y in enumerate(labels) if y != UNKNOWN_PHASE)
                - torch.logsumexp(-each[5, 1:], dim=0)) / len(labels)
    assert phase_classification_loss(logits, labels, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    # the same with equal weights: the unweighted loss
    assert torch.allclose(phase_classification_loss(logits, labels, torch.ones(4)),
                          phase_classification_loss(logits, labels))
    # and the config key reaches the model's training loss: M weighted 4 raises it on an image of an M nucleus
    image, target = image_and_target([3])
    losses = []
    for weights in ("[]", "[1.0, 1.0, 4.0]"):
        cfg = load_config(None, tiny_overrides("unused", **{"MODEL.ROI_HEADS.NUM_CLASSES": 3,
                                                            "MODEL.CLASS_NAMES": "[G1/G2, S, M]",
                                                            "MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS": weights}))
        torch.manual_seed(0)
        model = build_model(cfg).train()
        torch.manual_seed(5)
        losses.append(model([image], [target]))
    assert losses[1]["loss_classifier"] > losses[0]["loss_classifier"]
    assert torch.allclose(losses[1]["loss_box_reg"], losses[0]["loss_box_reg"])


def test_a_nucleus_of_unknown_phase_costs_minus_log_of_its_foreground_probability():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 3.0, 0.0, 0.0]])
    labels = torch.tensor([UNKNOWN_PHASE, 1])
    probs = logits.softmax(dim=1)
    expected = (-math.log(probs[0, 1:].sum()) - math.log(probs[1, 1])) / 2
    assert phase_classification_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # it does not care how the foreground is shared between phases: moving probability from S to M changes nothing
    shifted = torch.tensor([[2.0, 0.0, -1.0, 1.0], [0.0, 3.0, 0.0, 0.0]])
    assert phase_classification_loss(shifted, labels).item() == pytest.approx(expected, rel=1e-6)


def test_training_losses_equal_torchvisions_when_every_phase_is_known():
    model = phase_model()
    image, target = image_and_target([1, 3, 2])
    torch.manual_seed(5)  # the proposal sampler draws: the same draws for both
    ours = model([image], [target])
    model.roi_heads.forward = tv_roi_heads.RoIHeads.forward.__get__(model.roi_heads)
    torch.manual_seed(5)
    theirs = model([image], [target])
    assert set(ours) == set(theirs)
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name


def test_unknown_phases_train_boxes_and_masks_but_no_phase():
    """Gradients from a nucleus of unknown phase reach the box and mask heads; the class logits get
    only the shared 'foreground' pull: every foreground class moves alike relative to the others'
    share of the probability, and the loss is finite."""
    model = phase_model(seed=2)
    image, target = image_and_target([UNKNOWN_PHASE, UNKNOWN_PHASE])
    losses = model([image], [target])
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    mask_grad = model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad
    box_grad = model.roi_heads.box_predictor.bbox_pred.weight.grad
    assert mask_grad is not None and mask_grad.abs().sum() > 0
    assert box_grad is not None and box_grad.abs().sum() > 0
    assert losses["loss_mask"] > 0


def test_losses_with_no_nucleus_at_all_are_finite():
    model = phase_model()
    image = torch.full((1, 64, 64), 0.1)
    target = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
              "masks": torch.zeros((0, 64, 64), dtype=torch.uint8)}
    losses = model([image], [target])
    assert all(torch.isfinite(value) for value in losses.values())
    assert losses["loss_mask"].item() == 0
    assert np.isfinite(sum(losses.values()).item())


def test_the_mixed_sampler_holds_its_fraction_and_resumes_exactly():
    sampler = MixedSampler(first=7, second=5, fraction=0.25, seed=3)
    draws = list(itertools.islice(iter(sampler), 400))
    second = [index for index, _ in draws if index >= 7]
    assert len(second) == 100  # a quarter, exactly, in any stretch of 4k draws
    assert all(0 <= index < 12 for index, _ in draws)
    assert set(second) == set(range(7, 12)) and {i for i, _ in draws if i < 7} == set(range(7))
    assert len({seed for _, seed in draws}) == len(draws)  # every draw its own augmentation seed
    for start in (1, 37, 150):
        resumed = list(itertools.islice(iter(MixedSampler(7, 5, 0.25, seed=3, start=start)), 400 - start))
        assert resumed == draws[start:]


def test_repeat_factors_follow_lvis_rule():
    # class 3 (M) in 1 of 4 images, class 2 in 2 of 4, class 1 in all; threshold 0.5
    labels = [np.array([1, 1, 3]), np.array([1, 2]), np.array([1, 2, 1]), np.array([1]), np.array([], np.int64)]
    factors = repeat_factors(labels, 0.5)
    # shares: class 1 4/5, class 2 2/5, class 3 1/5 -> factors 1, sqrt(1.25), sqrt(2.5); an empty image 1
    assert factors == pytest.approx([math.sqrt(2.5), math.sqrt(1.25), math.sqrt(1.25), 1.0, 1.0])
    assert (repeat_factors(labels, 0.0) == 1.0).all()


def test_the_repeat_factor_sampler_repeats_rare_images_and_resumes_exactly():
    factors = np.array([1.0, 1.0, 2.5, 1.0])
    draws = list(itertools.islice(iter(RepeatFactorSampler(factors, seed=4)), 5500))
    counts = np.bincount([index for index, _ in draws], minlength=4)
    assert counts[2] / counts[[0, 1, 3]].mean() == pytest.approx(2.5, rel=0.05)
    for start in (3, 11, 1000):
        assert list(itertools.islice(iter(RepeatFactorSampler(factors, seed=4, start=start)), 200)) == \
            draws[start:start + 200]
    def repeated(start):
        return RepeatFactorSampler(factors, 4, start)

    straight = list(itertools.islice(iter(MixedSampler(4, 3, 0.25, seed=4, first_stream=repeated)), 300))
    assert [i for i, _ in straight if i < 4][:50] == [i for i, _ in draws[:50]]
    resumed = MixedSampler(4, 3, 0.25, seed=4, start=77, first_stream=repeated)
    assert list(itertools.islice(iter(resumed), 223)) == straight[77:]


def nuclei_only_config(tmp_path, fraction=0.5, split_file=""):
    phases = labelmask_folder(tmp_path / "phases", n_images=4, shape=(48, 48))
    dsb = make_dsb_folder(tmp_path / "dsb", n_images=4, shape=(64, 64))
    return load_config(None, tiny_overrides(phases, **{
        "DATASETS.FORMAT": "labelmask", "INPUT.CHANNELS": "[pcna]", "DATASETS.VAL_SIZE": 1,
        "MODEL.ROI_HEADS.NUM_CLASSES": 3, "MODEL.CLASS_NAMES": "[G1/G2, S, M]",
        "INPUT.CROP.ENABLED": "true", "INPUT.CROP.TYPE": "absolute", "INPUT.CROP.SIZE": "[32, 32]",
        "DATASETS.NUCLEI_ONLY.ROOT": str(dsb), "DATASETS.NUCLEI_ONLY.FRACTION": fraction,
        "DATASETS.NUCLEI_ONLY.SPLIT_FILE": split_file, "SOLVER.MAX_ITER": 4, "SOLVER.STEPS": "[3]",
        "SOLVER.CHECKPOINT_PERIOD": 2, "DATALOADER.SAMPLER_TRAIN": "RepeatFactorTrainingSampler",
        "DATALOADER.REPEAT_THRESHOLD": 0.9}))


@pytest.mark.parametrize("size_match", ["dataset", "image"])
def test_nuclei_only_images_come_with_unknown_phases_at_the_training_size(tmp_path, size_match):
    cfg = nuclei_only_config(tmp_path)
    cfg.INPUT["NUCLEUS_DIAMETER"] = 18.0
    cfg.DATASETS.NUCLEI_ONLY["SIZE_MATCH"] = size_match
    records, load = nuclei_only_data(cfg)
    assert len(records) == 4
    samples = [load(record) for record in records]
    own = [2 * np.sqrt(np.median(sample["masks"].sum(axis=(1, 2))) / np.pi) for sample, _ in samples]
    if size_match == "image":  # each image its own factor
        assert [resize for _, resize in samples] == pytest.approx([18.0 / d for d in own], rel=0.05)
    else:  # one factor, from the median nucleus of all images
        every = np.concatenate([sample["masks"].sum(axis=(1, 2)) for sample, _ in samples])
        expected = 18.0 / (2 * np.sqrt(np.median(every) / np.pi))
        assert [resize for _, resize in samples] == pytest.approx([expected] * 4, rel=1e-3)
    sample, resize = samples[0]
    assert set(sample["labels"].tolist()) == {UNKNOWN_PHASE}
    dataset = InstanceDataset(read_records(cfg), cfg, augment=True, nuclei_only=(records, load))
    crops = [dataset[(len(dataset) - 1, seed)] for seed in range(8)]
    assert set().union(*(target["labels"].tolist() for _, target in crops)) == {UNKNOWN_PHASE}
    # the crop is taken smaller or larger so that, resized, the network sees INPUT.CROP.SIZE
    assert all(abs(image.shape[1] - 32) <= 1 and abs(image.shape[2] - 32) <= 1 for image, _ in crops)
    _, phase_target = dataset[(0, 11)]
    assert set(phase_target["labels"].tolist()) <= {1, 2, 3}


@pytest.mark.parametrize("saved_with_phases", [True, False])
def test_frames_a_user_outlined_are_nuclei_without_phases_whatever_phases_they_were_saved_with(
        tmp_path, saved_with_phases):
    """README "For a real movie": outlines of one's own frames, in the labelmask folder the annotation loop
    saves (its classes.csv holding phases, or none), fine-tune as DATASETS.NUCLEI_ONLY: each labelled region
    one nucleus, every phase unknown, so that the phases still come from the phase dataset alone."""
    cfg = nuclei_only_config(tmp_path)
    outlines = labelmask_folder(tmp_path / "outlines", n_images=2, shape=(40, 40), classes=saved_with_phases)
    cfg.DATASETS.NUCLEI_ONLY.update(ROOT=str(outlines), FORMAT="labelmask", SPLIT_FILE="")
    cfg.INPUT["NUCLEUS_DIAMETER"] = 18.0
    records, load = nuclei_only_data(cfg)
    assert sorted(record["image_id"] for record in records) == ["f0", "f1"]
    for record in records:
        sample, _ = load(record)
        labels = tifffile.imread(outlines / "labels" / f"{record['image_id']}.tif")
        assert len(sample["masks"]) == len(np.unique(labels[labels > 0])) == 3
        assert set(sample["labels"].tolist()) == {UNKNOWN_PHASE}


def test_training_mixes_in_nuclei_only_images_and_keeps_their_held_out_images_unseen(tmp_path, caplog):
    split = tmp_path / "dsb_split.json"
    split.write_text(json.dumps({"train": ["img000", "img001", "img002"], "val": ["img003"]}))
    cfg = nuclei_only_config(tmp_path, split_file=str(split))
    seen = []
    original = InstanceDataset.__getitem__

    def spy(self, index):
        image, target = original(self, index)
        seen.append((target["image_id"], set(target["labels"].tolist())))
        return image, target

    with caplog.at_level(logging.INFO, logger="pcnacycle"), pytest.MonkeyPatch.context() as patch:
        patch.setattr(InstanceDataset, "__getitem__", spy)
        train(cfg, tmp_path / "run", progress=False)
    assert "mixed in: 3 images of nuclei without phases" in caplog.text
    assert "repeat factors (DATALOADER.REPEAT_THRESHOLD 0.9)" in caplog.text
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["total_loss"]) for row in metrics if "total_loss" in row)
    dsb_seen = {image_id for image_id, _ in seen if image_id.startswith("img")}
    assert dsb_seen and "img003" not in dsb_seen
    assert all(labels <= {UNKNOWN_PHASE} for image_id, labels in seen if image_id.startswith("img"))
    assert sum(image_id.startswith("img") for image_id, _ in seen) == len(seen) // 2  # FRACTION 0.5
    assert load_config(tmp_path / "run" / "config.yaml").DATASETS.NUCLEI_ONLY.SPLIT_FILE == str(split)

    # resumed from its iteration-2 checkpoint, the run ends with the weights of the straight one
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("config.yaml", "split.json", "model_0000002.pt"):
        shutil.copy(tmp_path / "run" / name, crashed / name)
    (crashed / "last_checkpoint").write_text("model_0000002.pt\n")
    train(load_config(crashed / "config.yaml"), crashed, resume=True, progress=False)
    straight = torch.load(tmp_path / "run" / "model_final.pt", weights_only=True)["model"]
    resumed = torch.load(crashed / "model_final.pt", weights_only=True)["model"]
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("key, value, message", [
    ("DATASETS.NUCLEI_ONLY.FRACTION", "1.0", "'DATASETS.NUCLEI_ONLY.FRACTION': expected a fraction in (0, 1)"),
    ("DATASETS.NUCLEI_ONLY.FORMAT", "arrays", "'DATASETS.NUCLEI_ONLY.FORMAT': 'arrays' is not one of"),
    ("DATALOADER.SAMPLER_TRAIN", "Repeat", "'DATALOADER.SAMPLER_TRAIN': 'Repeat' is not one of"),
    ("DATALOADER.REPEAT_THRESHOLD", "2", "'DATALOADER.REPEAT_THRESHOLD': expected a fraction of images"),
])
def test_bad_nuclei_only_settings_are_one_line_errors(tmp_path, capsys, key, value, message):
    root = labelmask_folder(tmp_path / "phases", n_images=3)
    code = main(train_args(tmp_path, root, *LABELMASK, *PHASES, "DATASETS.NUCLEI_ONLY.ROOT", str(tmp_path), key, value))
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_nuclei_only_folder_that_does_not_exist_is_named_before_anything_is_written(tmp_path, capsys):
    root = labelmask_folder(tmp_path / "phases", n_images=3)
    code = main(train_args(tmp_path, root, *LABELMASK, *PHASES, "DATASETS.NUCLEI_ONLY.ROOT", str(tmp_path / "nowhere")))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nowhere" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
