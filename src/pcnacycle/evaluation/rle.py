"""Instance masks as pycocotools compressed RLEs, built from each object's own pixels.

An RLE takes a few hundred bytes where a full-frame (H, W) bool mask takes
H × W; evaluation keeps its masks in this form so that its memory grows with
the outlines, not with images × instances × pixels.
"""

from __future__ import annotations

import numpy as np


def _rle_of_pixels(index: np.ndarray, shape: tuple[int, int]) -> dict:
    """The compressed RLE of the pixels at sorted column-major (Fortran) linear positions ``index``.

    COCO RLE counts alternate runs of 0s and 1s down the columns, starting
    with 0s; building them from an object's own pixels costs its area, not
    the frame's.
    """
    from pycocotools import mask as mask_utils

    height, width = shape
    if len(index) == 0:
        counts = [height * width]
    else:
        breaks = np.flatnonzero(np.diff(index) != 1)
        starts = index[np.r_[0, breaks + 1]]
        ends = index[np.r_[breaks, len(index) - 1]] + 1
        counts = np.diff(np.r_[0, np.stack([starts, ends], axis=1).ravel(), height * width]).tolist()
        if counts[-1] == 0:  # the object ends in the last pixel: no closing run of 0s
            counts.pop()
    return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool masks as N pycocotools compressed RLEs (as ``pycocotools.mask.encode`` gives)."""
    shape = tuple(masks.shape[1:])
    return [_rle_of_pixels(np.flatnonzero(mask.T), shape) for mask in masks]  # .T: column-major order


def encode_label_image(label_image: np.ndarray, count: int) -> list[dict]:
    """Objects 1..count of an (H, W) label image as ``count`` RLEs, each from its bounding box alone."""
    from scipy import ndimage

    height = label_image.shape[0]
    rles = []
    for label, window in enumerate(ndimage.find_objects(label_image, max_label=count), start=1):
        index = np.zeros(0, np.int64)
        if window is not None:
            rows, cols = np.nonzero(label_image[window] == label)
            index = np.sort((cols + window[1].start) * height + rows + window[0].start)
        rles.append(_rle_of_pixels(index, label_image.shape))
    return rles
