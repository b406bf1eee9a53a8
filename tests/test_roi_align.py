"""RoIAlign as a sparse matrix product: torchvision's values and gradients, and the poolers that use it."""

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from pcnacycle.config import load_config
from pcnacycle.modeling.detectron2_layout import AlignedMultiScaleRoIAlign, LevelledRoIAlign
from pcnacycle.modeling.roi_align import multiscale_roi_align

SIZES = (32, 16, 8, 4)  # P2-P5 of a 128-pixel image
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def random_rois(count, image=128, largest=60, seed=0):
    """(K, 5) RoIs over two images, some reaching past the image edges, some thinner than a pixel."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * (image + 20) - 10
    size = torch.rand(count, 2, generator=generator) * largest + 0.3
    index = torch.randint(0, 2, (count, 1), generator=generator).float()
    return torch.cat([index, corner, corner + size], dim=1)


def torchvision_pooled(features, rois, level, output, sampling_ratio, aligned):
    result = features[0].new_zeros((len(rois), features[0].shape[1], output, output))
    for index, feature in enumerate(features):
        chosen = torch.where(level == index)[0]
        result[chosen] = roi_align(feature, rois[chosen], output, SCALES[index], sampling_ratio, aligned)
    return result


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("output, sampling_ratio", [(7, 2), (14, 2), (5, 3)])
def test_values_and_gradients_are_torchvisions(aligned, output, sampling_ratio):
    generator = torch.Generator().manual_seed(1)
    features = [torch.randn(2, 6, s, s, generator=generator, dtype=torch.float64, requires_grad=True)
                for s in SIZES]
    rois = random_rois(40).double()
    level = torch.randint(0, 4, (40,), generator=generator)
    ours = multiscale_roi_align(features, rois, level, SCALES, (output, output), sampling_ratio, aligned)
    expected = torchvision_pooled(features, rois, level, output, sampling_ratio, aligned)
    assert ours.shape == (40, 6, output, output)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    upstream = torch.randn(ours.shape, generator=generator, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(ours, features, upstream), torch.autograd.grad(expected, features, upstream)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_no_rois_and_inference_fall_back_to_torchvision():
    features = [torch.randn(1, 3, s, s, requires_grad=True) for s in SIZES]
    empty = multiscale_roi_align(features, torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64), SCALES, (7, 7), 2,
                                 False)
    assert empty.shape == (0, 3, 7, 7)
    rois = random_rois(5).clamp(min=0)
    rois[:, 0] = 0
    level = torch.zeros(5, dtype=torch.int64)
    with torch.no_grad():
        pooled = multiscale_roi_align(features, rois, level, SCALES, (7, 7), 2, False)
        torch.testing.assert_close(pooled, roi_align(features[0], rois, 7, SCALES[0], 2, False), rtol=0, atol=0)


@pytest.mark.parametrize("pooler_type", ["ROIAlign", "ROIAlignV2"])
def test_the_models_poolers_give_what_torchvisions_pooler_gives(pooler_type):
    from pcnacycle.modeling.detectron2_layout import build_pooler

    cfg = load_config("stage3_pcna_cpu", ["MODEL.ROI_BOX_HEAD.POOLER_TYPE", pooler_type])
    pooler = build_pooler(cfg.MODEL.ROI_BOX_HEAD, 7)
    assert isinstance(pooler, AlignedMultiScaleRoIAlign if pooler_type == "ROIAlignV2" else LevelledRoIAlign)
    generator = torch.Generator().manual_seed(2)
    image = 512
    features = {str(i): torch.randn(2, 4, image // 4 >> i, image // 4 >> i, generator=generator, requires_grad=True)
                for i in range(4)}
    boxes = [random_rois(n, image, largest=400, seed=n)[:, 1:].clamp(0, image - 1) for n in (30, 20)]
    boxes = [torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2] + 1)], dim=1) for b in boxes]
    shapes = [(image, image), (image, image)]
    ours = pooler(features, boxes, shapes)
    if pooler_type == "ROIAlign":
        reference = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO)
        expected = reference(features, boxes, shapes)
    else:  # detectron2's levels, pooled by torchvision's kernel (the fallback without autograd)
        with torch.no_grad():
            expected = pooler(features, boxes, shapes)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    assert len(pooler.levels(boxes, torch.cat(boxes)).unique()) >= 3  # the boxes were pooled from several levels
