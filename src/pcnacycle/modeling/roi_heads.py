"""The RoI heads of the phase detector: one box per nucleus, with the probability of every class.

Training also takes nuclei annotated without a phase (label :data:`~pcnacycle.data.classes.UNKNOWN_PHASE`,
from ``DATASETS.NUCLEI_ONLY``): they teach "a nucleus, not background", boxes and masks, never a phase.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads, project_masks_on_boxes
from torchvision.ops import boxes as box_ops

from ..data.classes import UNKNOWN_PHASE


def phase_classification_loss(class_logits: torch.Tensor, labels: torch.Tensor,
                              class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the sampled proposals; for a nucleus of unknown phase, of "any foreground class".

    Parameters
    ----------
    class_logits : (N, K + 1) float, background first
    labels : (N,) int64, 0 (background), 1..K, or :data:`UNKNOWN_PHASE`
    class_weights : (K + 1,) float, optional
        Each proposal's loss is multiplied by its label's weight
        (``MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS``, background 1): a rare phase
        counts more. Nuclei of unknown phase weigh 1.

    Returns
    -------
    The mean over the N proposals of -log p(label), where p(unknown phase) is the
    sum of the foreground probabilities (the likelihood of a partial label): the
    phases share it as the model sees fit. Equal to torchvision's loss when no
    label is unknown and no weight is given.
    """
    unknown = labels == UNKNOWN_PHASE
    log_probs = F.log_softmax(class_logits, dim=1)
    known_labels = labels[~unknown]
    known = -log_probs[~unknown].gather(1, known_labels[:, None])[:, 0]
    if class_weights is not None:
        known = known * class_weights.to(known.device, known.dtype)[known_labels]
    known = known.sum()
    foreground = -torch.logsumexp(log_probs[unknown, 1:], dim=1).sum()
    return (known + foreground) / max(len(labels), 1)


def _as_trained_class(labels: torch.Tensor, class_logits: torch.Tensor) -> torch.Tensor:
    """Labels with each unknown phase replaced by the most probable class: the box and the mask inference
    takes for that proposal are the ones trained."""
    guessed = class_logits[:, 1:].detach().argmax(dim=1) + 1
    return torch.where(labels == UNKNOWN_PHASE, guessed, labels)


class PhaseRoIHeads(RoIHeads):
    """RoIHeads whose inference keeps one box per object with all class probabilities.

    The score of a detection is ``1 - p(background)``; its label is the most
    probable class; NMS is class-agnostic (a nucleus is in one phase, not
    several). In inference each result dict also holds ``class_probs``, the
    per-class probabilities normalised over the foreground classes: an
    ``(N, K)`` tensor, one row per detection.
    """

    #: (K + 1,) weights of the classification loss by label (``MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS``, set by
    #: :func:`~pcnacycle.modeling.model.build_model`); None weighs every class alike.
    class_loss_weights: torch.Tensor | None = None

    def forward(self, features, proposals, image_shapes, targets=None):
        # torchvision's forward builds the result dicts from the (boxes, scores, labels) that
        # postprocess_detections returns; the probabilities of the same call join them here.
        if self.training:
            return [], self._training_losses(features, proposals, image_shapes, targets)
        # RoIAlign reads contiguous maps: convert channels-last ones (the CPU default) once for both poolers,
        # not once per pooler
        features = {name: level.contiguous() for name, level in features.items()}
        self._pending_probs = []
        try:
            result, losses = super().forward(features, proposals, image_shapes, targets)
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

    def _training_losses(self, features, proposals, image_shapes, targets) -> dict[str, torch.Tensor]:
        """torchvision's training losses, read top to bottom, with nuclei of unknown phase
        (:func:`phase_classification_loss`; their box and mask are those of their most probable class)."""
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        all_labels = torch.cat(labels)
        trained = _as_trained_class(all_labels, class_logits)
        positive = torch.where(trained > 0)[0]
        box_regression = box_regression.reshape(len(box_regression), -1, 4)
        box_loss = F.smooth_l1_loss(box_regression[positive, trained[positive]],
                                    torch.cat(regression_targets)[positive], beta=1 / 9, reduction="sum")
        losses = {"loss_classifier": phase_classification_loss(class_logits, all_labels, self.class_loss_weights),
                  "loss_box_reg": box_loss / max(len(all_labels), 1)}
        if not self.has_mask():
            return losses
        # masks of the positive proposals, each against its nucleus' mask, for the class trained above
        per_image = [len(image_labels) for image_labels in labels]
        mask_proposals, mask_idxs, mask_labels = [], [], []
        for boxes, idxs, image_trained in zip(proposals, matched_idxs, trained.split(per_image)):
            keep = torch.where(image_trained > 0)[0]
            mask_proposals.append(boxes[keep])
            mask_idxs.append(idxs[keep])
            mask_labels.append(image_trained[keep])
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
        size = mask_logits.shape[-1]
        mask_targets = torch.cat([project_masks_on_boxes(target["masks"], boxes, idxs, size)
                                  for target, boxes, idxs in zip(targets, mask_proposals, mask_idxs)])
        if mask_targets.numel() == 0:
            losses["loss_mask"] = mask_logits.sum() * 0
        else:
            mask_labels = torch.cat(mask_labels)
            losses["loss_mask"] = F.binary_cross_entropy_with_logits(
                mask_logits[torch.arange(len(mask_labels)), mask_labels], mask_targets)
        return losses
