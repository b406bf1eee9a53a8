"""detectron2 / pcnaDeep checkpoints: names, class and channel layouts, safe loading, one-line errors.

No detectron2 here: detectron2-named state dicts are built from our own
models through the inverse mapping (``benchmarks/detectron2_parity.py``
checks the numbers against detectron2 itself).
"""

import pickle

import numpy as np
import pytest
import torch

from pcnacycle.cli import main
from pcnacycle.config import load_config
from pcnacycle.engine.predictor import load_model
from pcnacycle.errors import PcnacycleError
from pcnacycle.modeling.convert_weights import (
    SourceLayout,
    convert_detectron2,
    detectron2_to_pcnacycle,
    pcnacycle_to_detectron2,
    pcnadeep_layout,
    read_detectron2_checkpoint,
)
from pcnacycle.modeling.detectron2_layout import Detectron2AnchorGenerator, paste_in_box_aligned
from pcnacycle.modeling.model import build_model, load_weights, read_checkpoint

SMALL_HEADS = ["MODEL.DEVICE", "cpu", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
               "MODEL.ROI_MASK_HEAD.CONV_DIM", "16", "INPUT.MIN_SIZE_TEST", "0"]
#: A pcnaDeep-shaped model as pcnacycle builds it: 3 classes plus E folded into G1/G2, inputs pcna, pcna, dic.
PCNADEEP_SHAPED = SMALL_HEADS + [
    "MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.NORM", "", "MODEL.RESNETS.STRIDE_IN_1X1", "true",
    "MODEL.CLASS_NAMES", "[G1/G2, S, M]", "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ROI_HEADS.FOLDED_CLASSES", "[E=G1/G2]", "INPUT.CHANNELS", "[pcna, pcna, dic]"]
PREDICTOR_BACKGROUND_ROWS = {"roi_heads.box_predictor.bbox_pred.weight": 4, "roi_heads.box_predictor.bbox_pred.bias": 4,
                             "roi_heads.mask_predictor.mask_fcn_logits.weight": 1,
                             "roi_heads.mask_predictor.mask_fcn_logits.bias": 1}


@pytest.fixture(scope="module")
def pcnadeep_model_state():
    """A pcnacycle model of pcnaDeep's shape, random BN statistics, background box/mask rows zero."""
    torch.manual_seed(0)
    model = build_model(load_config(None, PCNADEEP_SHAPED))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, tensor in state.items():
        if name.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias")):
            tensor.normal_()
        elif name.endswith("running_var"):
            tensor.uniform_(0.5, 2.0)
    for name, rows in PREDICTOR_BACKGROUND_ROWS.items():
        state[name][:rows] = 0  # detectron2 has no background rows: these are what conversion writes
    return state


@pytest.fixture(scope="module")
def pcnadeep_file(pcnadeep_model_state, tmp_path_factory):
    """A detectron2 .pth of pcnaDeep's layout (classes G1/G2, S, M, E; channels PCNA, PCNA, BF)."""
    path = tmp_path_factory.mktemp("d2") / "pcnadeep_model_final.pth"
    d2_state = pcnacycle_to_detectron2(pcnadeep_model_state, pcnadeep_layout(), ["G1/G2", "S", "M"])
    torch.save({"model": d2_state, "iteration": 10}, path)
    return path


