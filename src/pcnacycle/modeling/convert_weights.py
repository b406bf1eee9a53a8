"""detectron2 Mask R-CNN checkpoints (pcnaDeep's included) as pcnacycle checkpoints.

A detectron2 R50/R101-FPN Mask R-CNN (``.pth``: a torch file with a
``model`` state dict; ``.pkl``: a pickle of numpy arrays, as detectron2's
model zoo ships them) becomes a pcnacycle checkpoint that
:func:`pcnacycle.modeling.model.build_model` and ``weights_only`` loading accept:

- tensor names mapped (:func:`detectron2_to_pcnacycle_name` and its inverse);
- BatchNorm statistics kept as frozen BatchNorm (``MODEL.RESNETS.NORM
  FrozenBN``), GroupNorm kept as GroupNorm;
- classes re-ordered (detectron2 puts background last, torchvision first;
  torchvision's box and mask predictors have background rows, detectron2's do
  not), and classes absent from ``MODEL.CLASS_NAMES`` folded into one that is
  (pcnaDeep's E into G1/G2, ``MODEL.ROI_HEADS.FOLDED_CLASSES``);
- input channels mapped by name onto ``INPUT.CHANNELS`` (pcnaDeep's
  PCNA, PCNA, bright-field become ``[pcna, pcna, dic]``);
- the preprocessing the model was trained with recorded in the config
  (``MODEL.PIXEL_MEAN``/``PIXEL_STD``) and detectron2's stride placement,
  anchors and RoIAlign chosen (see :mod:`pcnacycle.modeling.detectron2_layout`), so
  the converted model computes what detectron2 computes
  (``benchmarks/detectron2_parity.py``).
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import CfgNode, config_from_dict, get_default_config, merge_overrides, set_value, validate
from ..errors import PcnacycleError
from ..io import file_sha256
from .detectron2_names import detectron2_to_pcnacycle_name, pcnacycle_to_detectron2_name

log = logging.getLogger(__name__)

#: detectron2's defaults for MSRA ResNets (BGR, 0-255): what its model zoo models were trained with.
DETECTRON2_PIXEL_MEAN = (103.53, 116.28, 123.675)
DETECTRON2_PIXEL_STD = (1.0, 1.0, 1.0)

#: detectron2's defaults for what the tensors cannot tell; a detectron2 config (``--detectron2-config``)
#: or ``SourceLayout.config`` overrides them.
DETECTRON2_DEFAULTS = {
    "MODEL.RESNETS.STRIDE_IN_1X1": True, "MODEL.RPN.STYLE": "detectron2",
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": "ROIAlignV2", "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": "ROIAlignV2", "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO": 0,
}

#: detectron2 config keys that change what a model computes at test time, read from its YAML file; each
#: has the same name in pcnacycle's config.
DETECTRON2_TEST_KEYS = (
    "MODEL.RESNETS.STRIDE_IN_1X1", "MODEL.ANCHOR_GENERATOR.SIZES", "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "MODEL.RPN.POST_NMS_TOPK_TEST", "MODEL.RPN.NMS_THRESH",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.ROI_HEADS.NMS_THRESH_TEST",
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO",
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO",
    "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST", "TEST.DETECTIONS_PER_IMAGE")


@dataclass
class SourceLayout:
    """What a detectron2 checkpoint's class and channel axes mean.

    Attributes
    ----------
    classes : class names in the detectron2 predictor's order (background excluded)
    channels : pcnacycle channel names of the network's input channels, in order
    fold : ``{name: class}``, source classes counted as another class
    pixel_mean, pixel_std : per input channel, on detectron2's 0-255 scale
    config : ``{dotted key: value}``, how the model was trained and run
        (input normalisation, test size), recorded in the converted config
    """

    classes: list[str]
    channels: list[str]
    fold: dict[str, str] = field(default_factory=dict)
    pixel_mean: list[float] = field(default_factory=lambda: list(DETECTRON2_PIXEL_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(DETECTRON2_PIXEL_STD))
    config: dict = field(default_factory=dict)


def pcnadeep_layout() -> SourceLayout:
    """pcnaDeep's published models (``mrcnn_sat_rot_aug.pth``), as its training script and configs describe them.

    Classes G1/G2, S, M, E (``CLASS_NAMES`` of ``bin/train_detectron2.py``;
    E, emerging daughters, folded into G1/G2); input an 8-bit composite of
    PCNA, PCNA and bright-field/DIC, each channel stretched between its 1st
    and 99th percentiles with gamma 1 (``getDetectInput`` with
    ``PIX_SATURATE: 1``, ``GAMMA: 1`` of ``config/pcnaCfg.yaml``); detectron2's
    default pixel mean/std; test size, detections per image as
    ``config/dtrnCfg.yaml`` (chan-labsite/PCNAdeep on GitHub).
    """
    return SourceLayout(classes=["G1/G2", "S", "M", "E"], channels=["pcna", "pcna", "dic"], fold={"E": "G1/G2"},
                        config={"INPUT.NORMALIZE.PERCENTILES": [1.0, 99.0], "INPUT.NORMALIZE.GAMMA": 1.0,
                                "INPUT.MIN_SIZE_TEST": 1200, "INPUT.MAX_SIZE_TEST": 2048,
                                "TEST.DETECTIONS_PER_IMAGE": 1024})


def layout_from_options(pcnadeep: bool = False, classes: list[str] | None = None, channels: list[str] | None = None,
                        fold: list[str] | None = None, pixel_mean: list[float] | None = None,
                        pixel_std: list[float] | None = None, config: str | None = None) -> SourceLayout | None:
    """A layout from command-line options: pcnaDeep's, or classes and channels given, then what a detectron2
    ``config`` file says, each option replacing the preset's; None when nothing is given. Classes and
    channels left empty are named after the checkpoint's counts by :func:`convert_detectron2`."""
    layout = pcnadeep_layout() if pcnadeep else None
    if not (classes or channels or fold or pixel_mean or pixel_std or config):
        return layout
    if layout is None and bool(classes) != bool(channels):
        raise PcnacycleError("--classes and --channels go together (or start from --pcnadeep)")
    layout = layout or SourceLayout(classes=classes or [], channels=channels or [])
    if config:
        read_detectron2_config(config, layout)
    layout.classes, layout.channels = classes or layout.classes, channels or layout.channels
    for entry in fold or []:
        if entry.count("=") != 1:
            raise PcnacycleError(f"--fold {entry!r}: expected NAME=CLASS, e.g. E=G1/G2")
        name, target = entry.split("=")
        layout.fold[name] = target
    layout.pixel_mean, layout.pixel_std = pixel_mean or layout.pixel_mean, pixel_std or layout.pixel_std
    return layout


