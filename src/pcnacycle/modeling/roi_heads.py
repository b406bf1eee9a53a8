"""The RoI heads of the phase detector: one box per nucleus, with the probability of every class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops


class PhaseRoIHeads(RoIHeads):
    """RoIHeads whose inference keeps one box per object with all class probabilities.

    The score of a detection is ``1 - p(background)``; its label is the most
    probable class; NMS is class-agnostic (a nucleus is in one phase, not
    several). In inference each result dict also holds ``class_probs``, the
    per-class probabilities normalised over the foreground classes: an
    ``(N, K)`` tensor, one row per detection.
    """

    def forward(self, features, proposals, image_shapes, targets=None):
        # torchvision's forward builds the result dicts from the (boxes, scores, labels) that
        # postprocess_detections returns; the probabilities of the same call join them here.
        if not self.training:
            # RoIAlign reads contiguous maps: convert channels-last ones (the CPU default) once for both poolers,
            # not once per pooler
            features = {name: level.contiguous() for name, level in features.items()}
        self._pending_probs = []
        try:
            result, losses = super().forward(features, proposals, image_shapes, targets)
            if not self.training:
                for detections, probs in zip(result, self._pending_probs):
                    detections["class_probs"] = probs
        finally:
            del self._pending_probs
        return result, losses

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        per_image = [len(p) for p in proposals]
        # explicit shape: with no proposals at all, decode's own reshape cannot tell the class axis
        all_boxes = self.box_coder.decode(box_regression, proposals).view(-1, box_regression.shape[1] // 4, 4)
        all_probs = F.softmax(class_logits, -1)
        out_boxes, out_scores, out_labels = [], [], []
        for boxes, probs, shape in zip(all_boxes.split(per_image), all_probs.split(per_image), image_shapes):
            foreground = probs[:, 1:]
            scores = foreground.sum(dim=1)
            labels = foreground.argmax(dim=1) + 1
            boxes = box_ops.clip_boxes_to_image(boxes[torch.arange(len(boxes)), labels], shape)
            keep = torch.where(scores > self.score_thresh)[0]
            keep = keep[box_ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
            keep = keep[box_ops.nms(boxes[keep], scores[keep], self.nms_thresh)][: self.detections_per_img]
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
            self._pending_probs.append(foreground[keep] / scores[keep, None].clamp_min(1e-12))
        return out_boxes, out_scores, out_labels
