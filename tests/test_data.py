import itertools
import logging

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import make_dsb_folder
from pcnacycle.config import load_config
from pcnacycle.data.dataset import (
    InstanceDataset,
    TrainingSampler,
    augment,
    compose_channels,
    lowered_otsu_mask,
    masks_to_boxes,
    normalize_intensity,
    split_records,
)
from pcnacycle.data.dsb2018 import load_dsb2018_sample, read_dsb2018_records
from pcnacycle.errors import PcnacycleError


def test_dsb_reader_grey_and_rgba_give_the_same_pixels(tmp_path):
    root = make_dsb_folder(tmp_path / "a", n_images=2, rgba=False, seed=3)
    grey = load_dsb2018_sample(read_dsb2018_records(root)[0])
    root_rgba = make_dsb_folder(tmp_path / "b", n_images=2, rgba=True, seed=3)
    rgba = load_dsb2018_sample(read_dsb2018_records(root_rgba)[1])  # odd images are RGBA
    plain = load_dsb2018_sample(read_dsb2018_records(root)[1])
    np.testing.assert_array_equal(rgba["channels"]["gray"], plain["channels"]["gray"])
    assert grey["masks"].dtype == bool and grey["masks"].shape == (5, 64, 64)
    assert grey["labels"].tolist() == [1] * 5


def test_dsb_reader_keeps_overlapping_masks_and_skips_empty_ones(tmp_path, caplog):
    root = make_dsb_folder(tmp_path / "d", n_images=1, rgba=False)
    masks_dir = root / "img000" / "masks"
    first = iio.imread(masks_dir / "0.png")
    overlapping = np.roll(first, 2, axis=1)
    iio.imwrite(masks_dir / "overlap.png", overlapping)
    iio.imwrite(masks_dir / "zz_empty.png", np.zeros_like(first))
    with caplog.at_level(logging.WARNING):
        sample = load_dsb2018_sample(read_dsb2018_records(root)[0])
    assert len(sample["masks"]) == 6
    assert (sample["masks"][0] & sample["masks"][5]).any()  # the overlap survives
    assert "zz_empty.png" in caplog.text


def test_dsb_reader_skips_and_counts_images_without_masks(tmp_path, caplog):
    root = make_dsb_folder(tmp_path / "d", n_images=3)
    for path in (root / "img001" / "masks").iterdir():
        path.unlink()
    with caplog.at_level(logging.WARNING):
        records = read_dsb2018_records(root)
    assert [r["image_id"] for r in records] == ["img000", "img002"]
    assert "1 image(s) without masks" in caplog.text and "img001" in caplog.text


def test_dsb_reader_errors_name_the_file(tmp_path):
    with pytest.raises(PcnacycleError, match="does not exist"):
        read_dsb2018_records(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PcnacycleError, match="no DSB2018 images"):
        read_dsb2018_records(tmp_path / "empty")

    root = make_dsb_folder(tmp_path / "size", n_images=1)
    iio.imwrite(root / "img000" / "masks" / "big.png", np.zeros((70, 64), np.uint8))
    with pytest.raises(PcnacycleError, match=r"big\.png: mask is 64×70 but its image .*img000\.png is 64×64"):
        read_dsb2018_records(root)  # before training starts, not when the image is first loaded

    root = make_dsb_folder(tmp_path / "broken", n_images=1)
    (root / "img000" / "images" / "img000.png").write_bytes(b"not a png at all")
    with pytest.raises(PcnacycleError, match=r"img000\.png: cannot be read"):
        load_dsb2018_sample(read_dsb2018_records(root)[0])


def test_split_is_seeded_complete_and_disjoint():
    records = [{"image_id": f"id{i}"} for i in range(670)]
    split = split_records(records, 100, seed=0)
    assert len(split["train"]) == 570 and len(split["val"]) == 100
    assert not set(split["train"]) & set(split["val"])
    assert split == split_records(list(reversed(records)), 100, seed=0)  # order of listing does not matter
    assert split != split_records(records, 100, seed=1)
    assert len(split_records(records, 0.1, seed=0)["val"]) == 67
    with pytest.raises(PcnacycleError, match="VAL_SIZE"):
        split_records(records[:5], 5, seed=0)


