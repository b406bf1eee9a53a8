"""Does a converted detectron2 Mask R-CNN compute what detectron2 computes?

Builds detectron2's own Mask R-CNN (R50-FPN, its ``mask_rcnn_R_50_FPN_3x.yaml``, or R101-FPN,
4 classes and 3 input channels as pcnaDeep's models), with random weights
from a fixed seed and randomised frozen-BatchNorm statistics (no trained
detectron2 weights can be downloaded here), saves it as detectron2 does
(``.pth``, and ``.pkl`` of numpy arrays), converts it with
``pcnacycle.modeling.convert_weights`` and runs both on the same image, in eval mode
on the CPU. Compared, stage by stage:

- FPN features P2-P6;
- RPN proposals (the top 1000 after NMS);
- box-head class probabilities and box deltas for detectron2's proposals;
- mask-head logits for the same boxes;
- final detections (boxes, scores, classes, 28x28 mask probabilities) with
  detectron2's class-specific inference (torchvision's own RoIHeads
  post-processing, which pcnacycle's converted model uses when asked);
- pcnaDeep's fold: the converted model with E folded into G1/G2 against
  detectron2's probabilities with p(E) added to p(G1/G2).

detectron2 is never a dependency of pcnacycle: build it from its public
source beside the project and put it on PYTHONPATH, e.g.::

    git clone https://github.com/facebookresearch/detectron2 /work/ext/detectron2
    python -m pip install --target /work/ext/d2deps fvcore iopath omegaconf hydra-core \\
        cloudpickle tabulate termcolor yacs portalocker antlr4-python3-runtime==4.9.3 --no-deps
    OMP_NUM_THREADS=1 PYTHONPATH=src:/work/ext/detectron2:/work/ext/d2deps \\
        python benchmarks/detectron2_parity.py --detectron2 /work/ext/detectron2 \\
        --image /work/shared/data/dsb2018/stage1_train/<id>/images/<id>.png

(no C++ build is needed: detectron2 falls back on torchvision's RoIAlign and
NMS). Prints one JSON object of maximum absolute differences.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pcnacycle.engine.predictor import load_model, paste_in_box
from pcnacycle.io import read_image
from pcnacycle.modeling.convert_weights import SourceLayout, convert_detectron2, pcnadeep_layout
from pcnacycle.modeling.detectron2_layout import paste_in_box_aligned

CLASSES = ["G1/G2", "S", "M", "E"]


def build_detectron2(root: Path, config: str, seed: int):
    """detectron2's Mask R-CNN from one of its configs, with 4 classes and randomised frozen-BN statistics."""
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(str(root / "configs" / config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(CLASSES)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("norm.running_mean"):
                buffer.normal_(0.0, 0.1, generator=generator)
            elif name.endswith("norm.running_var"):
                buffer.uniform_(0.5, 2.0, generator=generator)
            elif name.endswith("norm.weight"):
                buffer.uniform_(0.5, 1.0, generator=generator)
            elif name.endswith("norm.bias"):
                buffer.normal_(0.0, 0.1, generator=generator)
        # random heads give near-equal scores everywhere; spread them so ranking and NMS are tested
        model.proposal_generator.rpn_head.objectness_logits.weight.mul_(3)
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
        model.roi_heads.mask_head.predictor.weight.mul_(30)
    return model, cfg


def load_input(path: Path | None, seed: int) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]: PCNA, PCNA, a blurred 'bright-field' (as pcnaDeep's input)."""
    if path is None:
        rng = np.random.default_rng(seed)
        gray = rng.random((256, 320)).astype(np.float32)
    else:
        image = read_image(path).astype(np.float32)
        gray = image[..., :3].mean(-1) if image.ndim == 3 else image
        gray = (gray - gray.min()) / max(float(np.ptp(gray)), 1e-6)
    blurred = F.avg_pool2d(torch.from_numpy(gray)[None, None], 9, 1, 4)[0, 0].numpy()
    return np.stack([gray, gray, blurred]).astype(np.float32)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def nearest(a: torch.Tensor, b: torch.Tensor, a_labels=None, b_labels=None) -> tuple[torch.Tensor, float]:
    """For each box of ``a`` (N, 4) the index of the closest box of ``b`` (max-coordinate distance; boxes of
    other labels never pair), and the largest such distance in either direction: 0 when both hold the same
    boxes, whatever their order (equal scores leave the order of ties to each implementation's sort)."""
    distance = (a[:, None, :] - b[None, :, :]).abs().amax(-1)
    if a_labels is not None:
        distance[a_labels[:, None] != b_labels[None, :]] = float("inf")
    return distance.argmin(1), float(max(distance.amin(1).max(), distance.amin(0).max()))


@torch.no_grad()
def compare(d2_model, ours, image: np.ndarray) -> dict:
    """Stage-by-stage maximum absolute differences between detectron2 and the converted model."""
    from detectron2.structures import Boxes
    from torchvision.models.detection.roi_heads import RoIHeads

    tensor = torch.from_numpy(image)
    inputs = [{"image": tensor * 255.0, "height": image.shape[1], "width": image.shape[2]}]
    d2_images = d2_model.preprocess_image(inputs)
    d2_features = d2_model.backbone(d2_images.tensor)
    d2_proposals, _ = d2_model.proposal_generator(d2_images, d2_features, None)

    image_list, _ = ours.transform([tensor])
    features = ours.backbone(image_list.tensors)
    proposals, _ = ours.rpn(image_list, features)
    out = {"image_size": list(image.shape[1:]),
           "features": max(max_diff(d2_features[f"p{level}"], features[key])
                           for level, key in zip(range(2, 7), ["0", "1", "2", "3", "pool"])),
           "feature_scale": float(features["0"].abs().max())}
    d2_boxes = d2_proposals[0].proposal_boxes.tensor
    out["proposals"] = {"count": [len(d2_boxes), len(proposals[0])],
                        "positions_differing_over_0.001px": int(((d2_boxes - proposals[0]).abs().amax(1) > 1e-3).sum())
                        if len(d2_boxes) == len(proposals[0]) else None,
                        "as_sets_max_abs_diff_px": nearest(d2_boxes, proposals[0])[1],
                        "distinct_objectness_logits": len(d2_proposals[0].objectness_logits.unique())}

    # box and mask heads on detectron2's proposals
    heads = d2_model.roi_heads
    level_features = [d2_features[f] for f in heads.box_in_features]
    d2_logits, d2_deltas = heads.box_predictor(heads.box_head(heads.box_pooler(level_features, [Boxes(d2_boxes)])))
    pooled = ours.roi_heads.box_roi_pool(features, [d2_boxes], image_list.image_sizes)
    logits, deltas = ours.roi_heads.box_predictor(ours.roi_heads.box_head(pooled))
    d2_probs = d2_logits.softmax(-1)
    probs = logits.softmax(-1)
    out["class_probabilities"] = max_diff(torch.cat([d2_probs[:, -1:], d2_probs[:, :-1]], 1), probs)
    out["box_deltas"] = max_diff(d2_deltas, deltas[:, 4:])
    d2_mask_logits = heads.mask_head.layers(heads.mask_pooler(level_features, [Boxes(d2_boxes[:200])]))
    mask_logits = ours.roi_heads.mask_predictor(ours.roi_heads.mask_head(
        ours.roi_heads.mask_roi_pool(features, [d2_boxes[:200]], image_list.image_sizes)))
    out["mask_logits"] = max_diff(d2_mask_logits, mask_logits[:, 1:])
    out["mask_logit_scale"] = float(d2_mask_logits.abs().max())

    # final detections, detectron2's class-specific inference on both sides
    d2_result = d2_model.roi_heads(d2_images, d2_features, d2_proposals, None)[0][0]
    phase_heads = ours.roi_heads.__class__
    ours.roi_heads.__class__ = RoIHeads
    result = ours([tensor])[0]
    ours.roi_heads.__class__ = phase_heads
    # pair each detectron2 detection with the converted model's nearest box of the same class
    pairs, box_diff = nearest(d2_result.pred_boxes.tensor, result["boxes"], d2_result.pred_classes + 1,
                              result["labels"])
    out["detections"] = {
        "count": [len(d2_result), len(result["boxes"])],
        "distinct_scores": len(d2_result.scores.unique()),
        "boxes_max_abs_diff_px": box_diff,
        "scores_max_abs_diff": max_diff(d2_result.scores, result["scores"][pairs]),
        "mask_probabilities_max_abs_diff": max_diff(d2_result.pred_masks, result["masks"][pairs]),
        "mask_pixels_differing_at_0.5": int(((d2_result.pred_masks > 0.5) != (result["masks"][pairs] > 0.5)).sum()),
        "mask_pixels": int(d2_result.pred_masks.numel()),
    }
    out["pasted_masks_aligned"] = compare_pasted(d2_result, result, pairs, image.shape[1:], paste_in_box_aligned)
    out["pasted_masks_torchvision"] = compare_pasted(d2_result, result, pairs, image.shape[1:], paste_in_box)
    return out


def compare_pasted(d2_result, result: dict, pairs: torch.Tensor, shape: tuple[int, int], paste) -> dict:
    """Frame masks at 0.5: detectron2's paste against pcnacycle's (``paste``: aligned, or torchvision's)."""
    from detectron2.modeling.postprocessing import detector_postprocess

    d2_masks = detector_postprocess(d2_result, *shape).pred_masks
    ious, differing = [], 0
    for d2_mask, prob, box in zip(d2_masks, result["masks"][pairs], result["boxes"][pairs]):
        crop, top, left = paste(prob[0], box)
        frame = np.zeros(shape, bool)
        rows, cols = slice(max(top, 0), top + crop.shape[0]), slice(max(left, 0), left + crop.shape[1])
        frame[rows, cols] = (crop > 0.5)[max(-top, 0):, max(-left, 0):][: frame[rows, cols].shape[0],
                                                                        : frame[rows, cols].shape[1]]
        theirs = d2_mask.numpy()
        union = (frame | theirs).sum()
        ious.append((frame & theirs).sum() / union if union else 1.0)
        differing += int((frame != theirs).sum())
    return {"mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)), "pixels_differing": differing,
            "mask_area_total": int(d2_masks.sum())}


@torch.no_grad()
def compare_fold(d2_model, folded, image: np.ndarray) -> float:
    """Max |p_ours - p_detectron2| over classes, E's probability added to G1/G2's on detectron2's side."""
    tensor = torch.from_numpy(image)
    d2_images = d2_model.preprocess_image([{"image": tensor * 255.0}])
    d2_features = d2_model.backbone(d2_images.tensor)
    d2_proposals, _ = d2_model.proposal_generator(d2_images, d2_features, None)
    from detectron2.structures import Boxes

    heads = d2_model.roi_heads
    boxes = d2_proposals[0].proposal_boxes.tensor
    d2_probs = heads.box_predictor(heads.box_head(heads.box_pooler([d2_features[f] for f in heads.box_in_features],
                                                                  [Boxes(boxes)])))[0].softmax(-1)
    expected = torch.stack([d2_probs[:, 4], d2_probs[:, 0] + d2_probs[:, 3], d2_probs[:, 1], d2_probs[:, 2]], 1)
    image_list, _ = folded.transform([tensor])
    features = folded.backbone(image_list.tensors)
    pooled = folded.roi_heads.box_roi_pool(features, [boxes], image_list.image_sizes)
    probs = folded.roi_heads.box_predictor(folded.roi_heads.box_head(pooled))[0].softmax(-1)
    return max_diff(expected, probs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectron2", type=Path, required=True, help="detectron2 source checkout (for its configs)")
    parser.add_argument("--image", type=Path, help="input image (default: random noise, 256x320)")
    parser.add_argument("--config", default="COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
                        help="detectron2 config, relative to its configs/ folder (e.g. the R_101 one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    d2_model, d2_cfg = build_detectron2(args.detectron2, args.config, args.seed)
    image = load_input(args.image, args.seed)
    state = {k: v for k, v in d2_model.state_dict().items() if not k.startswith("pixel_")}
    results = {"detectron2_commit": _commit(args.detectron2), "config": args.config,
               "image": str(args.image or "random"),
               "seed": args.seed, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save({"model": state, "iteration": 0}, tmp / "model_final.pth")
        with open(tmp / "model_final.pkl", "wb") as handle:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "parity"}, handle)
        plain = SourceLayout(classes=CLASSES, channels=["pcna", "pcna", "dic"],
                             pixel_mean=list(d2_cfg.MODEL.PIXEL_MEAN), pixel_std=list(d2_cfg.MODEL.PIXEL_STD))
        convert_detectron2(tmp / "model_final.pth", tmp / "plain" / "model.pt", layout=plain)
        convert_detectron2(tmp / "model_final.pkl", tmp / "pcnadeep" / "model.pt", layout=pcnadeep_layout())
        ours, cfg = load_model(tmp / "plain" / "model.pt")
        cfg.MODEL.DEVICE = "cpu"
        ours.transform.test_size = 0  # detectron2 is given the image at its own size too
        results["unfolded"] = compare(d2_model, ours.cpu(), image)
        folded, _ = load_model(tmp / "pcnadeep" / "model.pt")
        folded.transform.test_size = 0
        results["pcnadeep_fold_class_probabilities"] = compare_fold(d2_model, folded.cpu(), image)
    print(json.dumps(results, indent=1))
    return 0


def _commit(root: Path) -> str:
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        return (root / ".git" / ref[5:]).read_text().strip() if ref.startswith("ref:") else ref
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
