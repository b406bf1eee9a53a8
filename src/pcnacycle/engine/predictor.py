"""Prediction: a trained model applied to whole frames of any size.

One nucleus gets one detection carrying the probability of every class
(phase), not one detection per class as torchvision's default post-processing
gives. Frames larger than ``TEST.TILE_SIZE`` are cut into overlapping tiles; a
nucleus belongs to the tile whose core (the tile minus half the overlap on
each inner side) holds its box centre, so nuclei smaller than the overlap are
neither split nor duplicated at the seams. Finally each pixel is given to one
nucleus only: the most confident one.

:class:`Predictor` holds a loaded model and its config; ``pcnacycle run``,
``evaluate`` and ``annotate`` (and any GUI) call its :meth:`~Predictor.predict`,
so evaluation scores describe what a user gets from ``pcnacycle run``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

from ..config import CfgNode, config_from_dict
from ..data.dataset import compose_channels
from ..errors import PcnacycleError
from ..modeling.detectron2_layout import paste_in_box_aligned
from ..modeling.inference import fold_batch_norms
from ..modeling.model import FIRST_CONV, build_model, read_checkpoint, resolve_device
from ..modeling.onnx_runtime import attach_onnx, write_onnx

log = logging.getLogger(__name__)


def check_weights_fit(state: dict, cfg: CfgNode, path: str | os.PathLike) -> None:
    """Raise a clear error when a state dict's channel or class count differs from ``cfg``."""
    channels = len(cfg.INPUT.CHANNELS)
    if FIRST_CONV in state and state[FIRST_CONV].shape[1] != channels:
        raise PcnacycleError(
            f"{path}: weights take {state[FIRST_CONV].shape[1]} input channel(s) but the config's "
            f"INPUT.CHANNELS {cfg.INPUT.CHANNELS} has {channels}"
        )
    key = "roi_heads.box_predictor.cls_score.weight"
    folded = len(cfg.MODEL.ROI_HEADS.FOLDED_CLASSES)  # extra outputs counted as other classes
    if key in state and state[key].shape[0] != cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1 + folded:
        raise PcnacycleError(
            f"{path}: weights predict {state[key].shape[0] - 1} class(es) but the config's "
            f"MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES}"
        )


def load_model(weights: str | os.PathLike, cfg: CfgNode | None = None,
               onnx: str | os.PathLike | None = None) -> tuple[torch.nn.Module, CfgNode]:
    """A model ready for inference, with its config.

    Without ``cfg`` the config saved in the checkpoint is used (our checkpoints
    carry it). The weights must fit the config exactly. Batch norms are
    folded into their convolutions (inference only: the model is not for
    training or saving). ``onnx``, a file :func:`export_onnx` wrote from
    ``weights``, runs the backbone, FPN and RPN head with ONNX Runtime.
    """
    state, saved = read_checkpoint(weights)
    if cfg is None:
        if not saved:
            raise PcnacycleError(f"{weights}: carries no config; pass --config")
        cfg = config_from_dict(saved, source=f"{weights} (saved config)")
    check_weights_fit(state, cfg, weights)
    model = build_model(cfg)
    hint = "do MODEL.RESNETS.DEPTH and the FPN and head sizes match the training config?"
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise PcnacycleError(f"{weights}: does not fit the config's model ({str(exc).splitlines()[1].strip()}); "
                             + hint) from exc
    if missing:
        raise PcnacycleError(f"{weights}: {len(missing)} model tensors missing, e.g. {missing[0]}; " + hint)
    device = resolve_device(cfg.MODEL.DEVICE)
    model.to(device).eval()
    folded = fold_batch_norms(model)  # the same detections with fewer passes over each activation map
    if folded:
        log.info("%d batch norms folded into their convolutions for inference", folded)
    if device.type == "cpu":
        # oneDNN convolves channels-last tensors without reordering them: 1.15-1.22x faster on CPU, the same
        # masks and probabilities to 2e-5 (BENCHMARKS.md, "Detection speed against detectron2 itself")
        model.to(memory_format=torch.channels_last)
    if onnx is not None:
        attach_onnx(model, onnx, weights)
        log.info("backbone, FPN and RPN head run by ONNX Runtime from %s", onnx)
    return model, cfg


