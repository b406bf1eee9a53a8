"""Mask R-CNN from torchvision, built from the config, trainable from scratch.

No pretrained weights can be downloaded, so every backbone defaults to
GroupNorm (``MODEL.RESNETS.NORM: GN``), which trains at 1–2 images per batch
as detectron2's scratch recipes do. ``MODEL.WEIGHTS`` may name a local
checkpoint (ours, a torchvision state dict or a detectron2 one, see
:mod:`pcnacycle.modeling.convert_weights`); :func:`load_weights` keeps every tensor
whose shape fits, adapts the first convolution to another channel count, and
says what it did. Where detectron2 computes differently, config keys choose
its way (:mod:`pcnacycle.modeling.detectron2_layout`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..config import CfgNode
from ..errors import PcnacycleError
from .detectron2_layout import (
    Detectron2AnchorGenerator,
    Detectron2RPN,
    FoldedPredictor,
    build_pooler,
    folded_class_groups,
    move_stride_to_1x1,
    pixel_mean_std,
)
from .roi_heads import PhaseRoIHeads

log = logging.getLogger(__name__)

#: Name of the first convolution, the one tensor whose shape follows the
#: number of input channels.
FIRST_CONV = "backbone.body.conv1.weight"


def group_norm(num_channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (fewer when the channel count is small)."""
    groups = 32
    while num_channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, num_channels)


def _norm_layer(name: str):
    return {"GN": group_norm, "FrozenBN": FrozenBatchNorm2d, "BN": nn.BatchNorm2d, "": None}[name]


def build_backbone(cfg: CfgNode) -> BackboneWithFPN:
    """ResNet-{18,34,50,101,152} + FPN with ``len(INPUT.CHANNELS)`` input channels."""
    depth = cfg.MODEL.RESNETS.DEPTH
    resnet = getattr(torchvision.models, f"resnet{depth}")(weights=None, norm_layer=_norm_layer(cfg.MODEL.RESNETS.NORM))
    in_channels = len(cfg.INPUT.CHANNELS)
    resnet.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if cfg.MODEL.RESNETS.STRIDE_IN_1X1 and depth >= 50:
        move_stride_to_1x1(resnet)
    freeze_backbone_stages(resnet, cfg.MODEL.BACKBONE.FREEZE_AT)
    width = 64 if depth < 50 else 256  # BasicBlock vs Bottleneck output width of layer1
    return BackboneWithFPN(
        resnet,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[width, width * 2, width * 4, width * 8],
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=_norm_layer(cfg.MODEL.FPN.NORM),
    )


def freeze_backbone_stages(resnet: nn.Module, freeze_at: int) -> None:
    """Stop training the stem (``freeze_at`` ≥ 1) and res2..res``freeze_at`` of a torchvision ResNet.

    detectron2's numbering: res2 is torchvision's ``layer1``. Frozen parameters keep
    ``requires_grad=False``, so the optimizer (which skips them) never moves them.
    """
    stages = [[resnet.conv1, resnet.bn1], resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]
    for stage in stages[:freeze_at]:
        for module in stage if isinstance(stage, list) else [stage]:
            for param in module.parameters():
                param.requires_grad_(False)


class ResizeTransform(GeneralizedRCNNTransform):
    """torchvision's transform with separate train/test sizes, as detectron2 has.

    A size of 0 keeps images at their own scale (useful for nuclei, whose
    pixel size matters more than the frame's).
    """

    def __init__(self, cfg: CfgNode):
        # Inputs arrive in [0, 1] (see data.normalize_intensity); MODEL.PIXEL_MEAN/STD centre them
        mean, std = pixel_mean_std(cfg)
        super().__init__(min_size=800, max_size=1333, image_mean=mean, image_std=std)
        self.train_sizes = tuple(cfg.INPUT.MIN_SIZE_TRAIN)
        self.train_sampling = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        self.max_size_train = cfg.INPUT.MAX_SIZE_TRAIN
        self.test_size = cfg.INPUT.MIN_SIZE_TEST
        self.max_size_test = cfg.INPUT.MAX_SIZE_TEST

    def resize(self, image, target=None):
        if self.training:
            if self.train_sampling == "range":
                low, high = self.train_sizes
                size = int(torch.randint(low, high + 1, (1,)).item())
            else:
                size = self.torch_choice(list(self.train_sizes))
            max_size = self.max_size_train
        else:
            size, max_size = self.test_size, self.max_size_test
        if size == 0:
            return image, target
        self.min_size, self.max_size = (size,), max_size
        return super().resize(image, target)

    def postprocess(self, result, image_shapes, original_image_sizes):
        """Boxes back in input pixels; masks left as (N, 1, 28, 28) box-relative probabilities.

        torchvision pastes every mask into a full-frame float image, which for
        hundreds of nuclei in a large frame costs gigabytes;
        :func:`pcnacycle.engine.predictor.paste_in_box` pastes each into its box only.
        """
        if self.training:
            return result
        for prediction, resized, original in zip(result, image_shapes, original_image_sizes):
            prediction["boxes"] = boxes_to_input_pixels(prediction["boxes"], resized, original)
        return result


