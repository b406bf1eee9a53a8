"""The convolutional part of a model run by ONNX Runtime: ``pcnacycle export-onnx`` and ``run --onnx``.

The backbone, the FPN and the RPN head (three quarters of a frame's time
on a CPU) are exported to one ONNX file whose height and width are free;
ONNX Runtime runs them with its own fused kernels (convolution, bias,
addition and ReLU in one pass), 1.3× faster than PyTorch on this part
(BENCHMARKS.md). Anchors, proposals and the RoI heads, whose sizes follow
each frame's nuclei, stay in PyTorch: :func:`attach_onnx` swaps the two
modules of a loaded model for views of one ONNX Runtime session. The file
records the SHA-256 of the checkpoint it came from, so it cannot be paired
with other weights. Needs ``pip install "pcnacycle[onnx]"``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PcnacycleError
from ..io import atomic_path, file_sha256

#: ONNX metadata key holding the SHA-256 of the checkpoint the file was exported from.
WEIGHTS_SHA256 = "pcnacycle_weights_sha256"
_LEVELS = ("0", "1", "2", "3", "pool")  # the FPN's output names, as BackboneWithFPN gives them


class ConvolutionalPart(nn.Module):
    """Backbone + FPN + RPN head as one module: ``(1, C, H, W)`` → 5 feature, 5 objectness and 5 box-delta maps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone, self.head = model.backbone, model.rpn.head

    def forward(self, images: torch.Tensor):
        features = list(self.backbone(images).values())
        objectness, deltas = self.head(features)
        return (*features, *objectness, *deltas)


def _require(module: str):
    """``module`` imported, or a clear error saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PcnacycleError(f'{module} is not installed: pip install "pcnacycle[onnx]"') from None


def write_onnx(model: nn.Module, weights: str | os.PathLike, output: str | os.PathLike, channels: int,
                example_size: tuple[int, int] = (256, 256)) -> dict:
    """Write the convolutional part of ``model`` (loaded from ``weights``) to ``output`` as ONNX, and check it.

    Parameters
    ----------
    model : an inference model as :func:`pcnacycle.engine.predictor.load_model` gives it; it is left on the
        CPU in the default memory layout, as exported.
    channels : number of input channels (``len(INPUT.CHANNELS)``).
    example_size : (H, W) of the tracing input, a multiple of 32; the file takes any height and width.

    Returns
    -------
    dict with ``output``, ``weights_sha256`` and ``max_difference``: the
    largest absolute difference between ONNX Runtime's and PyTorch's outputs
    on a random example of another size than the traced one.
    """
    onnx, runtime = _require("onnx"), _require("onnxruntime")
    output = Path(output)
    part = ConvolutionalPart(model).eval().to("cpu", memory_format=torch.contiguous_format)
    names = ([f"features_{n}" for n in _LEVELS] + [f"objectness_{n}" for n in _LEVELS]
             + [f"deltas_{n}" for n in _LEVELS])
    example = torch.rand(1, channels, *example_size)
    with atomic_path(output) as partial:
        with torch.no_grad():
            torch.onnx.export(part, (example,), partial, input_names=["images"], output_names=names,
                              dynamic_axes={"images": {2: "height", 3: "width"}}, opset_version=17, dynamo=False)
        exported = onnx.load(str(partial))
        sha = file_sha256(weights)
        exported.metadata_props.add(key=WEIGHTS_SHA256, value=sha)
        onnx.save(exported, str(partial))
        check = torch.rand(1, channels, example_size[0] + 64, example_size[1] + 32)
        session = runtime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": check.numpy()})
        with torch.no_grad():
            expected = part(check)
        difference = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    return {"output": str(output), "weights_sha256": sha, "max_difference": difference}


class _OnnxConvolutions:
    """One ONNX Runtime session; the backbone computes all outputs and leaves the RPN head's for it."""

    def __init__(self, path: Path, threads: int):
        runtime = _require("onnxruntime")
        options = runtime.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise PcnacycleError(f"{path}: not an ONNX model ONNX Runtime can load "
                                 f"({str(exc).splitlines()[0][:160]})") from None
        self.head_outputs = None


class OnnxBackbone(nn.Module):
    """Stands in for ``model.backbone``: runs the exported part, returns the FPN features."""

    def __init__(self, shared: _OnnxConvolutions, out_channels: int):
        super().__init__()
        self.shared, self.out_channels = shared, out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict:
        outputs = [torch.from_numpy(o) for o in
                   self.shared.session.run(None, {"images": images.contiguous().cpu().numpy()})]
        n = len(_LEVELS)
        self.shared.head_outputs = (outputs[n:2 * n], outputs[2 * n:])
        return OrderedDict(zip(_LEVELS, outputs[:n]))


class OnnxRPNHead(nn.Module):
    """Stands in for ``model.rpn.head``: the objectness and box deltas the backbone's run computed."""

    def __init__(self, shared: _OnnxConvolutions):
        super().__init__()
        self.shared = shared

    def forward(self, features):
        objectness, deltas = self.shared.head_outputs
        self.shared.head_outputs = None
        return list(objectness), list(deltas)


def attach_onnx(model: nn.Module, path: str | os.PathLike, weights: str | os.PathLike) -> None:
    """Run ``model``'s backbone, FPN and RPN head from the ONNX file ``path``, in place (CPU only).

    Raises
    ------
    PcnacycleError
        When the file is missing, unreadable, or was exported from other weights than ``weights``.
    """
    path = Path(path)
    if not path.is_file():
        raise PcnacycleError(f"{path}: ONNX file not found (--onnx); make one with pcnacycle export-onnx")
    if next(model.parameters()).device.type != "cpu":
        raise PcnacycleError(f"{path}: ONNX Runtime runs here on the CPU only; MODEL.DEVICE is not cpu")
    shared = _OnnxConvolutions(path, torch.get_num_threads())
    recorded = shared.session.get_modelmeta().custom_metadata_map.get(WEIGHTS_SHA256)
    if recorded != file_sha256(weights):
        raise PcnacycleError(f"{path}: exported from other weights than {weights} "
                             "(run pcnacycle export-onnx on these weights)")
    out_channels = model.backbone.out_channels
    model.backbone = OnnxBackbone(shared, out_channels)
    model.rpn.head = OnnxRPNHead(shared)
