"""RoIAlign over FPN levels as one sparse matrix product: torchvision's values, a faster backward on a CPU.

torchvision's CPU RoIAlign adds each bilinear sample's gradient into the
features one value at a time, on one thread: about a sixth of a training
iteration of the demo's model (BENCHMARKS.md, "The demo, timed"). Every
pooled value is a fixed weighted sum of feature pixels, so pooling is a
sparse matrix (output bins × feature pixels of all levels, four bilinear
weights per sample) times the features laid out one row per pixel; its
gradient is the transposed product. Both are sparse-dense products over whole
rows of channels, which is what a CPU does fast.

:func:`multiscale_roi_align` uses it where it pays and is exact to float
rounding: on a CPU, with autograd recording, float32/64 features and a fixed
``sampling_ratio``. Anywhere else (a GPU, inference, the adaptive sampling
ratio 0 of detectron2's configs) it calls :func:`torchvision.ops.roi_align`
level by level, as torchvision's own pooler does.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchvision.ops import roi_align as torchvision_roi_align

__all__ = ["bilinear_matrix", "multiscale_roi_align"]


def _axis(position: Tensor, size: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """torchvision's bilinear rule along one axis: low and high pixel, their weights, and whether the sample counts.

    ``size`` (the map's length along the axis) broadcasts against ``position``.
    A sample more than one pixel outside the map counts zero; one between -1
    and 0 is moved to 0; one on or past the last pixel takes that pixel alone.
    """
    inside = (position >= -1.0) & (position <= size)
    position = position.clamp(min=0)
    low = position.floor().long()
    at_edge = low >= size - 1
    low = torch.minimum(low, size - 1)
    high = torch.where(at_edge, low, low + 1)
    position = torch.where(at_edge, low.to(position.dtype), position)
    fraction = position - low
    return low, high, 1 - fraction, fraction, inside


def bilinear_matrix(rois: Tensor, level: Tensor, shapes: list[tuple[int, int, int]], scales: list[float],
                    output_size: tuple[int, int], sampling_ratio: int, aligned: bool) -> Tensor:
    """The sparse matrix that RoIAlign multiplies the stacked features by.

    Parameters
    ----------
    rois : (K, 5) float
        ``(image index, x1, y1, x2, y2)`` in image pixels.
    level : (K,) int64
        The feature level each RoI is pooled from (index into ``shapes``).
    shapes : list of (N, H, W)
        Each level's batch size and map size; its pixels are the matrix's
        columns, level after level, each level in (image, row, column) order.
    scales : list of float
        Each level's map size over the image size (1/4 for P2).
    output_size : (PH, PW)
    sampling_ratio : int > 0
        Samples per bin along each axis.
    aligned : bool
        Shift the box by half a pixel (detectron2's ``ROIAlignV2``).

    Returns
    -------
    (K·PH·PW, Σ N·H·W) sparse CSR tensor, ``rois.dtype``
        Row ``(k·PH + i)·PW + j`` holds the weights of bin ``(i, j)`` of RoI ``k``:
        ``4 × sampling_ratio²`` entries (repeated columns add up).
    """
    ph, pw = output_size
    grid = sampling_ratio
    dtype = rois.dtype
    starts = torch.tensor([0] + [n * h * w for n, h, w in shapes], device=rois.device).cumsum(0)
    height = torch.tensor([h for _, h, _ in shapes], device=rois.device)[level]
    width = torch.tensor([w for _, _, w in shapes], device=rois.device)[level]
    scale = torch.tensor(scales, dtype=dtype, device=rois.device)[level]
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    roi_width, roi_height = rois[:, 3] * scale - offset - x1, rois[:, 4] * scale - offset - y1
    if not aligned:  # torchvision's legacy RoIAlign makes every box at least a pixel
        roi_width, roi_height = roi_width.clamp(min=1.0), roi_height.clamp(min=1.0)
    bin_h, bin_w = (roi_height / ph)[:, None, None], (roi_width / pw)[:, None, None]
    # sample positions as torchvision's kernel computes them: start + bin·size + (sample + ½)·size / grid
    bins_y = torch.arange(ph, dtype=dtype, device=rois.device)[None, :, None]
    bins_x = torch.arange(pw, dtype=dtype, device=rois.device)[None, :, None]
    sample = (torch.arange(grid, dtype=dtype, device=rois.device) + 0.5)[None, None, :]
    ys = y1[:, None, None] + bins_y * bin_h + sample * bin_h / grid  # (K, PH, grid)
    xs = x1[:, None, None] + bins_x * bin_w + sample * bin_w / grid  # (K, PW, grid)
    y_low, y_high, wy_low, wy_high, y_in = _axis(ys, height[:, None, None])
    x_low, x_high, wx_low, wx_high, x_in = _axis(xs, width[:, None, None])

    def along_y(t):  # (K, PH, grid) → (K, PH, 1, grid, 1)
        return t[:, :, None, :, None]

    def along_x(t):  # (K, PW, grid) → (K, 1, PW, 1, grid)
        return t[:, None, :, None, :]

    # the column of pixel (0, 0) of each RoI's image in its level
    base = (starts[level] + rois[:, 0].long() * height * width)[:, None, None, None, None]
    counts = along_y(y_in) & along_x(x_in)
    columns, weights = [], []
    for y, wy in ((y_low, wy_low), (y_high, wy_high)):
        for x, wx in ((x_low, wx_low), (x_high, wx_high)):
            columns.append(base + along_y(y * width[:, None, None]) + along_x(x))
            weights.append(torch.where(counts, along_y(wy) * along_x(wx), 0.0) / (grid * grid))
    # (K, PH, PW, grid, grid, 4): each row's entries contiguous, rows in order
    columns = torch.stack(columns, -1).reshape(-1)
    weights = torch.stack(weights, -1).reshape(-1)
    per_row = 4 * grid * grid
    rows = len(rois) * ph * pw
    crow = torch.arange(0, rows * per_row + 1, per_row, device=rois.device)
    with warnings.catch_warnings():  # "CSR support is in beta": matrix products with it are long-standing
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        # every column is a pixel index clamped into its map, so the invariants hold without checking
        return torch.sparse_csr_tensor(crow, columns, weights, (rows, int(starts[-1])), check_invariants=False)


def multiscale_roi_align(features: list[Tensor], rois: Tensor, level: Tensor, scales: list[float],
                         output_size: tuple[int, int], sampling_ratio: int, aligned: bool) -> Tensor:
    """Pool each RoI from its level's feature map, as ``torchvision.ops.roi_align`` pools it.

    Parameters
    ----------
    features : list of (N, C, H_l, W_l) tensors, one per level
    rois : (K, 5) float, ``(image index, x1, y1, x2, y2)`` in image pixels
    level : (K,) int64, the level of each RoI
    scales : list of float, each level's spatial scale
    output_size : (PH, PW)
    sampling_ratio : int, samples per bin along each axis (≤ 0: adaptive, torchvision's kernel)
    aligned : bool

    Returns
    -------
    (K, C, PH, PW) tensor of the features' dtype
    """
    first = features[0]
    sparse = (first.device.type == "cpu" and torch.is_grad_enabled() and sampling_ratio > 0 and len(rois) > 0
              and first.dtype in (torch.float32, torch.float64) and any(f.requires_grad for f in features))
    if not sparse:
        result = first.new_zeros((len(rois), first.shape[1], *output_size))
        for index, (feature, scale) in enumerate(zip(features, scales)):
            chosen = torch.where(level == index)[0]
            result[chosen] = torchvision_roi_align(feature, rois[chosen], output_size, spatial_scale=scale,
                                                   sampling_ratio=sampling_ratio, aligned=aligned).to(result.dtype)
        return result
    channels = first.shape[1]
    matrix = bilinear_matrix(rois.detach().to(first.dtype), level, [(f.shape[0], f.shape[2], f.shape[3])
                                                                    for f in features],
                             scales, output_size, sampling_ratio, aligned)
    pixels = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, channels) for f in features])
    pooled = matrix @ pixels  # (K·PH·PW, C)
    return pooled.reshape(len(rois), *output_size, channels).permute(0, 3, 1, 2).contiguous()
