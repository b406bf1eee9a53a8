"""Nucleus scale beyond `run`: the model's own resize folded in, evaluate and annotate, scale augmentation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from skimage import measure, transform

from conftest import draw_discs, make_dsb_folder
from pcnacycle import annotate
from pcnacycle.config import load_config
from pcnacycle.data.dataset import augment, compose_channels, masks_to_boxes, random_rescale
from pcnacycle.engine.scale import input_scale, model_resize_factor, predict_scaled
from pcnacycle.errors import PcnacycleError
from pcnacycle.evaluation import evaluator


class ThresholdPredictor:
    """A stand-in predictor: bright blobs at whatever size it is shown; resizes first as the model would
    when its ``transform.test_size`` is set. ``seen`` collects the shapes its network was shown."""

    def __init__(self, cfg, seen, test_size=0):
        self.cfg, self.seen = cfg, seen
        self.model = SimpleNamespace(transform=SimpleNamespace(test_size=test_size), training=False,
                                     eval=lambda: None, train=lambda mode: None)

    def predict(self, channels):
        image = compose_channels(channels, self.cfg.INPUT.CHANNELS, self.cfg)
        shape = image.shape[1:]
        own = self.model.transform.test_size
        if own:
            factor = own / min(shape)
            image = transform.rescale(image, (1, factor, factor), order=1, preserve_range=True)
        self.seen.append(image.shape[1:])
        label_image = measure.label(image[0] > 0.5).astype(np.int32)
        if own:  # masks back at the frame's pixels, as the model's postprocess gives them
            label_image = transform.resize(label_image, shape, order=0, preserve_range=True,
                                           anti_aliasing=False).astype(np.int32)
        count = int(label_image.max())
        return {"label_image": label_image, "scores": np.linspace(0.9, 0.5, count).astype(np.float32),
                "labels": np.ones(count, np.int64), "probs": np.ones((count, 1), np.float32),
                "boxes": np.zeros((count, 4), np.float32)}


def stand_in(predictor):
    """A Predictor class whose instances are ``predictor``, whatever weights they are given."""
    return lambda weights, cfg=None: predictor


def disc_frame(diameter: float, size: int = 160) -> dict:
    yy, xx = np.mgrid[:size, :size]
    frame = np.zeros((size, size), np.float32)
    for cy, cx in ((40, 40), (40, 110), (110, 70)):
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = 1000
    return {"gray": frame}


class FragmentingPredictor(ThresholdPredictor):
    """As a model shown nuclei far above its training size: blobs wider than ``whole_up_to`` px in the image it
    is shown come back as 8×8-px pieces (pieces of a fixed size in its pixels, as chromatin grain)."""

    whole_up_to = 40

    def predict(self, channels):
        result = super().predict(channels)
        labels = result["label_image"]
        cut = np.zeros_like(labels)
        yy, xx = np.indices(labels.shape)
        for region in measure.regionprops(labels):
            inside = labels == region.label
            if region.equivalent_diameter_area > self.whole_up_to:
                cut[inside] = (yy[inside] // 8) * labels.shape[1] + xx[inside] // 8 + 1
            else:
                cut[inside] = labels.shape[0] * labels.shape[1] + region.label
        cut = measure.label(cut, background=0, connectivity=1).astype(np.int32)
        count = int(cut.max())
        result.update(label_image=cut, scores=np.full(count, 0.9, np.float32), labels=np.ones(count, np.int64),
                      probs=np.ones((count, 1), np.float32), boxes=np.zeros((count, 4), np.float32))
        return result


def discs_grid(diameter: float, size: int = 512, count: int = 4) -> dict:
    """``count`` × ``count`` discs of ``diameter`` px on a ``size``² frame."""
    yy, xx = np.mgrid[:size, :size]
    frame = np.zeros((size, size), np.float32)
    for cy in np.linspace(size / (2 * count), size - size / (2 * count), count):
        for cx in np.linspace(size / (2 * count), size - size / (2 * count), count):
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = 1000
    return {"gray": frame}


def test_nuclei_the_model_cuts_into_pieces_are_measured_whole_on_shrunk_frames(monkeypatch):
    from pcnacycle.engine import scale as scale_module

    cfg = load_config(None, ["INPUT.NUCLEUS_DIAMETER", "25", "INPUT.MIN_SIZE_TEST", "0"])
    frame = discs_grid(60)
    # measured as the model takes the frame: 8-px pieces, and the frame would be enlarged, not shrunk
    monkeypatch.setattr(scale_module, "SEARCH_STEPS", (1.0,))
    scale, info = input_scale(FragmentingPredictor(cfg, []), [frame])
    assert info["movie_nucleus_diameter_px"] < 15 and scale > 1
    # shrunk until the pieces become whole nuclei, whose size in the frame's pixels then stays put
    monkeypatch.undo()
    scale, info = input_scale(FragmentingPredictor(cfg, []), [frame])
    assert info["movie_nucleus_diameter_px"] == pytest.approx(60, rel=0.1)
    assert scale == pytest.approx(25 / 60, rel=0.1) and "shrunk" in info["scale_note"]
    assert info["estimate_reliable"]


def test_the_search_ends_at_the_shrink_limit_instead_of_measuring_one_scale_twice():
    cfg = load_config(None, ["INPUT.NUCLEUS_DIAMETER", "25", "INPUT.MIN_SIZE_TEST", "256"])
    predictor = FragmentingPredictor(cfg, [], test_size=256)  # halves 512-px frames itself
    predictor.whole_up_to = 0  # pieces at every scale: no size at which two scales agree
    _, info = input_scale(predictor, [discs_grid(60)])
    assert "shrunk" not in info["scale_note"]
    # 0.5 (its own), 0.354, then 0.25, the limit, measured once; then the earlier estimate (which enlarges)
    sizes = [shape[0] for shape in predictor.seen]
    assert sizes[:3] == [256, 181, 128] and sizes.count(128) == 1


def test_whole_nuclei_are_measured_as_the_model_takes_them_without_searching_further():
    cfg = load_config(None, ["INPUT.NUCLEUS_DIAMETER", "25", "INPUT.MIN_SIZE_TEST", "0"])
    seen = []
    scale, info = input_scale(ThresholdPredictor(cfg, seen), [discs_grid(20)])
    assert info["movie_nucleus_diameter_px"] == pytest.approx(20, rel=0.05) and scale == pytest.approx(1.25, rel=0.05)
    assert "shrunk" not in info["scale_note"]
    # the model's own scale, one step down (they agree: the nuclei are whole), then the enlarged frame
    assert [shape[0] for shape in seen[:2]] == [512, 362] and len(seen) == 3 and seen[2][0] > 600


# ---------------------------------------------------------------- the model's own resize


def test_a_model_that_resizes_frames_itself_is_rescaled_once_with_the_factor_folded_in():
    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST", "80", "INPUT.NUCLEUS_DIAMETER", "15"])
    seen = []
    predictor = ThresholdPredictor(cfg, seen, test_size=80)
    assert model_resize_factor(cfg, 160, 160) == 0.5
    # 30-px nuclei: the model's own halving already brings them to 15 px, nothing more to do
    scale, info = input_scale(predictor, [disc_frame(30)])
    assert scale is None and info["scale"] == 0.5 and info["movie_nucleus_diameter_px"] == pytest.approx(30, rel=0.05)
    # 60-px nuclei: one resize by 0.25 in all, the model's own switched off meanwhile
    seen.clear()
    scale, info = input_scale(predictor, [disc_frame(60)])
    assert scale == pytest.approx(0.25, rel=0.05) and info["movie_nucleus_diameter_px"] == pytest.approx(60, rel=0.05)
    seen.clear()
    result = predict_scaled(predictor, disc_frame(60), scale)
    assert seen == [(40, 40)] and predictor.model.transform.test_size == 80  # restored afterwards
    assert result["label_image"].shape == (160, 160) and result["label_image"].max() == 3


@pytest.mark.parametrize("augmented", [False, True])
def test_nuclei_15_percent_off_are_resized_only_for_a_model_trained_with_scale_augmentation(augmented):
    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST", "0", "INPUT.NUCLEUS_DIAMETER", "20",
                             "INPUT.RANDOM_SCALE", "[0.8, 1.25]" if augmented else "[1.0, 1.0]"])
    scale, info = input_scale(ThresholdPredictor(cfg, []), [disc_frame(23)])
    assert info["movie_nucleus_diameter_px"] == pytest.approx(23, rel=0.05)
    if augmented:
        assert scale == pytest.approx(20 / 23, rel=0.05)
    else:
        assert scale is None and info["scale"] == 1.0
    # 5 % off is left alone either way
    assert input_scale(ThresholdPredictor(cfg, []), [disc_frame(21)])[0] is None


def test_absurd_diameters_are_refused_naming_the_value():
    cfg = load_config(None, ["INPUT.NUCLEUS_DIAMETER", "15"])
    for bad, match in ((0.0, "nucleus_diameter=0.0"), (-2.0, "nucleus_diameter=-2.0"),
                       (500.0, "nucleus_diameter=500 px: larger than the 160×160 frame")):
        with pytest.raises(PcnacycleError, match=match):
            input_scale(ThresholdPredictor(cfg, []), [disc_frame(30)], nucleus_diameter=bad)


# ---------------------------------------------------------------- evaluate and annotate


def test_evaluate_rescales_images_whose_nuclei_are_off_the_training_size(tmp_path, monkeypatch):
    root = make_dsb_folder(tmp_path / "dsb", n_images=3, shape=(64, 64), rgba=False)
    diameters = []
    for folder in sorted(root.iterdir()):
        areas = [(iio.imread(p) > 0).sum() for p in (folder / "masks").glob("*.png")]
        diameters += [2 * np.sqrt(a / np.pi) for a in areas]
    cfg = load_config(None, ["DATASETS.ROOT", str(root), "MODEL.DEVICE", "cpu",
                             "INPUT.NUCLEUS_DIAMETER", str(2 * float(np.median(diameters))),
                             "INPUT.MIN_SIZE_TEST", "0"])
    seen = []
    monkeypatch.setattr(evaluator, "Predictor", stand_in(ThresholdPredictor(cfg, seen)))
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    results = evaluator.evaluate(cfg, tmp_path / "w.pt", split="all", progress=False, output=tmp_path / "eval")
    assert results["scale"] == pytest.approx(2.0, rel=0.01) and results["scale_note"] == "measured on the annotations"
    assert set(seen) == {(128, 128)}  # the detector saw every image at twice its size
    assert results["segm"]["AP50"] > 90  # and the masks came back onto the images' own pixels
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["scale"] == pytest.approx(2.0, rel=0.01)
    seen.clear()
    kept = evaluator.evaluate(cfg, tmp_path / "w.pt", split="all", progress=False, rescale=False)
    assert kept["scale"] == 1.0 and set(seen) == {(64, 64)}


def _dsb_image(root, image_id: str, radius: int, centres) -> None:
    """One DSB2018-layout image of bright discs of one ``radius``, 64 × 64."""
    yy, xx = np.mgrid[:64, :64]
    masks = [(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2 for cy, cx in centres]
    (root / image_id / "images").mkdir(parents=True)
    (root / image_id / "masks").mkdir()
    iio.imwrite(root / image_id / "images" / f"{image_id}.png", (200 * np.any(masks, axis=0)).astype(np.uint8))
    for k, mask in enumerate(masks):
        iio.imwrite(root / image_id / "masks" / f"{k}.png", mask.astype(np.uint8) * 255)


def test_evaluate_per_image_resizes_each_image_by_its_own_nuclei(tmp_path, monkeypatch):
    root = tmp_path / "dsb"
    _dsb_image(root, "small", 5, [(16, 16), (16, 46), (46, 30)])  # nuclei 10 px across: twice too small
    _dsb_image(root, "large", 10, [(16, 16), (44, 44)])  # nuclei 20 px across: as trained
    cfg = load_config(None, ["DATASETS.ROOT", str(root), "MODEL.DEVICE", "cpu", "INPUT.NUCLEUS_DIAMETER", "20",
                             "INPUT.MIN_SIZE_TEST", "0"])
    seen = []
    monkeypatch.setattr(evaluator, "Predictor", stand_in(ThresholdPredictor(cfg, seen)))
    (tmp_path / "w.pt").write_bytes(b"stand-in")
    results = evaluator.evaluate(cfg, tmp_path / "w.pt", split="all", progress=False, scale_per_image=True)
    (kept, enlarged) = sorted(seen)  # the small nuclei enlarged about twice (discs of 10.2 px), the large left alone
    assert kept == (64, 64) and enlarged[0] == enlarged[1] == pytest.approx(126, abs=1)
    assert results["segm"]["AP50"] > 90
    assert results["scale"][0] == pytest.approx(1.25, rel=0.05) and results["scale"][2] == pytest.approx(1.75, rel=0.05)
    assert results["scale_note"].startswith("each image by its own")
    seen.clear()
    one_factor = evaluator.evaluate(cfg, tmp_path / "w.pt", split="all", progress=False)
    assert len(set(seen)) == 1 and one_factor["scale_note"] == "measured on the annotations"  # one for both
    with pytest.raises(PcnacycleError, match="scale per image"):
        evaluator.evaluate(cfg, tmp_path / "w.pt", split="all", progress=False, scale_per_image=True,
                           nucleus_diameter=12.0)


def test_annotate_rescales_and_writes_outlines_at_the_images_own_pixels(tmp_path, monkeypatch):
    """Nuclei about 12 px across, a model trained on 24 px ones."""
    folder = tmp_path / "data" / "pcna"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.tif", "b.tif"):
        discs = draw_discs((64, 64), 4, rng, radius=(5, 7))
        tifffile.imwrite(folder / name, (discs.any(0) * 1000).astype(np.uint16))
    cfg = load_config(None, ["DATASETS.FORMAT", "labelmask", "DATASETS.ROOT", str(tmp_path / "data"),
                             "INPUT.CHANNELS", "[pcna]", "INPUT.MIN_SIZE_TEST", "0", "MODEL.ROI_HEADS.NUM_CLASSES", "1",
                             "MODEL.CLASS_NAMES", "[nucleus]", "INPUT.NUCLEUS_DIAMETER", "24"])
    seen = []
    monkeypatch.setattr(annotate, "Predictor", stand_in(ThresholdPredictor(cfg, seen)))
    (tmp_path / "w.pt").write_bytes(b"")
    written = annotate.preannotate(tmp_path / "w.pt", sorted(folder.iterdir()), tmp_path / "out", cfg, fmt=["coco"])
    assert (128, 128) in seen
    coco = json.loads(written["coco"].read_text())
    assert {(im["height"], im["width"]) for im in coco["images"]} == {(64, 64)}
    xs = [x for ann in coco["annotations"] for x in ann["segmentation"][0][::2]]
    assert len(coco["annotations"]) == 8 and max(xs) < 64


# ---------------------------------------------------------------- scale augmentation


def test_random_rescale_resizes_masks_by_the_factor_and_keeps_boxes_on_them():
    masks = draw_discs((60, 80), 4, np.random.default_rng(1), radius=(5, 9))
    image = masks.any(0)[None].astype(np.float32)
    labels = np.arange(1, 5)
    out, out_masks, out_labels = random_rescale(image, masks, labels, 2.0)
    assert out.shape == (1, 120, 160) and out_masks.shape == (4, 120, 160) and out_labels.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(out_masks.sum(axis=(1, 2)), 4 * masks.sum(axis=(1, 2)), rtol=0.1)
    np.testing.assert_allclose(masks_to_boxes(out_masks), 2 * masks_to_boxes(masks), atol=2)
    assert (out[0][out_masks.any(0)] > 0.5).all()  # masks still lie on their nuclei
    small, small_masks, small_labels = random_rescale(image, masks, labels, 0.1)
    assert small.shape == (1, 6, 8) and len(small_masks) == len(small_labels) < 4  # slivers dropped


def test_scale_augmentation_draws_factors_in_its_range_and_is_off_by_default():
    masks = draw_discs((64, 64), 3, np.random.default_rng(2), radius=(6, 9))
    image = masks.any(0)[None].astype(np.float32)
    labels = np.arange(1, 4)
    assert load_config(None).INPUT.RANDOM_SCALE == [1.0, 1.0]
    plain = augment(image, masks, labels, load_config(None), np.random.default_rng(0))
    assert plain[0].shape == (1, 64, 64)
    cfg = load_config(None, ["INPUT.RANDOM_SCALE", "[0.8, 1.25]"])
    sides = {augment(image, masks, labels, cfg, np.random.default_rng(seed))[0].shape[1] for seed in range(20)}
    assert len(sides) > 5 and min(sides) >= round(64 * 0.8) and max(sides) <= round(64 * 1.25)
    with pytest.raises(PcnacycleError, match="INPUT.RANDOM_SCALE"):
        load_config(None, ["INPUT.RANDOM_SCALE", "[2.0, 1.0]"])


def test_training_nucleus_size_is_recorded_in_the_pixels_the_network_sees(tmp_path):
    from pcnacycle.data.catalog import read_records
    from pcnacycle.data.dataset import median_nucleus_diameter

    root = make_dsb_folder(tmp_path / "dsb", n_images=2, shape=(64, 64), rgba=False)
    own = load_config(None, ["DATASETS.ROOT", str(root), "INPUT.MIN_SIZE_TRAIN", "[0]"])
    doubled = load_config(None, ["DATASETS.ROOT", str(root), "INPUT.MIN_SIZE_TRAIN", "[128]"])
    records = read_records(own)
    at_own_pixels = median_nucleus_diameter(own, records)
    assert median_nucleus_diameter(own, records, network=True) == pytest.approx(at_own_pixels)
    assert median_nucleus_diameter(doubled, records, network=True) == pytest.approx(2 * at_own_pixels)


def discs_of(diameters, size: int = 240) -> dict:
    """A frame with one bright disc of each diameter, on a grid 60 px apart."""
    yy, xx = np.mgrid[:size, :size]
    frame = np.zeros((size, size), np.float32)
    for k, diameter in enumerate(diameters):
        cy, cx = 30 + 60 * (k // 4), 30 + 60 * (k % 4)
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = 1000
    return {"gray": frame}


def test_the_size_estimate_says_how_far_it_can_be_trusted(caplog):
    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST", "0", "INPUT.NUCLEUS_DIAMETER", "20"])
    _, info = input_scale(ThresholdPredictor(cfg, []), [discs_of([20] * 12)])
    assert info["nuclei_measured"] == 12 and info["estimate_reliable"]
    assert info["nucleus_diameter_quartiles_px"] == pytest.approx([20, 20], rel=0.05)
    assert "unreliable" not in caplog.text
    # pieces of every size, as a model that cuts nuclei up gives them: the smaller half are not taken for
    # nuclei by their size, and the six left are too few to trust
    _, info = input_scale(ThresholdPredictor(cfg, []), [discs_of([6, 8, 10, 12, 16, 20, 26, 32, 38, 44, 50, 56])])
    assert info["nuclei_measured"] == 6 and not info["estimate_reliable"]
    assert "nucleus size estimate is unreliable (6 nuclei measured" in caplog.text
    caplog.clear()
    # too few nuclei to tell
    _, info = input_scale(ThresholdPredictor(cfg, []), [disc_frame(20)])
    assert info["nuclei_measured"] == 3 and not info["estimate_reliable"] and "unreliable" in caplog.text
    # a diameter the user gives is not an estimate
    _, info = input_scale(ThresholdPredictor(cfg, []), [disc_frame(20)], nucleus_diameter=20.0)
    assert "estimate_reliable" not in info


def test_specks_beside_the_nuclei_do_not_make_them_look_smaller():
    """12 nuclei of 30 px and 16 specks of 5 px (debris, foci found alone): the plain median would be 5 px
    and the frames enlarged six times; only the nuclei are measured."""
    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST", "0", "INPUT.NUCLEUS_DIAMETER", "30"])
    frame = discs_of([30] * 12, size=300)["gray"]
    yy, xx = np.mgrid[:300, :300]
    for k in range(16):  # between the nuclei of discs_of's grid, 60 px apart
        cy, cx = 60 + 60 * (k // 4), 60 + 60 * (k % 4)
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= 2.5 ** 2] = 1000
    scale, info = input_scale(ThresholdPredictor(cfg, []), [{"gray": frame}])
    assert info["nuclei_measured"] == 12 and info["estimate_reliable"]
    assert info["movie_nucleus_diameter_px"] == pytest.approx(30, rel=0.05) and scale is None


def test_one_clump_larger_than_all_the_nuclei_together_does_not_set_the_size():
    from pcnacycle.engine.scale import nucleus_areas

    nuclei = np.full(12, np.pi * 15**2)  # 30 px across
    kept = nucleus_areas(np.r_[nuclei, 2 * nuclei.sum(), np.full(16, np.pi * 2.5**2)])
    assert len(kept) == 13 and np.median(kept) == pytest.approx(np.pi * 15**2)  # nuclei and the clump; no specks
    assert len(nucleus_areas([500.0])) == 1 and len(nucleus_areas([])) == 0