class Predictor:
    """A trained model, loaded once, that finds nuclei and their phases in frames.

    Parameters
    ----------
    weights : checkpoint file, or a training folder (its ``model_final.pt``).
    cfg : config to build the model with; default the one saved in the checkpoint.
    onnx : an ONNX file ``pcnacycle export-onnx`` wrote from ``weights``: the
        backbone, FPN and RPN head then run with ONNX Runtime (CPU).

    Examples
    --------
    >>> predictor = Predictor("runs/stage3")                     # doctest: +SKIP
    >>> found = predictor.predict({"pcna": frame, "dic": dic})   # doctest: +SKIP
    >>> found["label_image"], found["probs"]                     # doctest: +SKIP
    """

    def __init__(self, weights: str | os.PathLike, cfg: CfgNode | None = None,
                 onnx: str | os.PathLike | None = None):
        self.weights = load_weights_path(weights)
        self.onnx = onnx
        self.model, self.cfg = load_model(self.weights, cfg, onnx)

    @classmethod
    def from_model(cls, model: torch.nn.Module, cfg: CfgNode) -> "Predictor":
        """A predictor around a model already in memory (e.g. the one being trained)."""
        predictor = cls.__new__(cls)
        predictor.weights, predictor.onnx, predictor.model, predictor.cfg = None, None, model, cfg
        return predictor

    @property
    def class_names(self) -> list[str]:
        """Name of class id ``k`` is ``class_names[k - 1]``."""
        return list(self.cfg.MODEL.CLASS_NAMES)

    def compose(self, channels: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's input from raw channels by name: (C, H, W) float32 in [0, 1] (``INPUT.CHANNELS``)."""
        return compose_channels(channels, self.cfg.INPUT.CHANNELS, self.cfg)

    def predict(self, image: np.ndarray | Mapping[str, np.ndarray], mask_threshold: float = 0.5) -> dict:
        """Nuclei of one frame, as :func:`predict_image` gives them.

        Parameters
        ----------
        image : (C, H, W) float32 in [0, 1] composed as :meth:`compose` does,
            or a mapping ``{channel name: (H, W) array}`` of raw channels,
            composed here.

        Returns
        -------
        dict with ``label_image`` (H, W) int32 (0 background, i + 1 for
        object i), ``boxes`` (N, 4) float32, ``scores`` (N,) float32,
        ``labels`` (N,) int64 class ids 1..K and ``probs`` (N, K) float32
        class probabilities.
        """
        if isinstance(image, Mapping):
            image = self.compose(image)
        return predict_image(self.model, image, self.cfg, mask_threshold)


# ---------------------------------------------------------------- tiling


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def tile_cores(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile that owns the objects centred in it: a partition of [0, length)."""
    bounds = [0] + [(starts[i + 1] + starts[i] + tile) // 2 for i in range(len(starts) - 1)] + [length]
    return list(zip(bounds[:-1], bounds[1:]))


def paste_in_box(mask: torch.Tensor, box: torch.Tensor) -> tuple[np.ndarray, int, int]:
    """A box-relative mask resized into its box, as torchvision pastes it but without the full frame.

    Parameters
    ----------
    mask : (M, M) float tensor of probabilities
    box : (4,) float tensor (x0, y0, x1, y1)

    Returns
    -------
    (h, w) float32 probabilities, and the row and column of its top-left pixel (may be negative).
    """
    padded, scale = expand_masks(mask[None, None], padding=1)  # as torchvision: room for edge pixels
    x0, y0, x1, y1 = (int(v) for v in expand_boxes(box[None], scale).to(torch.int64)[0])
    height, width = max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1)
    crop = F.interpolate(padded, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return crop.cpu().numpy(), y0, x0


@torch.no_grad()
def _detect(model: torch.nn.Module, image: np.ndarray, mask_threshold: float, paste=paste_in_box) -> list[dict]:
    """Detections in one tile as box-cropped masks, in tile coordinates; ``paste`` puts a mask back in its box."""
    device = next(model.parameters()).device
    height, width = image.shape[1:]
    output = model([torch.from_numpy(np.ascontiguousarray(image)).to(device)])[0]
    probs = output["class_probs"].cpu().numpy()
    objects = []
    for i, box in enumerate(output["boxes"]):
        crop, y0, x0 = paste(output["masks"][i, 0].float(), box.float())
        top, left = max(y0, 0), max(x0, 0)
        crop = crop[top - y0: height - y0, left - x0: width - x0] >= mask_threshold
        if not crop.any():
            continue
        objects.append({"y0": top, "x0": left, "mask": crop, "score": float(output["scores"][i]),
                        "label": int(output["labels"][i]), "probs": probs[i], "box": box.cpu().numpy()})
    return objects


def predict_image(model: torch.nn.Module, image: np.ndarray, cfg: CfgNode, mask_threshold: float = 0.5) -> dict:
    """Detect nuclei in one frame, tiling it when it is larger than ``TEST.TILE_SIZE``.

    Parameters
    ----------
    image : (C, H, W) float32 in [0, 1], as :func:`pcnacycle.data.dataset.compose_channels` gives.

    Returns
    -------
    dict with
        ``label_image`` (H, W) int32: 0 background, i + 1 for object i; each
        pixel belongs to at most one object (the most confident one);
        ``scores`` (N,) float32, ``labels`` (N,) int64 in 1..K, ``probs``
        (N, K) float32 (class probabilities, rows sum to 1), ``boxes`` (N, 4)
        float32 (x0, y0, x1, y1) in frame coordinates; objects sorted by
        descending score.
    """
    _, height, width = image.shape
    # masks pooled with detectron2's aligned RoIAlign are pasted back its way
    paste = paste_in_box_aligned if cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE == "ROIAlignV2" else paste_in_box
    tile, overlap = cfg.TEST.TILE_SIZE, cfg.TEST.TILE_OVERLAP
    tile_h, tile_w = (height, width) if tile == 0 else (min(tile, height), min(tile, width))
    ys, xs = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    y_cores, x_cores = tile_cores(ys, tile_h, height), tile_cores(xs, tile_w, width)
    objects = []
    for ty, (cy0, cy1) in zip(ys, y_cores):
        for tx, (cx0, cx1) in zip(xs, x_cores):
            for obj in _detect(model, image[:, ty:ty + tile_h, tx:tx + tile_w], mask_threshold, paste):
                centre_y = ty + (obj["box"][1] + obj["box"][3]) / 2
                centre_x = tx + (obj["box"][0] + obj["box"][2]) / 2
                if cy0 <= centre_y < cy1 and cx0 <= centre_x < cx1:
                    obj["y0"] += ty
                    obj["x0"] += tx
                    obj["box"] = obj["box"] + np.array([tx, ty, tx, ty], np.float32)
                    objects.append(obj)
    return _paint(objects, (height, width), len(cfg.MODEL.CLASS_NAMES))


def _paint(objects: list[dict], shape: tuple[int, int], num_classes: int) -> dict:
    """Give each pixel to the most confident object covering it; drop objects left empty."""
    objects.sort(key=lambda o: -o["score"])
    label_image = np.zeros(shape, np.int32)
    kept = []
    for obj in objects:
        mask = obj["mask"]
        window = label_image[obj["y0"]:obj["y0"] + mask.shape[0], obj["x0"]:obj["x0"] + mask.shape[1]]
        free = mask[: window.shape[0], : window.shape[1]] & (window == 0)
        if free.any():
            window[free] = len(kept) + 1
            kept.append(obj)
    return {
        "label_image": label_image,
        "scores": np.array([o["score"] for o in kept], np.float32),
        "labels": np.array([o["label"] for o in kept], np.int64),
        "probs": (np.stack([o["probs"] for o in kept]).astype(np.float32) if kept
                  else np.zeros((0, num_classes), np.float32)),
        "boxes": np.stack([o["box"] for o in kept]).astype(np.float32) if kept else np.zeros((0, 4), np.float32),
    }


def export_onnx(weights: str | os.PathLike, output: str | os.PathLike | None = None, cfg: CfgNode | None = None,
                overwrite: bool = False) -> dict:
    """Export the backbone, FPN and RPN head of ``weights`` to ONNX for ``Predictor(..., onnx=...)``.

    Parameters
    ----------
    weights : checkpoint file or training folder.
    output : the ONNX file; default the checkpoint's path with the suffix ``.onnx``.
    cfg : config to build the model with; default the one saved in the checkpoint.
    overwrite : replace an existing ``output``; without it an existing file is refused.

    Returns
    -------
    dict with ``output``, ``weights_sha256`` and ``max_difference`` (ONNX
    Runtime against PyTorch on a check input, see
    :func:`pcnacycle.modeling.onnx_runtime.write_onnx`).
    """
    weights = load_weights_path(weights)
    output = Path(output) if output is not None else weights.with_suffix(".onnx")
    if output.is_dir():
        raise PcnacycleError(f"{output}: is a folder; --output names the ONNX file to write")
    if output.exists() and not overwrite:
        raise PcnacycleError(f"{output}: exists; give --overwrite to replace it")
    if not output.parent.is_dir():
        raise PcnacycleError(f"{output.parent}: folder not found (--output)")
    model, cfg = load_model(weights, cfg)
    return write_onnx(model, weights, output, len(cfg.INPUT.CHANNELS))


def load_weights_path(path: str | os.PathLike) -> Path:
    """A weights path, or the final checkpoint of a training folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "model_final.pt"
    if not path.is_file():
        raise PcnacycleError(f"{path}: weights file not found")
    return path
