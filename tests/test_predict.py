from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.measure import label, regionprops
from skimage.transform import resize

from pcnacycle.config import load_config
from pcnacycle.engine.predictor import _paint, predict_image, tile_cores, tile_starts


class ComponentModel(torch.nn.Module):
    """A stand-in detector with a known answer: every bright connected blob is a nucleus.

    It returns our models' eval output (boxes in input pixels, 28×28 masks
    relative to each box) and, like PhaseRoIHeads, class probabilities in
    ``class_probs``. Blobs cut by the tile edge are reported too
    (with their visible part), as a real model does.
    """

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        image = images[0][0].numpy()
        labels = label(image > 0.5)
        regions = regionprops(labels)
        # Box-relative masks as RoIAlign samples them: 28×28 over the box.
        masks = np.stack([resize(r.image.astype(np.float32), (28, 28), order=1) for r in regions]) if regions \
            else np.zeros((0, 28, 28), np.float32)
        boxes = [[r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]] for r in regions]
        return [{"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                 "scores": torch.tensor([0.5 + r.area / 1e4 for r in regions]),
                 "labels": torch.ones(len(regions), dtype=torch.int64),
                 "masks": torch.from_numpy(masks[:, None].astype(np.float32)),
                 "class_probs": torch.ones(len(regions), 1)}]


def discs_image(shape, radius, spacing, offset=(0, 0)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = np.zeros(shape, np.float32)
    for cy in range(radius + 2 + offset[0], shape[0] - radius - 2, spacing):
        for cx in range(radius + 2 + offset[1], shape[1] - radius - 2, spacing):
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1.0
    return image[None]


@pytest.mark.parametrize("length, tile, overlap", [(100, 100, 20), (250, 100, 30), (1000, 256, 64), (257, 256, 64)])
def test_tiles_cover_the_frame_and_cores_partition_it(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    cores = tile_cores(starts, tile, length)
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
    for start, (low, high) in zip(starts, cores):  # each core leaves half the overlap as margin
        assert start <= low and high <= start + tile


def test_tiled_and_untiled_prediction_give_the_same_objects():
    image = discs_image((300, 340), radius=9, spacing=31, offset=(5, 11))
    whole = predict_image(ComponentModel(), image, load_config(None, ["TEST.TILE_SIZE", "0"]))
    truth = label(image[0] > 0.5)
    tiled = predict_image(ComponentModel(), image, load_config(None, ["TEST.TILE_SIZE", "96",
                                                                      "TEST.TILE_OVERLAP", "40"]))
    assert len(whole["scores"]) == truth.max()
    # Each pasted mask covers its nucleus (up to the 28×28 resampling at the rim).
    for region in regionprops(truth):
        found = whole["label_image"][tuple(region.coords.T)]
        assert (found == np.bincount(found).argmax()).mean() > 0.9
    assert len(tiled["scores"]) == len(whole["scores"])  # no nucleus split or duplicated at the seams
    # The same pixels carry the same objects (up to numbering).
    pairs = set(zip(whole["label_image"].ravel(), tiled["label_image"].ravel()))
    assert len(pairs) == len(whole["scores"]) + 1
    assert (whole["label_image"] > 0).sum() == (tiled["label_image"] > 0).sum()


def test_overlapping_detections_give_each_pixel_to_the_most_confident():
    big = {"y0": 0, "x0": 0, "mask": np.ones((10, 10), bool), "score": 0.9, "label": 1,
           "probs": np.array([1.0]), "box": np.array([0, 0, 10, 10], np.float32)}
    shifted = dict(big, y0=5, x0=5, score=0.6)
    hidden = dict(big, y0=2, x0=2, mask=np.ones((3, 3), bool), score=0.3)  # entirely under the first
    result = _paint([shifted, hidden, big], (20, 20), 1)
    assert result["scores"].tolist() == pytest.approx([0.9, 0.6])
    assert (result["label_image"] == 1).sum() == 100 and (result["label_image"] == 2).sum() == 75


def test_empty_frame_gives_no_objects():
    result = predict_image(ComponentModel(), np.zeros((1, 64, 64), np.float32), load_config(None))
    assert result["label_image"].max() == 0 and result["probs"].shape == (0, 1)


def test_paste_in_box_equals_torchvisions_full_frame_paste():
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from pcnacycle.engine.predictor import paste_in_box

    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((5, 1, 28, 28), dtype=np.float32))
    boxes = torch.tensor([[3.2, 4.7, 40.1, 30.9], [0.0, 0.0, 12.5, 9.0], [50.3, 60.0, 63.9, 71.2],
                          [10.0, 55.5, 33.3, 71.9], [20.0, 20.0, 21.0, 21.0]])
    full = paste_masks_in_image(masks, boxes, (72, 64))[:, 0].numpy()
    for i in range(5):
        crop, y0, x0 = paste_in_box(masks[i, 0], boxes[i])
        canvas = np.zeros((72 + 2 * 40, 64 + 2 * 40), np.float32)  # margin for crops reaching past the frame
        canvas[40 + y0: 40 + y0 + crop.shape[0], 40 + x0: 40 + x0 + crop.shape[1]] = crop
        np.testing.assert_allclose(canvas[40:-40, 40:-40], full[i], atol=1e-6)


def test_phase_roi_heads_give_class_probabilities_in_their_outputs(tmp_path):
    """No side channel: each result dict carries its own ``class_probs``, one row per detection."""
    from conftest import tiny_overrides
    from pcnacycle.modeling.model import build_model
    from pcnacycle.modeling.roi_heads import PhaseRoIHeads

    cfg = load_config("stage3_pcna_cpu", tiny_overrides(tmp_path, **{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.001}))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert isinstance(model.roi_heads, PhaseRoIHeads) and not hasattr(PhaseRoIHeads, "class_probs")
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 80)]
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2 and not hasattr(model.roi_heads, "_pending_probs")
    for output in outputs:
        probs = output["class_probs"]
        assert len(probs) > 0 and probs.shape == (len(output["boxes"]), 3)
        torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
        assert (probs.argmax(1) + 1 == output["labels"]).all()