def read_detectron2_config(path: str | os.PathLike, layout: SourceLayout) -> None:
    """Record in ``layout`` what a detectron2 YAML config says about running its model.

    Its ``_BASE_`` chain is followed; :data:`DETECTRON2_TEST_KEYS` go to
    ``layout.config``, ``MODEL.PIXEL_MEAN``/``PIXEL_STD`` to the layout's
    pixel statistics. Other keys (training, datasets) are not needed here.
    """
    tree = _detectron2_yaml(Path(path), seen=())
    for key in DETECTRON2_TEST_KEYS:
        value = _lookup(tree, key)
        if value is not None:
            layout.config[key] = value
    for key in ("MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD"):
        value = _lookup(tree, key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)):
            raise PcnacycleError(f"{path}: {key} should be a list of numbers, got {value!r}")
    layout.pixel_mean = _lookup(tree, "MODEL.PIXEL_MEAN") or layout.pixel_mean
    layout.pixel_std = _lookup(tree, "MODEL.PIXEL_STD") or layout.pixel_std


def _detectron2_yaml(path: Path, seen: tuple) -> dict:
    """A detectron2 YAML file merged over its ``_BASE_`` files."""
    import yaml

    path = path.resolve()
    if path in seen:
        raise PcnacycleError(f"{path}: _BASE_ chain loops back to itself")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PcnacycleError(f"{path}: cannot read detectron2 config ({str(exc).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise PcnacycleError(f"{path}: a detectron2 config must hold a mapping of keys")
    base = tree.pop("_BASE_", None)
    return _merge(_detectron2_yaml(path.parent / base, seen + (path,)), tree) if base else tree


def _merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged


def _lookup(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


# ----------------------------------------------------------------------------- reading files


#: The globals a pickle of numpy arrays needs (``_codecs.encode`` turns text into bytes in protocol-2
#: pickles, as torch's own safe loader also allows); a pickle naming anything else is refused.
_PICKLE_ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode")})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; any other global is refused (a pickle can run code)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a numpy array; refused "
                                         "(a pickle can run code when loaded)")
        return super().find_class(module, name)


def read_detectron2_checkpoint(path: str | os.PathLike) -> dict:
    """The model state dict of a detectron2 ``.pkl`` or ``.pth`` checkpoint, as torch tensors.

    Returns
    -------
    ``{name: tensor}`` with detectron2's names (``num_batches_tracked``
    counters left out).

    Raises
    ------
    PcnacycleError
        Naming the file: not found, not loadable safely, or no detectron2
        Mask R-CNN tensors in it.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise PcnacycleError(f"{path}: weights file not found")
    if path.suffix == ".pkl":
        try:
            with open(path, "rb") as handle:
                data = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
            raise PcnacycleError(f"{path}: not a detectron2 .pkl of numpy arrays ({exc})") from None
    else:
        from .model import load_torch_file

        data = load_torch_file(path)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, (np.ndarray, torch.Tensor)) for v in state.values()):
        raise PcnacycleError(f"{path}: holds neither a state dict nor a checkpoint with a 'model' state dict")
    state = {k: torch.as_tensor(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
             for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if not is_detectron2_state(state):
        raise PcnacycleError(f"{path}: no detectron2 Mask R-CNN tensors in it (no 'backbone.bottom_up.*' names)")
    return state


def as_pcnacycle_names(state: dict, path: str | os.PathLike) -> dict:
    """A detectron2 state dict renamed for :func:`pcnacycle.modeling.model.load_weights` (``MODEL.WEIGHTS``).

    Classes keep the checkpoint's order (background moved first) and the
    channels their count; :func:`~pcnacycle.modeling.model.load_weights` then adapts
    the first convolution and re-initialises predictors whose class count
    differs. ``pcnacycle convert-weights`` writes the config that makes the
    network compute what detectron2 computes; fine-tuning from the raw file
    uses whatever the training config says.
    """
    state = {k: v for k, v in state.items() if k not in ("pixel_mean", "pixel_std")
             and not k.endswith("num_batches_tracked")}
    classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    channels = state["backbone.bottom_up.stem.conv1.weight"].shape[1]
    layout = SourceLayout(classes=[f"class{i}" for i in range(classes)], channels=[f"c{i}" for i in range(channels)],
                          pixel_mean=[0.0] * channels, pixel_std=[1.0] * channels)
    converted, settings = detectron2_to_pcnacycle(state, layout, layout.classes, layout.channels)
    log.info("%s: detectron2 checkpoint (R%d-FPN, %s); for its exact behaviour convert it with "
             "`pcnacycle convert-weights` and start from the config written beside it", path,
             settings["MODEL.RESNETS.DEPTH"], settings["MODEL.RESNETS.NORM"])
    return converted


def is_detectron2_state(state: dict) -> bool:
    """Whether a state dict carries detectron2's ResNet-FPN names."""
    return any(name.startswith("backbone.bottom_up.") for name in state)


# ----------------------------------------------------------------------------- class and channel axes


def _class_order(layout: SourceLayout, class_names: list[str]) -> tuple[list[int], list[str]]:
    """Source class index of each pcnacycle predictor output after background, and the folded entries.

    pcnacycle's outputs are ``class_names`` then the folded classes in source order.
    """
    missing = [name for name in class_names if name not in layout.classes]
    if missing:
        raise PcnacycleError(f"MODEL.CLASS_NAMES {missing} are not among the checkpoint's classes {layout.classes}")
    folded = [name for name in layout.classes if name not in class_names]
    unplaced = [name for name in folded if layout.fold.get(name) not in class_names]
    if unplaced:
        raise PcnacycleError(f"checkpoint classes {unplaced} are neither in MODEL.CLASS_NAMES {class_names} nor "
                             "folded into one of them (e.g. --fold E=G1/G2)")
    order = [layout.classes.index(name) for name in class_names + folded]
    return order, [f"{name}={layout.fold[name]}" for name in folded]


def _rows_to_pcnacycle(tensor, order: list[int], per_class: int, background_last: bool):
    """Predictor rows from detectron2's class order to pcnacycle's (background first).

    ``per_class`` rows per class (4 for box deltas, 1 otherwise). detectron2's
    box deltas and masks have no background rows (pcnacycle's get zeros,
    which nothing reads) and may be class-agnostic (one class's rows, repeated).
    """
    import torch

    blocks = tensor.reshape(-1, per_class, *tensor.shape[1:])
    if background_last:
        background, blocks = blocks[-1:], blocks[:-1]
    else:
        background = torch.zeros_like(blocks[:1])
    chosen = blocks[[0] * len(order)] if len(blocks) == 1 else blocks[order]
    return torch.cat([background, chosen]).reshape(-1, *tensor.shape[1:])


def _rows_to_detectron2(tensor, order: list[int], per_class: int, background_last: bool):
    """Inverse of :func:`_rows_to_pcnacycle` (background rows of box deltas and masks dropped)."""
    import torch

    blocks = tensor.reshape(-1, per_class, *tensor.shape[1:])
    source = torch.empty_like(blocks[1:])
    source[order] = blocks[1:]
    parts = [source, blocks[:1]] if background_last else [source]
    return torch.cat(parts).reshape(-1, *tensor.shape[1:])


_PREDICTOR_ROWS = {  # pcnacycle name -> (rows per class, has a background row in detectron2)
    "roi_heads.box_predictor.cls_score.weight": (1, True), "roi_heads.box_predictor.cls_score.bias": (1, True),
    "roi_heads.box_predictor.bbox_pred.weight": (4, False), "roi_heads.box_predictor.bbox_pred.bias": (4, False),
    "roi_heads.mask_predictor.mask_fcn_logits.weight": (1, False),
    "roi_heads.mask_predictor.mask_fcn_logits.bias": (1, False),
}


def _first_conv_to_channels(weight, layout: SourceLayout, channels: list[str]):
    """First-layer kernel and pixel mean/std for ``channels`` from one for ``layout.channels``.

    A target channel fed to several source channels (pcnaDeep's two PCNA
    channels onto one ``pcna``) gets their kernels summed, each scaled by
    the ratio of stds so the response is unchanged; its mean is the source
    means' average (exact when they are equal). A target channel the source
    never saw gets a zero kernel: the converted model ignores it.

    Returns
    -------
    weight (out, len(channels), k, k), pixel_mean, pixel_std (lists of len(channels))
    """
    import torch

    if list(channels) == list(layout.channels):
        return weight, list(layout.pixel_mean), list(layout.pixel_std)
    out = torch.zeros(weight.shape[0], len(channels), *weight.shape[2:], dtype=weight.dtype)
    mean, std = [], []
    for index, name in enumerate(channels):
        sources = [i for i, source in enumerate(layout.channels) if source == name]
        if not sources:
            log.warning("channel %r: the detectron2 model was not trained on it; the converted model ignores it", name)
            mean.append(0.0), std.append(255.0)
            continue
        std.append(float(np.mean([layout.pixel_std[i] for i in sources])))
        mean.append(float(np.mean([layout.pixel_mean[i] for i in sources])))
        for i in sources:
            out[:, index] += weight[:, i] * (std[-1] / layout.pixel_std[i])
    return out, mean, std


# ----------------------------------------------------------------------------- whole state dicts


def detectron2_to_pcnacycle(state: dict, layout: SourceLayout, class_names: list[str],
                            channels: list[str]) -> tuple[dict, dict]:
    """A detectron2 Mask R-CNN state dict in pcnacycle's names and layouts.

    Returns
    -------
    state : ``{pcnacycle name: tensor}``
    settings : the config values the tensors need, as ``{dotted key: value}``
    """
    order, folded = _class_order(layout, list(class_names))
    converted, unknown = {}, []
    for name, tensor in state.items():
        if name in ("pixel_mean", "pixel_std"):
            continue
        target = detectron2_to_pcnacycle_name(name)
        if target is None:
            unknown.append(name)
        elif target in _PREDICTOR_ROWS:
            per_class, background = _PREDICTOR_ROWS[target]
            converted[target] = _rows_to_pcnacycle(tensor, order, per_class, background)
        else:
            converted[target] = tensor
    if unknown:
        raise PcnacycleError(f"detectron2 tensors with no pcnacycle counterpart (only ResNet-FPN Mask R-CNN with "
                             f"a 2-fc box head converts): {', '.join(unknown[:4])}")
    first = converted["backbone.body.conv1.weight"]
    if first.shape[1] != len(layout.channels):
        raise PcnacycleError(f"the checkpoint's first convolution takes {first.shape[1]} channels but "
                             f"{len(layout.channels)} channel names were given ({layout.channels})")
    converted["backbone.body.conv1.weight"], mean, std = _first_conv_to_channels(first, layout, list(channels))
    return converted, _settings(state, converted, class_names, folded, channels, mean, std)


def _settings(source: dict, state: dict, class_names, folded, channels, mean, std) -> dict:
    """Config values that describe the converted tensors."""
    blocks = {stage: len({k.split(".")[3] for k in source if k.startswith(f"backbone.bottom_up.{stage}.")})
              for stage in ("res2", "res3", "res4", "res5")}
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}.get(tuple(blocks.values()))
    if depth is None or "backbone.body.layer1.0.conv3.weight" not in state:
        raise PcnacycleError(f"detectron2 ResNet with {list(blocks.values())} blocks per stage: only bottleneck "
                             "ResNet-50/101/152 convert")
    norm = ("FrozenBN" if "backbone.body.bn1.running_mean" in state
            else "GN" if "backbone.body.bn1.weight" in state else None)
    if norm is None:
        raise PcnacycleError("the detectron2 backbone has no normalisation layers; only BN/FrozenBN/SyncBN or GN "
                             "convert")
    fpn_norm = "GN" if "backbone.fpn.inner_blocks.0.1.weight" in state else ""
    anchors = state["rpn.head.cls_logits.weight"].shape[0]
    if anchors != 3:
        raise PcnacycleError(f"the RPN predicts {anchors} anchors per location; only 3 (one size, three ratios "
                             "per level) convert")
    return {
        "MODEL.RESNETS.DEPTH": depth, "MODEL.RESNETS.NORM": norm,
        "MODEL.FPN.NORM": fpn_norm,
        "MODEL.FPN.OUT_CHANNELS": int(state["backbone.fpn.inner_blocks.0.0.weight"].shape[0]),
        "MODEL.CLASS_NAMES": list(class_names), "MODEL.ROI_HEADS.NUM_CLASSES": len(class_names),
        "MODEL.ROI_HEADS.FOLDED_CLASSES": folded,
        "MODEL.ROI_BOX_HEAD.NUM_CONV": 0, "MODEL.ROI_BOX_HEAD.NUM_FC": 2,
        "MODEL.ROI_BOX_HEAD.FC_DIM": int(state["roi_heads.box_head.fc6.weight"].shape[0]),
        "MODEL.ROI_MASK_HEAD.NUM_CONV": len({k.split(".")[2] for k in state if k.startswith("roi_heads.mask_head.")}),
        "MODEL.ROI_MASK_HEAD.NORM": "GN" if "roi_heads.mask_head.0.1.weight" in state else "",
        "MODEL.ROI_MASK_HEAD.CONV_DIM": int(state["roi_heads.mask_predictor.conv5_mask.weight"].shape[0]),
        "INPUT.CHANNELS": list(channels), "MODEL.PIXEL_MEAN": mean, "MODEL.PIXEL_STD": std,
    }