def boxes_to_input_pixels(boxes: torch.Tensor, resized: tuple[int, int], original: tuple[int, int]) -> torch.Tensor:
    """Boxes found on an image resized to ``resized`` (H, W), in the pixels of its ``original`` (H, W) size.

    ``boxes`` is an (N, 4) float tensor of (x0, y0, x1, y1); the scale
    factors are float32, as torchvision computes them.
    """
    scale_y, scale_x = (torch.tensor(o, dtype=torch.float32, device=boxes.device)
                        / torch.tensor(r, dtype=torch.float32, device=boxes.device) for o, r in zip(original, resized))
    return boxes * torch.stack([scale_x, scale_y, scale_x, scale_y])


def build_model(cfg: CfgNode) -> MaskRCNN:
    """The Mask R-CNN that ``cfg`` describes, randomly initialised.

    Input: a list of ``(C, H, W)`` float tensors in [0, 1], C =
    ``len(INPUT.CHANNELS)``. Output in eval mode: torchvision's list of dicts
    with ``boxes`` (N, 4) in input pixels, ``labels`` (N,), ``scores`` (N,)
    and ``masks`` (N, 1, 28, 28) probabilities relative to each box (not
    pasted into the frame: see :class:`ResizeTransform`), one detection per
    object (see :class:`PhaseRoIHeads`).
    """
    m = cfg.MODEL
    backbone = build_backbone(cfg)
    out_channels = backbone.out_channels
    ratios = m.ANCHOR_GENERATOR.ASPECT_RATIOS
    ratios = ratios * 5 if len(ratios) == 1 else ratios
    anchor_class = Detectron2AnchorGenerator if m.RPN.STYLE == "detectron2" else AnchorGenerator
    anchors = anchor_class(sizes=tuple(tuple(s) for s in m.ANCHOR_GENERATOR.SIZES),
                              aspect_ratios=tuple(tuple(r) for r in ratios))
    rpn_head = RPNHead(out_channels, anchors.num_anchors_per_location()[0])

    box = m.ROI_BOX_HEAD
    if box.NUM_CONV == 0 and box.NUM_FC == 2:
        box_head = TwoMLPHead(out_channels * 7 * 7, box.FC_DIM)  # torchvision's own layout: its weights load
    else:
        box_head = FastRCNNConvFCHead((out_channels, 7, 7), [box.CONV_DIM] * box.NUM_CONV, [box.FC_DIM] * box.NUM_FC,
                                      norm_layer=_norm_layer(box.NORM))
    groups = folded_class_groups(cfg)
    num_outputs = len(groups) + 1  # + background; folded classes have outputs of their own
    box_predictor = FoldedPredictor(box.FC_DIM, groups) if m.ROI_HEADS.FOLDED_CLASSES else FastRCNNPredictor(
        box.FC_DIM, num_outputs)
    mask = m.ROI_MASK_HEAD
    mask_head = MaskRCNNHeads(out_channels, [mask.CONV_DIM] * mask.NUM_CONV, 1, norm_layer=_norm_layer(mask.NORM))
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=m.RPN.PRE_NMS_TOPK_TRAIN,
        rpn_pre_nms_top_n_test=m.RPN.PRE_NMS_TOPK_TEST,
        rpn_post_nms_top_n_train=m.RPN.POST_NMS_TOPK_TRAIN,
        rpn_post_nms_top_n_test=m.RPN.POST_NMS_TOPK_TEST,
        rpn_nms_thresh=m.RPN.NMS_THRESH,
        rpn_batch_size_per_image=m.RPN.BATCH_SIZE_PER_IMAGE,
        rpn_positive_fraction=m.RPN.POSITIVE_FRACTION,
        box_roi_pool=build_pooler(box, 7),
        box_head=box_head,
        box_predictor=box_predictor,
        box_score_thresh=m.ROI_HEADS.SCORE_THRESH_TEST,
        box_nms_thresh=m.ROI_HEADS.NMS_THRESH_TEST,
        box_detections_per_img=cfg.TEST.DETECTIONS_PER_IMAGE,
        box_batch_size_per_image=m.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=m.ROI_HEADS.POSITIVE_FRACTION,
        mask_roi_pool=build_pooler(mask, 14),
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(mask.CONV_DIM, mask.CONV_DIM, num_outputs),
    )
    model.transform = ResizeTransform(cfg)
    model.roi_heads.__class__ = PhaseRoIHeads  # same tensors; only inference differs
    weights = m.ROI_HEADS.CLASS_LOSS_WEIGHTS
    # not a buffer: a training choice, not part of what the weights file holds
    model.roi_heads.class_loss_weights = torch.tensor([1.0, *weights]) if weights else None
    if m.RPN.STYLE == "detectron2":
        model.rpn.__class__ = Detectron2RPN  # same tensors; proposals ranked on logits
    return model


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The model tensors of a checkpoint (ours, a plain state dict, or detectron2's ``.pth``/``.pkl`` renamed to
    ours) and the config saved with them, if any."""
    from .convert_weights import as_pcnacycle_names, is_detectron2_state, read_detectron2_checkpoint

    path = Path(path)
    if not path.is_file():
        raise PcnacycleError(f"{path}: weights file not found (MODEL.WEIGHTS)")
    if path.suffix == ".pkl":  # detectron2's model zoo format: numpy arrays, read by a restricted unpickler
        return as_pcnacycle_names(read_detectron2_checkpoint(path), path), None
    data = load_torch_file(path)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PcnacycleError(f"{path}: holds neither a state dict nor a checkpoint with a 'model' state dict")
    if is_detectron2_state(state):
        return as_pcnacycle_names(state, path), None
    return state, data.get("config") if state is not data else None


def load_torch_file(path: Path):
    """What ``torch.load`` reads from ``path`` with ``weights_only`` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message may advise weights_only=False: never for a file of unknown origin, so say it plainly
        raise PcnacycleError(f"{path}: not a PyTorch weights file that loads safely ({_why_not_loadable(path, exc)})"
                             ) from None