def test_resize_transform_sizes_and_maps_boxes_back():
    from pcnacycle.modeling.model import ResizeTransform

    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST", "128", "INPUT.MIN_SIZE_TRAIN", "[32, 48]"])
    transform = ResizeTransform(cfg).eval()
    batch, _ = transform([torch.rand(1, 64, 80)])
    assert [tuple(s) for s in batch.image_sizes] == [(128, 160)]
    found = [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.5, 1.5, 127.0, 159.0]])}]
    back = transform.postprocess(found, batch.image_sizes, [(64, 80)])[0]["boxes"]
    torch.testing.assert_close(back, torch.tensor([[5.0, 10.0, 15.0, 20.0], [0.25, 0.75, 63.5, 79.5]]))
    transform.train()
    torch.manual_seed(0)
    assert {transform.resize(torch.rand(1, 64, 80))[0].shape[-2] for _ in range(20)} == {32, 48}


def test_a_cpu_model_runs_channels_last_and_finds_what_the_default_layout_finds(trained_run):
    import copy

    from pcnacycle.engine.predictor import Predictor

    predictor = Predictor(trained_run)
    conv = predictor.model.backbone.body.layer1[0].conv1.weight  # (64, 64, 3, 3): the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    default = Predictor.from_model(copy.deepcopy(predictor.model).to(memory_format=torch.contiguous_format),
                                   predictor.cfg)
    image = discs_image((128, 128), radius=7, spacing=24).astype(np.float32)
    with torch.no_grad():
        fast = predictor.model([torch.from_numpy(image)])[0]
        plain = default.model([torch.from_numpy(image)])[0]
    assert len(plain["scores"]) > 0
    order_fast, order_plain = torch.argsort(fast["scores"]), torch.argsort(plain["scores"])
    torch.testing.assert_close(fast["scores"][order_fast], plain["scores"][order_plain], atol=1e-4, rtol=0)
    torch.testing.assert_close(fast["boxes"][order_fast], plain["boxes"][order_plain], atol=1e-2, rtol=0)
    torch.testing.assert_close(fast["masks"][order_fast], plain["masks"][order_plain], atol=1e-3, rtol=0)


def _frozen_bn_model(seed=0):
    """A small FrozenBN Mask R-CNN in eval mode whose norms have non-trivial statistics."""
    from torchvision.ops import FrozenBatchNorm2d

    from pcnacycle.modeling.model import build_model

    cfg = load_config(None, ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.OUT_CHANNELS",
                             "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
                             "INPUT.MIN_SIZE_TEST", "0", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
                             "MODEL.DEVICE", "cpu"])
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            n = module.weight.numel()
            module.weight.copy_(torch.rand(n) + 0.5)
            module.bias.copy_(torch.randn(n) * 0.1)
            module.running_mean.copy_(torch.randn(n) * 0.1)
            module.running_var.copy_(torch.rand(n) + 0.5)
    return model, cfg


def test_folding_batch_norms_into_convolutions_keeps_the_features_and_detections():
    import copy

    from torchvision.ops import FrozenBatchNorm2d

    from pcnacycle.modeling.inference import fold_batch_norms

    model, _ = _frozen_bn_model()
    norms = sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    folded_model = copy.deepcopy(model)
    # ResNet-18: the stem, two per block (8 blocks) and three downsample norms
    assert fold_batch_norms(folded_model) == norms == 1 + 2 * 8 + 3
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded_model.modules())
    image = torch.from_numpy(discs_image((128, 128), radius=7, spacing=24))
    with torch.no_grad():
        features = model.backbone(image[None])
        folded_features = folded_model.backbone(image[None])
        for level in features:
            torch.testing.assert_close(folded_features[level], features[level], atol=1e-4, rtol=1e-4)
        plain, folded = model([image])[0], folded_model([image])[0]
    assert len(plain["scores"]) > 0
    torch.testing.assert_close(folded["scores"], plain["scores"], atol=1e-4, rtol=0)
    torch.testing.assert_close(folded["boxes"], plain["boxes"], atol=1e-2, rtol=0)
    torch.testing.assert_close(folded["class_probs"], plain["class_probs"], atol=1e-4, rtol=0)