def pcnacycle_to_detectron2(state: dict, layout: SourceLayout, class_names: list[str]) -> dict:
    """Inverse of :func:`detectron2_to_pcnacycle` for a model whose channels are ``layout.channels``.

    Background rows of the box-delta and mask predictors are dropped
    (detectron2 has none; pcnacycle never reads them).
    """
    order, _ = _class_order(layout, list(class_names))
    out = {}
    for name, tensor in state.items():
        target = pcnacycle_to_detectron2_name(name)
        if target is None:
            raise PcnacycleError(f"pcnacycle tensor {name!r} has no detectron2 counterpart")
        if name in _PREDICTOR_ROWS:
            per_class, background = _PREDICTOR_ROWS[name]
            tensor = _rows_to_detectron2(tensor, order, per_class, background)
        out[target] = tensor
    return out


def converted_config(settings: dict, base: CfgNode | None = None, overrides: list[str] = ()) -> CfgNode:
    """``base`` (default: the defaults), then ``settings``, then command-line ``overrides``, validated."""
    cfg = config_from_dict(base.to_dict()) if base is not None else get_default_config()
    for key, value in settings.items():
        set_value(cfg, key, value, source="convert-weights")
    merge_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def convert_detectron2(source: str | os.PathLike, output: str | os.PathLike, layout: SourceLayout | None = None,
                       base: CfgNode | None = None, overrides: list[str] = ()) -> Path:
    """Write a detectron2 checkpoint as a pcnacycle checkpoint plus its ``config.yaml``.

    Parameters
    ----------
    source : detectron2 ``.pth`` or ``.pkl``
    output : the pcnacycle checkpoint to write (``.pt``); ``config.yaml`` goes beside it
    layout : what the source's classes and channels are; default: as many
        classes as it has, named ``class0``..., and channels named after
        ``base``'s ``INPUT.CHANNELS`` when their count fits
    base : config whose ``MODEL.CLASS_NAMES`` (order and subset) and
        ``INPUT.CHANNELS`` the converted model follows, and whose other keys
        (test size, thresholds) it keeps unless ``layout.config`` records
        them; default: the source's classes and channels
    overrides : ``KEY VALUE`` pairs applied last (as on the command line)

    Returns
    -------
    Path of the checkpoint written (atomically; an existing file is refused).
    """
    import torch

    from ..config import dump_config
    from ..io import atomic_write, write_text

    source, output = Path(source), Path(output)
    config_path = output.parent / "config.yaml"
    for path in (output, config_path):
        if path.exists():
            raise PcnacycleError(f"{path}: already exists; choose another output (nothing is overwritten)")
    state = read_detectron2_checkpoint(source)
    default = _default_layout(state, base)
    layout = layout or default
    layout.classes, layout.channels = layout.classes or default.classes, layout.channels or default.channels
    _check_layout(state, layout, source)
    class_names = [name for name in layout.classes if name not in layout.fold]
    if base is not None and set(base.MODEL.CLASS_NAMES) <= set(layout.classes):
        class_names = list(base.MODEL.CLASS_NAMES)  # the config's order (and subset: the rest must be folded)
    elif base is not None:
        log.info("the config's MODEL.CLASS_NAMES %s are not the checkpoint's classes: using %s",
                 base.MODEL.CLASS_NAMES, class_names)
    channels = list(base.INPUT.CHANNELS) if base is not None else list(layout.channels)
    converted, settings = detectron2_to_pcnacycle(state, layout, class_names, channels)
    cfg = converted_config({**DETECTRON2_DEFAULTS, **layout.config, **settings}, base, overrides)
    checkpoint = {"model": converted, "config": cfg.to_dict(),
                  "converted_from": {"file": str(source.resolve()), "sha256": file_sha256(source),
                                     "format": "detectron2",
                                     "classes": layout.classes, "channels": layout.channels, "fold": layout.fold,
                                     "pixel_mean": layout.pixel_mean, "pixel_std": layout.pixel_std}}
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, "wb") as handle:
        torch.save(checkpoint, handle)
    write_text(config_path, dump_config(cfg))
    log.info("converted %s (%s, %s) to %s: classes %s%s, channels %s, pixel mean %s, std %s", source,
             f"R{settings['MODEL.RESNETS.DEPTH']}-FPN", settings["MODEL.RESNETS.NORM"], output, class_names,
             f" (folded {settings['MODEL.ROI_HEADS.FOLDED_CLASSES']})" if settings["MODEL.ROI_HEADS.FOLDED_CLASSES"]
             else "", channels, settings["MODEL.PIXEL_MEAN"], settings["MODEL.PIXEL_STD"])
    return output