@pytest.mark.parametrize("dtype, high", [(np.uint8, 255), (np.uint16, 65535), (np.float64, 1.0)])
def test_normalize_intensity_maps_any_dtype_to_unit_float32(dtype, high):
    image = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * high).astype(dtype)
    out = normalize_intensity(image, (1, 99), gamma=0.5)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    assert normalize_intensity(np.full((4, 4), 7, dtype)).max() == 0


def test_lowered_otsu_captures_dim_nuclei_that_otsu_misses():
    image = np.zeros((64, 64), np.float32)
    image[10:20, 10:20] = 100  # bright nucleus
    image[40:50, 40:50] = 25   # dim (mitotic) nucleus
    assert lowered_otsu_mask(image, factor=1.0)[45, 45] == 0
    lowered = lowered_otsu_mask(image, factor=0.3)
    assert lowered[45, 45] == 1 and lowered[15, 15] == 1 and lowered[0, 0] == 0


def test_channel_composition_shapes_and_errors():
    cfg = load_config(None, ["INPUT.CHANNELS", "[pcna, dic, otsu]"])
    channels = {"pcna": np.random.default_rng(0).integers(0, 4000, (32, 48)).astype(np.uint16),
                "dic": np.random.default_rng(1).normal(size=(32, 48))}
    image = compose_channels(channels, cfg.INPUT.CHANNELS, cfg)
    assert image.shape == (3, 32, 48) and image.dtype == np.float32
    assert set(np.unique(image[2])) <= {0.0, 1.0}
    with pytest.raises(PcnacycleError, match="'bf'"):
        compose_channels(channels, ["bf"], cfg)


@pytest.mark.parametrize("crop_type, size", [("absolute", [40, 30]), ("relative", [0.7, 0.6]),
                                             ("relative_range", [0.5, 0.5])])
def test_augmentation_keeps_image_masks_and_boxes_aligned(tmp_path, crop_type, size):
    root = make_dsb_folder(tmp_path / "d", n_images=1, nuclei=8)
    cfg = load_config(None, ["INPUT.CROP.ENABLED", "true", "INPUT.CROP.TYPE", crop_type,
                             "INPUT.CROP.SIZE", str(size), "INPUT.RANDOM_FLIP", "both"])
    sample = load_dsb2018_sample(read_dsb2018_records(root)[0])
    union = sample["masks"].any(0).astype(np.float32)[None]
    for seed in range(8):
        image, masks, labels = augment(union.copy(), sample["masks"], sample["labels"], cfg,
                                       np.random.default_rng(seed))
        assert image.shape[1:] == masks.shape[1:] and len(masks) == len(labels)
        covered = masks.any(0) if len(masks) else np.zeros(image.shape[1:], bool)
        foreground = image[0] > 0.5
        # Every instance pixel is still a foreground pixel of the transformed image; the only foreground
        # left uncovered are slivers (< 4 px each) of nuclei the crop cut away.
        assert not (covered & ~foreground).any()
        assert (foreground & ~covered).sum() <= 3 * (len(sample["masks"]) - len(masks))
        for mask, box in zip(masks, masks_to_boxes(masks)):
            ys, xs = np.nonzero(mask)
            assert (box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).all()


def test_dataset_gives_torchvision_targets(tmp_path):
    root = make_dsb_folder(tmp_path / "d", n_images=2)
    cfg = load_config(None, ["DATASETS.ROOT", str(root)])
    image, target = InstanceDataset(read_dsb2018_records(root), cfg, augment=False)[0]
    assert image.shape == (1, 64, 64) and str(image.dtype) == "torch.float32"
    assert target["boxes"].shape == (5, 4) and target["masks"].shape == (5, 64, 64)
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_training_sampler_resumes_exactly():
    straight = list(itertools.islice(iter(TrainingSampler(7, seed=3)), 30))
    resumed = list(itertools.islice(iter(TrainingSampler(7, seed=3, start=12)), 18))
    assert straight[12:] == resumed
    first_epoch = sorted(index for index, _ in straight[:7])
    assert first_epoch == list(range(7))  # each epoch visits every image once
    assert len({seed for _, seed in straight}) == 30  # every draw its own augmentation seed