def _why_not_loadable(path: Path, exc: Exception) -> str:
    """What is wrong with a file torch.load refused, in words."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":
        return "not a PyTorch file at all: neither a zip archive nor a pickle"
    if "weights_only" in str(exc) or "Unsupported global" in str(exc):
        return "it holds Python objects other than tensors, which could run code when loaded; refused"
    return f"damaged or truncated: {str(exc).splitlines()[0][:120]}"


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Re-shape a trained first-layer kernel for another number of input channels.

    Each new channel gets the sum of the old kernels over channels, divided by
    the new count: for an input whose channels all equal one grey image, the
    layer's response is unchanged.

    Parameters
    ----------
    weight : (out, C_old, k, k) tensor
    in_channels : C_new

    Returns
    -------
    (out, C_new, k, k) tensor
    """
    summed = weight.sum(dim=1, keepdim=True) / in_channels
    return summed.repeat(1, in_channels, 1, 1)


def load_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load every tensor of ``path`` whose name and shape fit ``model``.

    The first convolution is adapted when only its channel count differs;
    tensors of another shape (e.g. class predictors after NUM_CLASSES
    changed) keep their fresh initialisation. Logs one line per outcome.

    Returns
    -------
    dict with lists of tensor names: ``loaded``, ``adapted``,
    ``reinitialised`` (shape differs), ``missing`` (not in the file),
    ``unused`` (in the file, not in the model).
    """
    source, _ = read_checkpoint(path)
    target = model.state_dict()
    report = {"loaded": [], "adapted": [], "reinitialised": [], "missing": [],
              "unused": sorted(set(source) - set(target))}
    new_state = {}
    for name, tensor in target.items():
        if name not in source:
            report["missing"].append(name)
        elif source[name].shape == tensor.shape:
            new_state[name] = source[name]
            report["loaded"].append(name)
        elif (name == FIRST_CONV and source[name].shape[0] == tensor.shape[0]
              and source[name].shape[2:] == tensor.shape[2:]):
            new_state[name] = adapt_first_conv(source[name], tensor.shape[1])
            report["adapted"].append(name)
        else:
            report["reinitialised"].append(name)
    model.load_state_dict(new_state, strict=False)
    log.info("weights %s: %d tensors loaded, %d adapted, %d re-initialised, %d not in file, %d unused",
             path, len(report["loaded"]), len(report["adapted"]), len(report["reinitialised"]),
             len(report["missing"]), len(report["unused"]))
    for key in ("adapted", "reinitialised", "missing", "unused"):
        if report[key]:
            log.info("  %s: %s", key, ", ".join(report[key][:8]) + (" ..." if len(report[key]) > 8 else ""))
    if not report["loaded"] and not report["adapted"]:
        raise PcnacycleError(f"{path}: no tensor matches this model (is it a Mask R-CNN checkpoint?)")
    return report


def resolve_device(name: str) -> torch.device:
    """``MODEL.DEVICE`` as a torch device; ``auto`` picks CUDA when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PcnacycleError(f"MODEL.DEVICE is {name!r} but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def is_norm_parameter(module: nn.Module) -> bool:
    """Whether ``module``'s parameters are normalisation scales/shifts (WEIGHT_DECAY_NORM)."""
    return isinstance(module, (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm, nn.SyncBatchNorm))
