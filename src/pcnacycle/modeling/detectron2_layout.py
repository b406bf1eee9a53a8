"""Model parts that make torchvision's Mask R-CNN compute what detectron2's does.

torchvision and detectron2 build the same network but differ in details that
change the numbers a trained model gives: where a ResNet stage's stride sits,
how anchors are laid out, which RoIAlign samples the features, and how the
input is normalised. The config keys that choose detectron2's way
(``MODEL.RESNETS.STRIDE_IN_1X1``, ``MODEL.RPN.STYLE``,
``MODEL.ROI_*_HEAD.POOLER_TYPE`` and ``POOLER_SAMPLING_RATIO``,
``MODEL.PIXEL_MEAN``/``PIXEL_STD``) are set by ``pcnacycle convert-weights``;
:func:`pcnacycle.modeling.model.build_model` reads them through this module. A
predictor with folded classes (pcnaDeep's E counted as G1/G2,
``MODEL.ROI_HEADS.FOLDED_CLASSES``) is here too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops
from torchvision.ops.poolers import _convert_to_roi_format, _setup_scales

from ..config import CfgNode
from .roi_align import multiscale_roi_align

#: pcnacycle's own normalisation on detectron2's 0-255 scale: x in [0, 1] maps to [-1, 1].
DEFAULT_PIXEL_MEAN = 127.5
DEFAULT_PIXEL_STD = 127.5

#: Strides of the FPN levels P2-P6, as detectron2 fixes them.
FPN_STRIDES = (4, 8, 16, 32, 64)


def pixel_mean_std(cfg: CfgNode) -> tuple[list[float], list[float]]:
    """Per-channel mean and std for inputs in [0, 1] (``MODEL.PIXEL_MEAN``/``STD`` divided by 255)."""
    channels = len(cfg.INPUT.CHANNELS)
    mean = cfg.MODEL.PIXEL_MEAN or [DEFAULT_PIXEL_MEAN] * channels
    std = cfg.MODEL.PIXEL_STD or [DEFAULT_PIXEL_STD] * channels
    return [m / 255.0 for m in mean], [s / 255.0 for s in std]


def move_stride_to_1x1(resnet: nn.Module) -> None:
    """Put each stage's stride in its first block's 1x1 convolution, as detectron2's MSRA ResNets have it.

    The tensors keep their shapes; only where the down-sampling happens moves.
    """
    for stage in (resnet.layer2, resnet.layer3, resnet.layer4):
        block = stage[0]
        stride = block.conv2.stride
        block.conv1.stride, block.conv2.stride = stride, (1, 1)


class Detectron2AnchorGenerator(AnchorGenerator):
    """Anchors as detectron2's ``DefaultAnchorGenerator`` lays them out (offset 0).

    torchvision rounds cell anchors to whole pixels and infers each level's
    stride from the padded image size (61 instead of 64 for P6 of an 800-pixel
    image); detectron2 keeps exact sizes and fixed strides.
    """

    def __init__(self, sizes, aspect_ratios, strides=FPN_STRIDES):
        super().__init__(sizes, aspect_ratios)
        self.strides = tuple(strides)

    # the signature of torchvision's AnchorGenerator.generate_anchors, which this overrides
    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32,
                         device=torch.device("cpu")) -> Tensor:  # noqa: B008
        """(A, 4) cell anchors centred on 0, sizes outer and ratios inner as detectron2 orders them."""
        anchors = []
        for size in scales:
            for ratio in aspect_ratios:
                width = math.sqrt(size**2 / ratio)
                height = ratio * width
                anchors.append([-width / 2, -height / 2, width / 2, height / 2])
        return torch.tensor(anchors, dtype=dtype, device=device)

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        grid_sizes = [list(fm.shape[-2:]) for fm in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [[torch.tensor(s, device=device), torch.tensor(s, device=device)] for s in self.strides]
        self.set_cell_anchors(dtype, device)
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides))
        return [anchors for _ in image_list.image_sizes]


class Detectron2RPN(RegionProposalNetwork):
    """torchvision's RPN with detectron2's proposal selection: ranked and suppressed on logits.

    torchvision ranks on sigmoid probabilities, which round to exactly 1.0 in
    float32 above a logit of about 17, so confident proposals tie and NMS
    keeps whichever its sort puts first; detectron2 ranks the logits
    themselves and drops only empty or non-finite boxes.
    """

    def filter_proposals(self, proposals: Tensor, objectness: Tensor, image_shapes: list[tuple[int, int]],
                         num_anchors_per_level: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        num_images, device = proposals.shape[0], proposals.device
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat([torch.full((n,), i, dtype=torch.int64, device=device)
                            for i, n in enumerate(num_anchors_per_level)])
        top = self._get_top_n_idx(objectness, num_anchors_per_level)  # top-k per level, on logits
        batch = torch.arange(num_images, device=device)[:, None]
        final_boxes, final_scores = [], []
        for boxes, logits, level, shape in zip(proposals[batch, top], objectness[batch, top], levels[top],
                                               image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            keep = torch.where(torch.isfinite(boxes).all(1) & torch.isfinite(logits)
                               & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
            boxes, logits, level = boxes[keep], logits[keep], level[keep]
            keep = box_ops.batched_nms(boxes, logits, level, self.nms_thresh)[: self.post_nms_top_n()]
            final_boxes.append(boxes[keep])
            final_scores.append(logits[keep].sigmoid())
        return final_boxes, final_scores


class LevelledRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` (same levels, same values), pooling through
    :func:`pcnacycle.modeling.roi_align.multiscale_roi_align`, whose backward is faster on a CPU."""

    aligned = False

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        features = [x[name] for name in self.featmap_names]
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(features, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        return multiscale_roi_align(features, rois, self.levels(boxes, rois[:, 1:]), self.scales, self.output_size,
                                    self.sampling_ratio, self.aligned)

    def levels(self, boxes: list[Tensor], all_boxes: Tensor) -> Tensor:
        """(K,) int64: the level each box is pooled from, as an index into the feature maps."""
        return self.map_levels(boxes).to(torch.int64)


class AlignedMultiScaleRoIAlign(LevelledRoIAlign):
    """detectron2's ``ROIPooler`` with ``ROIAlignV2``: half-pixel aligned, its level assignment.

    Each box goes to level ``floor(4 + log2(sqrt(area) / 224 + 1e-8))``,
    clamped to the levels present, exactly as detectron2 assigns it. Masks
    pooled this way are pasted back with :func:`paste_in_box_aligned`.
    """

    aligned = True

    def levels(self, boxes: list[Tensor], all_boxes: Tensor) -> Tensor:
        levels_present = [-round(math.log2(s)) for s in self.scales]
        sizes = ((all_boxes[:, 2] - all_boxes[:, 0]) * (all_boxes[:, 3] - all_boxes[:, 1])).sqrt()
        level = torch.floor(self.canonical_level + torch.log2(sizes / self.canonical_scale + 1e-8))
        return level.clamp(min(levels_present), max(levels_present)).to(torch.int64) - min(levels_present)


def paste_in_box_aligned(mask: Tensor, box: Tensor) -> tuple:
    """A box-relative mask resampled onto the frame's pixels around its box, as detectron2 pastes it.

    Pixel centres sit at half-integers and the mask spans the box exactly
    (``grid_sample``, ``align_corners=False``), the convention of
    ``ROIAlignV2``; torchvision's paste (:func:`pcnacycle.engine.predictor.paste_in_box`)
    rounds the box to whole pixels first and comes out about half a pixel larger.

    Parameters
    ----------
    mask : (M, M) float tensor of probabilities
    box : (4,) float tensor (x0, y0, x1, y1)

    Returns
    -------
    (h, w) float32 probabilities, and the row and column of its top-left pixel (may be negative).
    """
    x0, y0, x1, y1 = box.unbind()
    left, top = int(torch.floor(x0)) - 1, int(torch.floor(y0)) - 1
    right, bottom = int(torch.ceil(x1)) + 1, int(torch.ceil(y1)) + 1
    ys = (torch.arange(top, bottom, device=mask.device, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    xs = (torch.arange(left, right, device=mask.device, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    grid = torch.stack([xs[None, :].expand(len(ys), -1), ys[:, None].expand(-1, len(xs))], dim=-1)
    crop = torch.nn.functional.grid_sample(mask[None, None], grid[None].to(mask.dtype), align_corners=False)
    return crop[0, 0].cpu().numpy(), top, left


def build_pooler(head: CfgNode, output_size: int) -> MultiScaleRoIAlign:
    """The RoI pooler a box or mask head config asks for, over FPN levels P2-P5."""
    cls = AlignedMultiScaleRoIAlign if head.POOLER_TYPE == "ROIAlignV2" else LevelledRoIAlign
    return cls(featmap_names=["0", "1", "2", "3"], output_size=output_size,
               sampling_ratio=head.POOLER_SAMPLING_RATIO)


def folded_class_groups(cfg: CfgNode) -> list[int]:
    """For each predictor output after background, the index (from 1) of the class it counts as.

    ``[1, 2, 3, 1]`` for CLASS_NAMES ``[G1/G2, S, M]`` and FOLDED_CLASSES ``[E=G1/G2]``.
    """
    names = list(cfg.MODEL.CLASS_NAMES)
    folded = [entry.split("=")[1] for entry in cfg.MODEL.ROI_HEADS.FOLDED_CLASSES]
    return [names.index(name) + 1 for name in names + folded]


class FoldedPredictor(FastRCNNPredictor):
    """A box predictor with extra classes whose probability is added to another class's.

    The linear layers hold ``1 + K + F`` outputs (background, the K classes,
    the F folded ones); :meth:`forward` returns ``1 + K`` logits whose softmax
    is exactly the grouped sum of the full softmax (log-sum-exp over each
    group), and the box deltas of the K classes.
    """

    def __init__(self, in_channels: int, groups: list[int]):
        super().__init__(in_channels, len(groups) + 1)
        self.num_kept = max(groups) + 1
        self.register_buffer("groups", torch.tensor([0] + groups), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, deltas = super().forward(x)
        folded = logits.new_full((len(logits), self.num_kept), -math.inf)
        folded = folded.scatter_reduce(1, self.groups.expand(len(logits), -1), logits, reduce="amax")
        # log-sum-exp per group, stable: subtract each group's max before exponentiating
        shifted = (logits - folded.gather(1, self.groups.expand(len(logits), -1))).exp()
        sums = torch.zeros_like(folded).scatter_add(1, self.groups.expand(len(logits), -1), shifted)
        return folded + sums.log(), deltas[:, : self.num_kept * 4]
