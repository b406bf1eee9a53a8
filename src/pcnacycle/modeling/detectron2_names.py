"""detectron2's tensor names for a Mask R-CNN ResNet-FPN, and pcnacycle's (torchvision's) for the same tensors.

Used by :mod:`pcnacycle.modeling.convert_weights`: each direction is a list of
``(regex, function of the match)`` rules; a name no rule matches has no
counterpart.
"""

from __future__ import annotations

import re

_STAGE = {"res2": 1, "res3": 2, "res4": 3, "res5": 4}

#: detectron2 name pattern -> pcnacycle (torchvision) name, as (regex, function of the match).
_TO_PCNACYCLE = [
    (r"backbone\.bottom_up\.stem\.conv1\.weight", lambda m: "backbone.body.conv1.weight"),
    (r"backbone\.bottom_up\.stem\.conv1\.norm\.(\w+)", lambda m: f"backbone.body.bn1.{m[1]}"),
    (r"backbone\.bottom_up\.(res[2-5])\.(\d+)\.conv([1-3])\.weight",
     lambda m: f"backbone.body.layer{_STAGE[m[1]]}.{m[2]}.conv{m[3]}.weight"),
    (r"backbone\.bottom_up\.(res[2-5])\.(\d+)\.conv([1-3])\.norm\.(\w+)",
     lambda m: f"backbone.body.layer{_STAGE[m[1]]}.{m[2]}.bn{m[3]}.{m[4]}"),
    (r"backbone\.bottom_up\.(res[2-5])\.(\d+)\.shortcut\.weight",
     lambda m: f"backbone.body.layer{_STAGE[m[1]]}.{m[2]}.downsample.0.weight"),
    (r"backbone\.bottom_up\.(res[2-5])\.(\d+)\.shortcut\.norm\.(\w+)",
     lambda m: f"backbone.body.layer{_STAGE[m[1]]}.{m[2]}.downsample.1.{m[3]}"),
    (r"backbone\.fpn_lateral([2-5])\.(weight|bias)", lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 2}.0.{m[2]}"),
    (r"backbone\.fpn_lateral([2-5])\.norm\.(\w+)", lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 2}.1.{m[2]}"),
    (r"backbone\.fpn_output([2-5])\.(weight|bias)", lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 2}.0.{m[2]}"),
    (r"backbone\.fpn_output([2-5])\.norm\.(\w+)", lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 2}.1.{m[2]}"),
    (r"proposal_generator\.rpn_head\.conv\.(weight|bias)", lambda m: f"rpn.head.conv.0.0.{m[1]}"),
    (r"proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)", lambda m: f"rpn.head.cls_logits.{m[1]}"),
    (r"proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)", lambda m: f"rpn.head.bbox_pred.{m[1]}"),
    (r"roi_heads\.box_head\.fc([12])\.(weight|bias)", lambda m: f"roi_heads.box_head.fc{int(m[1]) + 5}.{m[2]}"),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)",
     lambda m: f"roi_heads.box_predictor.{m[1]}.{m[2]}"),
    (r"roi_heads\.mask_head\.mask_fcn(\d)\.(weight|bias)", lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0.{m[2]}"),
    (r"roi_heads\.mask_head\.mask_fcn(\d)\.norm\.(\w+)", lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.1.{m[2]}"),
    (r"roi_heads\.mask_head\.deconv\.(weight|bias)", lambda m: f"roi_heads.mask_predictor.conv5_mask.{m[1]}"),
    (r"roi_heads\.mask_head\.predictor\.(weight|bias)", lambda m: f"roi_heads.mask_predictor.mask_fcn_logits.{m[1]}"),
]
_LAYER = {v: k for k, v in _STAGE.items()}
_TO_DETECTRON2 = [
    (r"backbone\.body\.conv1\.weight", lambda m: "backbone.bottom_up.stem.conv1.weight"),
    (r"backbone\.body\.bn1\.(\w+)", lambda m: f"backbone.bottom_up.stem.conv1.norm.{m[1]}"),
    (r"backbone\.body\.layer([1-4])\.(\d+)\.conv([1-3])\.weight",
     lambda m: f"backbone.bottom_up.{_LAYER[int(m[1])]}.{m[2]}.conv{m[3]}.weight"),
    (r"backbone\.body\.layer([1-4])\.(\d+)\.bn([1-3])\.(\w+)",
     lambda m: f"backbone.bottom_up.{_LAYER[int(m[1])]}.{m[2]}.conv{m[3]}.norm.{m[4]}"),
    (r"backbone\.body\.layer([1-4])\.(\d+)\.downsample\.0\.weight",
     lambda m: f"backbone.bottom_up.{_LAYER[int(m[1])]}.{m[2]}.shortcut.weight"),
    (r"backbone\.body\.layer([1-4])\.(\d+)\.downsample\.1\.(\w+)",
     lambda m: f"backbone.bottom_up.{_LAYER[int(m[1])]}.{m[2]}.shortcut.norm.{m[3]}"),
    (r"backbone\.fpn\.inner_blocks\.([0-3])\.0\.(weight|bias)",
     lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}.{m[2]}"),
    (r"backbone\.fpn\.inner_blocks\.([0-3])\.1\.(\w+)", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}.norm.{m[2]}"),
    (r"backbone\.fpn\.layer_blocks\.([0-3])\.0\.(weight|bias)", lambda m: f"backbone.fpn_output{int(m[1]) + 2}.{m[2]}"),
    (r"backbone\.fpn\.layer_blocks\.([0-3])\.1\.(\w+)", lambda m: f"backbone.fpn_output{int(m[1]) + 2}.norm.{m[2]}"),
    (r"rpn\.head\.conv\.0\.0\.(weight|bias)", lambda m: f"proposal_generator.rpn_head.conv.{m[1]}"),
    (r"rpn\.head\.cls_logits\.(weight|bias)", lambda m: f"proposal_generator.rpn_head.objectness_logits.{m[1]}"),
    (r"rpn\.head\.bbox_pred\.(weight|bias)", lambda m: f"proposal_generator.rpn_head.anchor_deltas.{m[1]}"),
    (r"roi_heads\.box_head\.fc([67])\.(weight|bias)", lambda m: f"roi_heads.box_head.fc{int(m[1]) - 5}.{m[2]}"),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)",
     lambda m: f"roi_heads.box_predictor.{m[1]}.{m[2]}"),
    (r"roi_heads\.mask_head\.(\d)\.0\.(weight|bias)", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}"),
    (r"roi_heads\.mask_head\.(\d)\.1\.(\w+)", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.norm.{m[2]}"),
    (r"roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)", lambda m: f"roi_heads.mask_head.deconv.{m[1]}"),
    (r"roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)", lambda m: f"roi_heads.mask_head.predictor.{m[1]}"),
]


def _rename(name: str, rules) -> str | None:
    for pattern, build in rules:
        match = re.fullmatch(pattern, name)
        if match:
            return build(match)
    return None


def detectron2_to_pcnacycle_name(name: str) -> str | None:
    """pcnacycle's name for a detectron2 Mask R-CNN tensor, or None when it has no counterpart."""
    return _rename(name, _TO_PCNACYCLE)


def pcnacycle_to_detectron2_name(name: str) -> str | None:
    """detectron2's name for a pcnacycle Mask R-CNN tensor (inverse of :func:`detectron2_to_pcnacycle_name`)."""
    return _rename(name, _TO_DETECTRON2)