def test_inverse_mapping_gives_detectron2s_names_and_shapes(pcnadeep_model_state):
    d2 = pcnacycle_to_detectron2(pcnadeep_model_state, pcnadeep_layout(), ["G1/G2", "S", "M"])
    # names and shapes as detectron2's own R50-FPN Mask R-CNN has them (4 classes, 3 channels)
    expected = {"backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7),
                "backbone.bottom_up.stem.conv1.norm.running_var": (64,),
                "backbone.bottom_up.res2.0.shortcut.norm.running_mean": (256,),
                "backbone.bottom_up.res4.5.conv3.norm.bias": (1024,),
                "backbone.bottom_up.res5.2.conv2.weight": (512, 512, 3, 3),
                "backbone.fpn_lateral5.weight": (32, 2048, 1, 1), "backbone.fpn_output2.bias": (32,),
                "proposal_generator.rpn_head.conv.weight": (32, 32, 3, 3),
                "proposal_generator.rpn_head.objectness_logits.weight": (3, 32, 1, 1),
                "proposal_generator.rpn_head.anchor_deltas.bias": (12,),
                "roi_heads.box_head.fc1.weight": (32, 32 * 7 * 7), "roi_heads.box_head.fc2.bias": (32,),
                "roi_heads.box_predictor.cls_score.weight": (5, 32),
                "roi_heads.box_predictor.bbox_pred.weight": (16, 32),
                "roi_heads.mask_head.mask_fcn4.weight": (16, 16, 3, 3),
                "roi_heads.mask_head.deconv.weight": (16, 16, 2, 2),
                "roi_heads.mask_head.predictor.weight": (4, 16, 1, 1)}
    assert {name: tuple(d2[name].shape) for name in expected} == expected
    assert len(d2) == len(pcnadeep_model_state) == 307  # what detectron2's R50-FPN Mask R-CNN state dict holds
    assert not [name for name in d2 if name.startswith(("backbone.body", "rpn.", "backbone.fpn."))]


def test_round_trip_returns_every_tensor(pcnadeep_model_state):
    layout, names = pcnadeep_layout(), ["G1/G2", "S", "M"]
    d2 = pcnacycle_to_detectron2(pcnadeep_model_state, layout, names)
    back, settings = detectron2_to_pcnacycle(d2, layout, names, layout.channels)
    assert back.keys() == pcnadeep_model_state.keys()
    for name, tensor in pcnadeep_model_state.items():
        assert torch.equal(back[name], tensor), name
    again = pcnacycle_to_detectron2(back, layout, names)
    assert all(torch.equal(again[name], d2[name]) for name in d2)
    assert settings["MODEL.RESNETS.NORM"] == "FrozenBN" and settings["MODEL.RESNETS.DEPTH"] == 50
    assert settings["MODEL.ROI_HEADS.FOLDED_CLASSES"] == ["E=G1/G2"]


def test_class_layout_moves_background_first_and_folds_e(pcnadeep_file, tmp_path):
    d2 = read_detectron2_checkpoint(pcnadeep_file)
    out = convert_detectron2(pcnadeep_file, tmp_path / "model.pt", layout=pcnadeep_layout())
    converted = torch.load(out, map_location="cpu", weights_only=True)
    cls = converted["model"]["roi_heads.box_predictor.cls_score.weight"]
    source = d2["roi_heads.box_predictor.cls_score.weight"]  # rows G1/G2, S, M, E, background
    assert torch.equal(cls, source[[4, 0, 1, 2, 3]])
    deltas = converted["model"]["roi_heads.box_predictor.bbox_pred.weight"]
    assert torch.equal(deltas[4:8], d2["roi_heads.box_predictor.bbox_pred.weight"][0:4])  # G1/G2's box regressor
    assert not deltas[:4].any()

    model, cfg = load_model(out)
    assert cfg.MODEL.CLASS_NAMES == ["G1/G2", "S", "M"] and cfg.MODEL.ROI_HEADS.FOLDED_CLASSES == ["E=G1/G2"]
    features = torch.randn(6, 32)
    logits, box_deltas = model.roi_heads.box_predictor(features)
    full = torch.nn.functional.linear(features, source, d2["roi_heads.box_predictor.cls_score.bias"]).softmax(-1)
    expected = torch.stack([full[:, 4], full[:, 0] + full[:, 3], full[:, 1], full[:, 2]], 1)
    torch.testing.assert_close(logits.softmax(-1), expected)
    assert box_deltas.shape == (6, 16)
    # the preprocessing it was trained with is recorded
    assert cfg.MODEL.PIXEL_MEAN == [103.53, 116.28, 123.675] and cfg.MODEL.PIXEL_STD == [1.0, 1.0, 1.0]
    assert cfg.INPUT.CHANNELS == ["pcna", "pcna", "dic"]
    assert cfg.INPUT.NORMALIZE.PERCENTILES == [1.0, 99.0] and cfg.INPUT.MIN_SIZE_TEST == 1200
    assert converted["converted_from"]["classes"] == ["G1/G2", "S", "M", "E"]
    assert (tmp_path / "config.yaml").is_file()