def test_folding_needs_eval_mode_and_leaves_group_norm_models_alone(trained_run):
    from pcnacycle.modeling.inference import fold_batch_norms

    model, _ = _frozen_bn_model()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model.train())
    from pcnacycle.engine.predictor import Predictor

    gn = Predictor(trained_run).model  # the default GroupNorm: nothing to fold
    assert any(isinstance(m, torch.nn.GroupNorm) for m in gn.modules())
    assert fold_batch_norms(gn) == 0


def test_a_predictor_folds_a_frozen_bn_checkpoint_and_finds_the_same_nuclei(tmp_path):
    from torchvision.ops import FrozenBatchNorm2d

    from pcnacycle.engine.predictor import Predictor, predict_image

    model, cfg = _frozen_bn_model()
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, tmp_path / "model.pt")
    predictor = Predictor(tmp_path / "model.pt")
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in predictor.model.modules())
    image = discs_image((128, 128), radius=7, spacing=24)
    found, expected = predictor.predict(image), predict_image(model, image, cfg)
    assert len(expected["scores"]) > 0
    np.testing.assert_allclose(found["scores"], expected["scores"], atol=1e-4)
    np.testing.assert_allclose(found["probs"], expected["probs"], atol=1e-4)
    assert (found["label_image"] != expected["label_image"]).mean() < 1e-3


@pytest.fixture(scope="module")
def onnx_export(trained_run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from pcnacycle.engine.predictor import export_onnx

    return export_onnx(trained_run, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_a_model_run_from_its_onnx_export_finds_the_same_nuclei(trained_run, onnx_export):
    from pcnacycle.engine.predictor import Predictor
    from pcnacycle.modeling.onnx_runtime import OnnxBackbone

    assert onnx_export["max_difference"] < 1e-3
    eager, exported = Predictor(trained_run), Predictor(trained_run, onnx=onnx_export["output"])
    assert isinstance(exported.model.backbone, OnnxBackbone)
    # a frame of another size than the export traced: the file takes any height and width
    image = discs_image((96, 160), radius=7, spacing=24)
    found, expected = exported.predict(image), eager.predict(image)
    assert len(expected["scores"]) > 0
    np.testing.assert_allclose(found["scores"], expected["scores"], atol=1e-4)
    np.testing.assert_allclose(found["probs"], expected["probs"], atol=1e-4)
    assert (found["label_image"] != expected["label_image"]).mean() < 1e-3


def test_an_onnx_file_is_refused_with_other_weights_and_never_overwritten(trained_run, onnx_export, tmp_path,
                                                                         capsys):
    from pcnacycle import cli
    from pcnacycle.engine.predictor import Predictor, export_onnx
    from pcnacycle.errors import PcnacycleError

    other = sorted(trained_run.glob("model_0*.pt"))[0]  # an earlier checkpoint of the same run
    with pytest.raises(PcnacycleError, match="exported from other weights"):
        Predictor(other, onnx=onnx_export["output"])
    before = Path(onnx_export["output"]).read_bytes()
    with pytest.raises(PcnacycleError, match="exists; give --overwrite"):
        export_onnx(other, onnx_export["output"])
    assert Path(onnx_export["output"]).read_bytes() == before
    with pytest.raises(PcnacycleError, match="is a folder"):
        export_onnx(trained_run, tmp_path, overwrite=True)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((2, 64, 64), np.uint16))
    assert cli.main(["run", "--weights", str(other), "--pcna", str(movie), "--output", str(tmp_path / "out"),
                     "--onnx", onnx_export["output"], "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exported from other weights" in err[0]
    assert not (tmp_path / "out").exists()
    assert cli.main(["run", "--weights", str(trained_run), "--pcna", str(movie), "--output", str(tmp_path / "out"),
                     "--onnx", str(tmp_path / "absent.onnx"), "--quiet"]) == 2
    assert "ONNX file not found" in capsys.readouterr().err


def test_export_onnx_writes_beside_the_checkpoint_by_default(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import shutil

    from pcnacycle import cli

    shutil.copy(trained_run / "model_final.pt", tmp_path / "model_final.pt")
    assert cli.main(["export-onnx", "--weights", str(tmp_path)]) == 0
    assert (tmp_path / "model_final.onnx").is_file()
    assert "model_final.onnx" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.partial"))
