"""Fixtures the tests generate themselves: no test reads ../shared."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

#: Simulator settings with short cycles (about 21 frames) so that a 30–40 frame movie holds divisions.
FAST = dict(frame_interval=10.0, g1_minutes=(60.0, 10.0), s_minutes=(80.0, 10.0),
            g2_minutes=(40.0, 5.0), m_minutes=(30.0, 5.0))


def draw_discs(shape, count, rng, radius=(4, 8)):
    """Non-overlapping discs: (count, H, W) bool masks."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    masks, taken = [], np.zeros(shape, bool)
    for _ in range(count * 20):
        if len(masks) == count:
            break
        r = rng.integers(*radius)
        cy, cx = rng.integers(r, height - r), rng.integers(r, width - r)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if not (disc & taken).any():
            masks.append(disc)
            taken |= disc
    return np.stack(masks)


def make_dsb_folder(root: Path, n_images=6, shape=(64, 64), seed=0, rgba=True, nuclei=5) -> Path:
    """A DSB2018-layout folder: <id>/images/<id>.png and <id>/masks/<k>.png.

    Bright discs on a dark noisy background; every second image is an RGBA
    colour PNG when ``rgba`` is set, the others grey.
    """
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        image_id = f"img{i:03d}"
        masks = draw_discs(shape, nuclei, rng)
        image = rng.normal(20, 4, shape) + 160 * masks.any(0)
        image = np.clip(image, 0, 255).astype(np.uint8)
        (root / image_id / "images").mkdir(parents=True)
        (root / image_id / "masks").mkdir()
        if rgba and i % 2:
            stored = np.dstack([image, image, image, np.full(shape, 255, np.uint8)])
        else:
            stored = image
        iio.imwrite(root / image_id / "images" / f"{image_id}.png", stored)
        for k, mask in enumerate(masks):
            iio.imwrite(root / image_id / "masks" / f"{k}.png", mask.astype(np.uint8) * 255)
    return root


@pytest.fixture
def dsb_root(tmp_path):
    return make_dsb_folder(tmp_path / "dsb")


def tiny_overrides(root, **extra):
    """Config overrides for a model small and fast enough for a test."""
    opts = {
        "DATASETS.ROOT": str(root),
        "DATASETS.VAL_SIZE": 2,
        "MODEL.DEVICE": "cpu",
        "MODEL.RESNETS.DEPTH": 18,
        "MODEL.FPN.OUT_CHANNELS": 32,
        "MODEL.ROI_BOX_HEAD.FC_DIM": 64,
        "MODEL.ROI_MASK_HEAD.CONV_DIM": 32,
        "MODEL.ROI_MASK_HEAD.NUM_CONV": 1,
        "MODEL.ANCHOR_GENERATOR.SIZES": "[[8], [16], [32], [64], [128]]",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 64,
        "INPUT.MIN_SIZE_TRAIN": "[0]",
        "INPUT.MIN_SIZE_TEST": 0,
        "SOLVER.IMS_PER_BATCH": 2,
        "SOLVER.BASE_LR": 0.01,
        "SOLVER.WARMUP_ITERS": 2,
        "SOLVER.STEPS": "[4]",
        "SOLVER.MAX_ITER": 6,
        "SOLVER.CHECKPOINT_PERIOD": 3,
        "SOLVER.LOG_PERIOD": 1,
        "DATALOADER.NUM_WORKERS": 0,
    }
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny training run (12 iterations, checkpoints every 6), shared by several tests."""
    from pcnacycle import load_config, train

    base = tmp_path_factory.mktemp("trained")
    root = make_dsb_folder(base / "dsb", n_images=6)
    cfg = load_config(None, tiny_overrides(root, **{"SOLVER.MAX_ITER": 12, "SOLVER.STEPS": "[9]",
                                                     "SOLVER.CHECKPOINT_PERIOD": 6}))
    train(cfg, base / "run", progress=False)
    return base / "run"


def stand_in_predictor(cfg, detect, loaded=None):
    """A :class:`~pcnacycle.engine.predictor.Predictor` class that loads no model.

    Its config is the one the caller gives, else ``cfg``; ``detect(image)``
    answers for the model on the composed ``(C, H, W)`` image; ``loaded``, a
    list, collects the weights each instance was asked to load.
    """
    from collections.abc import Mapping

    from pcnacycle.engine.predictor import Predictor

    class StandIn(Predictor):
        def __init__(self, weights, cfg_given=None, onnx=None):
            if loaded is not None:
                loaded.append(weights)
            self.weights, self.model, self.cfg = weights, None, cfg if cfg_given is None else cfg_given

        def predict(self, image, mask_threshold=0.5):
            return detect(self.compose(image) if isinstance(image, Mapping) else image)

    return StandIn