def test_channels_map_by_name_onto_the_configs(pcnadeep_file, tmp_path):
    base = load_config(None, SMALL_HEADS + ["INPUT.CHANNELS", "[dic, pcna]", "MODEL.CLASS_NAMES", "[S, M, G1/G2]",
                                            "MODEL.ROI_HEADS.NUM_CLASSES", "3"])
    out = convert_detectron2(pcnadeep_file, tmp_path / "model.pt", layout=pcnadeep_layout(), base=base)
    d2 = read_detectron2_checkpoint(pcnadeep_file)["backbone.bottom_up.stem.conv1.weight"]
    _, cfg = load_model(out)
    converted, _ = read_checkpoint(out)  # the file's tensors (a loaded model has its norms folded in)
    first = converted["backbone.body.conv1.weight"]
    torch.testing.assert_close(first[:, 0], d2[:, 2])  # dic: the bright-field channel
    torch.testing.assert_close(first[:, 1], d2[:, 0] + d2[:, 1])  # pcna: both PCNA channels (stds equal)
    assert cfg.MODEL.PIXEL_MEAN == pytest.approx([123.675, (103.53 + 116.28) / 2])
    assert cfg.MODEL.CLASS_NAMES == ["S", "M", "G1/G2"]  # the config's class order
    cls = converted["roi_heads.box_predictor.cls_score.weight"]
    source = read_detectron2_checkpoint(pcnadeep_file)["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(cls, source[[4, 1, 2, 0, 3]])


def test_a_detectron2_pkl_of_numpy_arrays_converts(pcnadeep_file, tmp_path):
    state = read_detectron2_checkpoint(pcnadeep_file)
    pkl = tmp_path / "model_final.pkl"
    with open(pkl, "wb") as handle:
        # protocol 2, as older model-zoo files: bytes go through _codecs.encode, which must be allowed
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Detectron2 Model Zoo"}, handle,
                    protocol=2)
    assert main(["convert-weights", str(pkl), str(tmp_path / "out" / "model.pt"), "INPUT.MIN_SIZE_TEST", "0",
                 "--pcnadeep"]) == 0
    from_pkl, cfg = load_model(tmp_path / "out" / "model.pt")
    assert cfg.INPUT.MIN_SIZE_TEST == 0  # the override, applied after pcnaDeep's recorded 1200
    from_pth, _ = load_model(convert_detectron2(pcnadeep_file, tmp_path / "pth" / "model.pt", pcnadeep_layout()))
    assert all(torch.equal(a, b) for a, b in zip(from_pkl.state_dict().values(), from_pth.state_dict().values()))


class Payload:
    """Stands for code a pickle could run on loading."""

    def __reduce__(self):
        return (print, ("this must never be printed",))


def test_pkl_naming_anything_but_numpy_is_refused(tmp_path, capsys):
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"model": {"backbone.bottom_up.stem.conv1.weight": np.zeros(3)}, "x": Payload()}))
    assert main(["convert-weights", str(pkl), str(tmp_path / "out.pt"), "--pcnadeep"]) == 2
    captured = capsys.readouterr()
    assert "must never be printed" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "evil.pkl" in lines[0] and "builtins.print" in lines[0] and "refused" in lines[0]
    with pytest.raises(PcnacycleError, match="builtins.print"):  # MODEL.WEIGHTS reads .pkl the same way
        load_weights(build_model(load_config(None, SMALL_HEADS)), pkl)


