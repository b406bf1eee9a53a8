"""Inference-only rewrites of a loaded model that compute the same detections faster.

A frozen batch norm after a convolution is an affine map per channel, so it
can be folded into the convolution's weights and bias
(``torch.nn.utils.fusion.fuse_conv_bn_weights``): the network then skips
one multiply and one add over every activation map of the backbone. Models
with GroupNorm (pcnacycle's default for training from scratch) have nothing to
fold; detectron2 and pcnaDeep models, and ours trained with ``FrozenBN``, do.
A folded model's state dict no longer has the norm tensors: it is for
inference only, never saved or trained.
"""

from __future__ import annotations

import re

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d

_FOLDABLE = (FrozenBatchNorm2d, nn.BatchNorm2d)
_NORM_AFTER_CONV = re.compile(r"bn(\d+)")  # torchvision's ResNet: convN is followed by bnN, nothing between


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it, in place.

    Pairs found: ``convN``/``bnN`` children of one module (torchvision's ResNet
    stem and blocks, where ``bnN`` is applied to ``convN``'s output and to
    nothing else), and a convolution followed by a batch norm in an
    ``nn.Sequential`` (ResNet's downsample, ``Conv2dNormActivation`` in FPN and
    head layers). ``nn.BatchNorm2d`` is folded with its running statistics, so
    ``model`` must be in eval mode.

    Returns
    -------
    The number of norms folded (each replaced by ``nn.Identity``).
    """
    if model.training:
        raise ValueError("fold_batch_norms: the model must be in eval mode (batch norms use running statistics)")
    folded = 0
    for parent in list(model.modules()):
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                if isinstance(parent[i], nn.Conv2d) and isinstance(parent[i + 1], _FOLDABLE):
                    _fold_into(parent[i], parent[i + 1])
                    parent[i + 1] = nn.Identity()
                    folded += 1
            continue
        for name, norm in children.items():
            match = _NORM_AFTER_CONV.fullmatch(name)
            conv = children.get(f"conv{match.group(1)}") if match else None
            if isinstance(norm, _FOLDABLE) and isinstance(conv, nn.Conv2d):
                _fold_into(conv, norm)
                setattr(parent, name, nn.Identity())
                folded += 1
    return folded


def _fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var,
                                                  norm.eps, norm.weight, norm.bias)