def _default_layout(state: dict, base: CfgNode | None) -> SourceLayout:
    """Classes ``class0``... and channels from ``base`` (or ``b, g, r``) when nothing says otherwise."""
    classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    names = list(base.MODEL.CLASS_NAMES) if base is not None and len(base.MODEL.CLASS_NAMES) == classes else [
        f"class{i}" for i in range(classes)]
    in_channels = state["backbone.bottom_up.stem.conv1.weight"].shape[1]
    channels = list(base.INPUT.CHANNELS) if base is not None and len(base.INPUT.CHANNELS) == in_channels else (
        ["b", "g", "r"] if in_channels == 3 else [f"channel{i}" for i in range(in_channels)])
    return SourceLayout(classes=names, channels=channels)


def _check_layout(state: dict, layout: SourceLayout, source: Path) -> None:
    """The layout's class, channel and pixel statistic counts match the tensors; else a one-line error."""
    if "pixel_mean" in state:  # older detectron2 saved its normalisation with the weights: trust it
        layout.pixel_mean = [float(v) for v in state["pixel_mean"].flatten()]
        layout.pixel_std = [float(v) for v in state["pixel_std"].flatten()]
    classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    if classes != len(layout.classes):
        raise PcnacycleError(f"{source}: the checkpoint has {classes} classes, but {len(layout.classes)} class names "
                             f"were given ({layout.classes})")
    in_channels = state["backbone.bottom_up.stem.conv1.weight"].shape[1]
    for what, values in (("channel names", layout.channels), ("pixel means", layout.pixel_mean),
                         ("pixel stds", layout.pixel_std)):
        if len(values) != in_channels:
            raise PcnacycleError(f"{source}: the checkpoint takes {in_channels} input channels, but {len(values)} "
                                 f"{what} were given ({values})")