def test_bad_files_and_layouts_are_one_line_errors(pcnadeep_file, tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    ours = tmp_path / "ours.pt"
    torch.save({"model": build_model(load_config(None, SMALL_HEADS + ["MODEL.RESNETS.DEPTH", "18"])).state_dict()},
               ours)
    (tmp_path / "exists.pt").write_bytes(b"")
    cases = [
        ([str(tmp_path / "missing.pth"), str(tmp_path / "a.pt")], "missing.pth: weights file not found"),
        ([str(junk), str(tmp_path / "b.pt")], "junk.pth: not a PyTorch weights file"),
        ([str(ours), str(tmp_path / "c.pt")], "ours.pt: no detectron2 Mask R-CNN tensors"),
        ([str(pcnadeep_file), str(tmp_path / "d.pt"), "--classes", "a", "b", "--channels", "pcna", "pcna", "dic"],
         "has 4 classes, but 2 class names"),
        ([str(pcnadeep_file), str(tmp_path / "e.pt"), "--classes", "A", "B", "C", "D", "--channels", "pcna"],
         "takes 3 input channels, but 1 channel names"),
        ([str(pcnadeep_file), str(tmp_path / "f.pt"), "--pcnadeep", "--fold", "E"], "--fold 'E': expected NAME=CLASS"),
        ([str(pcnadeep_file), str(tmp_path / "exists.pt"), "--pcnadeep"], "exists.pt: already exists"),
    ]
    for args, message in cases:
        assert main(["convert-weights", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "a.pt").exists() and (tmp_path / "exists.pt").read_bytes() == b""


def test_model_weights_accepts_a_detectron2_file(pcnadeep_file):
    # fine-tuning a one-channel, one-class model from pcnaDeep's weights: backbone and heads load, the first
    # convolution is adapted, the class predictors start afresh
    model = build_model(load_config(None, SMALL_HEADS + ["MODEL.RESNETS.NORM", "FrozenBN", "MODEL.FPN.NORM", ""]))
    report = load_weights(model, pcnadeep_file)
    assert "backbone.body.layer3.5.bn3.running_var" in report["loaded"]
    assert "roi_heads.mask_head.3.0.weight" in report["loaded"]
    assert report["adapted"] == ["backbone.body.conv1.weight"]
    assert "roi_heads.box_predictor.cls_score.weight" in report["reinitialised"]
    assert not report["unused"]


def test_detectron2_anchors_are_exact_with_fixed_strides():
    generator = Detectron2AnchorGenerator(((32,),) * 5, ((0.5, 1.0, 2.0),) * 5)
    cell = generator.cell_anchors[0]
    widths, heights = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    torch.testing.assert_close(widths * heights, torch.full((3,), 32.0**2))  # not rounded to whole pixels
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 1.0, 2.0]))
    from torchvision.models.detection.image_list import ImageList

    features = [torch.zeros(1, 1, 200 // s, 200 // s) for s in (4, 8, 16, 32)] + [torch.zeros(1, 1, 4, 4)]
    anchors = generator(ImageList(torch.zeros(1, 1, 224, 224), [(200, 200)]), features)[0]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    last_level = centres[-4 * 4 * 3:]
    assert sorted(set(last_level[:, 0].tolist())) == [0.0, 64.0, 128.0, 192.0]  # stride 64, not 224 // 4


def test_aligned_paste_covers_the_pixels_whose_centres_lie_in_the_box():
    crop, top, left = paste_in_box_aligned(torch.ones(28, 28), torch.tensor([10.0, 20.0, 30.0, 50.0]))
    frame = np.zeros((80, 80), bool)
    frame[top:top + crop.shape[0], left:left + crop.shape[1]] = crop >= 0.5
    expected = np.zeros((80, 80), bool)
    expected[20:50, 10:30] = True
    assert np.array_equal(frame, expected)


def test_stride_in_1x1_moves_only_where_the_stride_is():
    cfg = load_config(None, SMALL_HEADS + ["MODEL.RESNETS.STRIDE_IN_1X1", "true"])
    body = build_model(cfg).backbone.body
    assert body.layer2[0].conv1.stride == (2, 2) and body.layer2[0].conv2.stride == (1, 1)
    assert body.layer1[0].conv1.stride == (1, 1)
    shapes = [tuple(v.shape) for v in body(torch.zeros(1, 1, 64, 64)).values()]
    assert shapes == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]


def test_layout_keys_are_validated():
    with pytest.raises(PcnacycleError, match="MODEL.PIXEL_MEAN"):
        load_config(None, ["MODEL.PIXEL_MEAN", "[1, 2]"])  # one channel, two means
    with pytest.raises(PcnacycleError, match="MODEL.ROI_HEADS.FOLDED_CLASSES"):
        load_config(None, ["MODEL.ROI_HEADS.FOLDED_CLASSES", "[E=G2]"])  # G2 is not a class
    assert SourceLayout(classes=["a"], channels=["gray"]).pixel_mean == [103.53, 116.28, 123.675]


def test_a_detectron2_config_records_how_the_model_ran(pcnadeep_file, tmp_path, capsys):
    (tmp_path / "Base.yaml").write_text("MODEL:\n  RESNETS: {STRIDE_IN_1X1: false}\n  PIXEL_MEAN: [1.0, 2.0, 3.0]\n"
                                        "  ROI_BOX_HEAD: {POOLER_TYPE: ROIAlign, POOLER_SAMPLING_RATIO: 2}\n"
                                        "  MASK_ON: true\nSOLVER: {BASE_LR: 0.02}\n")
    (tmp_path / "model.yaml").write_text("_BASE_: Base.yaml\nMODEL: {PIXEL_STD: [57.0, 57.0, 58.0]}\n"
                                         "INPUT: {MIN_SIZE_TEST: 0}\nTEST: {DETECTIONS_PER_IMAGE: 500}\n")
    out = tmp_path / "out" / "model.pt"
    assert main(["convert-weights", str(pcnadeep_file), str(out), "--pcnadeep",
                 "--detectron2-config", str(tmp_path / "model.yaml")]) == 0
    _, cfg = load_model(out)
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False and cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE == "ROIAlign"
    assert cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE == "ROIAlignV2"  # detectron2's default where the file says nothing
    assert cfg.MODEL.PIXEL_MEAN == [1.0, 2.0, 3.0] and cfg.MODEL.PIXEL_STD == [57.0, 57.0, 58.0]
    assert cfg.INPUT.MIN_SIZE_TEST == 0 and cfg.TEST.DETECTIONS_PER_IMAGE == 500
    body = build_model(cfg).backbone.body
    assert body.layer2[0].conv1.stride == (1, 1) and body.layer2[0].conv2.stride == (2, 2)  # stride in the 3x3
    capsys.readouterr()
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    assert main(["convert-weights", str(pcnadeep_file), str(tmp_path / "x.pt"), "--pcnadeep",
                 "--detectron2-config", str(tmp_path / "loop.yaml")]) == 2
    assert "loop.yaml: _BASE_ chain loops back to itself" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("MODEL: {PIXEL_MEAN: 5}\n")
    assert main(["convert-weights", str(pcnadeep_file), str(tmp_path / "y.pt"),
                 "--detectron2-config", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml: MODEL.PIXEL_MEAN should be a list of numbers, got 5" in capsys.readouterr().err
    # a config alone: classes and channels are named after the checkpoint's counts
    assert main(["convert-weights", str(pcnadeep_file), str(tmp_path / "plain" / "model.pt"),
                 "--detectron2-config", str(tmp_path / "model.yaml")]) == 0
    _, cfg = load_model(tmp_path / "plain" / "model.pt")
    assert cfg.MODEL.CLASS_NAMES == ["class0", "class1", "class2", "class3"] and cfg.INPUT.CHANNELS == ["b", "g", "r"]
