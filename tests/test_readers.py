"""Dataset readers (deepcell, via2, coco, labelmask), group splits, channels, augmentation, pre-annotation."""

import json

import numpy as np
import pytest
import tifffile

from conftest import draw_discs, stand_in_predictor
from pcnacycle import annotate
from pcnacycle.config import load_config
from pcnacycle.data.annotations import polygon_fault
from pcnacycle.data.catalog import load_sample, read_records
from pcnacycle.data.dataset import augment, compose_channels, split_records
from pcnacycle.data.deepcell import npz_array
from pcnacycle.errors import PcnacycleError

PHASES = ["MODEL.CLASS_NAMES", "[G1/G2, S, M]", "MODEL.ROI_HEADS.NUM_CLASSES", "3"]


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def disc_polygon(mask, points=24):
    """A polygon (xs, ys) around a disc mask, through the centres of its outermost pixels."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    radius = np.sqrt(mask.sum() / np.pi)
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return (cx + radius * np.cos(angles)).round(1).tolist(), (cy + radius * np.sin(angles)).round(1).tolist()


def make_frame(shape, seed, nuclei=4):
    """Disc masks, a uint16 PCNA image (bright discs) and a float32 DIC image."""
    rng = np.random.default_rng(seed)
    masks = draw_discs(shape, nuclei, rng, radius=(4, 7))
    pcna = (rng.normal(300, 20, shape) + 2000 * masks.any(0)).clip(0).astype(np.uint16)
    dic = rng.normal(0, 1, shape).astype(np.float32)
    return masks, pcna, dic


def make_annotated_folder(root, n_images=2, shape=(48, 64)):
    """``<root>/pcna/f<i>.tif`` and ``<root>/dic/f<i>.tif``; returns ``{filename: masks}``."""
    truth = {}
    for i in range(n_images):
        masks, pcna, dic = make_frame(shape, seed=i)
        for channel, image in (("pcna", pcna), ("dic", dic)):
            (root / channel).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / channel / f"f{i}.tif", image)
        truth[f"f{i}.tif"] = masks
    return truth


def via_export(truth, phases=("G1/G2", "S", "M", "E")):
    """A VIA 2 export of ``{filename: masks}``, phases assigned in turn."""
    out = {}
    for filename, masks in truth.items():
        regions = []
        for k, mask in enumerate(masks):
            xs, ys = disc_polygon(mask)
            regions.append({"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                            "region_attributes": {"phase": phases[k % len(phases)]}})
        out[f"{filename}123"] = {"filename": filename, "size": 123, "regions": regions, "file_attributes": {}}
    return out


def via_config(root, *extra):
    return load_config(None, ["DATASETS.FORMAT", "via2", "DATASETS.ROOT", str(root),
                              "INPUT.CHANNELS", "[pcna, dic, otsu]", *PHASES, *extra])


@pytest.fixture
def via_root(tmp_path):
    root = tmp_path / "annotated"
    truth = make_annotated_folder(root)
    (root / "via.json").write_text(json.dumps(via_export(truth)))
    return root, truth


# ---------------------------------------------------------------- deepcell


def deepcell_arrays(movies, frames, shape=(32, 40), seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    labels = np.zeros((movies, frames) + shape + (1,), np.int32)
    for m in range(movies):
        for t in range(frames):
            for k, mask in enumerate(draw_discs(shape, 3, rng, radius=(3, 6))):
                labels[m, t, mask, 0] = 10 * k + 7  # DeepCell labels need not be 1..N
    images = (rng.normal(10, 2, labels.shape) + 100 * (labels > 0)).astype(dtype)
    return images, labels


def test_deepcell_movies_become_frames_grouped_by_movie_and_read_lazily(tmp_path):
    images, labels = deepcell_arrays(movies=2, frames=3)
    labels[1, 2] = 0  # padding after a short movie
    images[1, 2] = 0
    np.savez(tmp_path / "hela.npz", X=images, y=labels)
    cfg = load_config(None, ["DATASETS.FORMAT", "deepcell", "DATASETS.ROOT", str(tmp_path / "hela.npz"),
                             "INPUT.CHANNELS", "[pcna, otsu]"])
    records = read_records(cfg)
    assert [r["image_id"] for r in records] == ["hela/0/0", "hela/0/1", "hela/0/2", "hela/1/0", "hela/1/1"]
    assert {r["group"] for r in records} == {"hela/0", "hela/1"}
    assert isinstance(npz_array(tmp_path / "hela.npz", "X"), np.memmap)  # uncompressed: frames read from disk
    sample = load_sample(cfg, records[4])
    np.testing.assert_array_equal(sample["channels"]["gray"], images[1, 1, ..., 0])
    assert sample["channels"]["pcna"] is sample["channels"]["gray"]
    assert sample["masks"].shape == (3, 32, 40) and sample["labels"].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(sample["masks"].any(0), labels[1, 1, ..., 0] > 0)
    assert compose_channels(sample["channels"], cfg.INPUT.CHANNELS, cfg).shape == (2, 32, 40)


def test_deepcell_folder_with_a_compressed_single_movie_file(tmp_path):
    images, labels = deepcell_arrays(movies=1, frames=2, dtype=np.uint16)
    np.savez_compressed(tmp_path / "a.npz", X=images[0], y=labels[0])  # 4-D: one movie
    np.savez(tmp_path / "b.npz", X=images, y=labels)
    cfg = load_config(None, ["DATASETS.FORMAT", "deepcell", "DATASETS.ROOT", str(tmp_path)])
    records = read_records(cfg)
    assert [(r["image_id"], r["group"]) for r in records] == [("a/0/0", "a/0"), ("a/0/1", "a/0"),
                                                              ("b/0/0", "b/0"), ("b/0/1", "b/0")]
    np.testing.assert_array_equal(load_sample(cfg, records[1])["masks"], load_sample(cfg, records[3])["masks"])


def test_deepcell_errors_name_the_file_and_the_array(tmp_path):
    def read(name):
        return read_records(load_config(None, ["DATASETS.FORMAT", "deepcell", "DATASETS.ROOT", str(tmp_path / name)]))

    images, labels = deepcell_arrays(movies=1, frames=2)
    np.savez(tmp_path / "nolabels.npz", X=images)
    with pytest.raises(PcnacycleError, match=r"nolabels\.npz: no array 'y'"):
        read("nolabels.npz")
    np.savez(tmp_path / "shapes.npz", X=images, y=labels[..., :20, :])
    with pytest.raises(PcnacycleError, match=r"shapes\.npz: y has shape"):
        read("shapes.npz")
    np.savez(tmp_path / "rgb.npz", X=np.repeat(images, 3, axis=-1), y=labels)
    with pytest.raises(PcnacycleError, match=r"rgb\.npz: X has 3 channels; name them with INPUT.STORED_CHANNELS"):
        read("rgb.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(PcnacycleError, match=r"broken\.npz: not a readable \.npz"):
        read("broken.npz")


# ---------------------------------------------------------------- via2


def test_via2_reader_rasterises_polygons_with_phases(via_root):
    root, truth = via_root
    cfg = via_config(root)
    records = read_records(cfg)
    assert [r["image_id"] for r in records] == ["f0", "f1"]
    sample = load_sample(cfg, records[0])
    assert set(sample["channels"]) == {"pcna", "dic"} and sample["channels"]["pcna"].dtype == np.uint16
    assert sample["masks"].shape == truth["f0.tif"].shape
    assert min(iou(a, b) for a, b in zip(sample["masks"], truth["f0.tif"])) > 0.8
    assert sample["labels"].tolist() == [1, 2, 3, 1]  # G1/G2, S, M, and E counted as G1/G2
    image = compose_channels(sample["channels"], cfg.INPUT.CHANNELS, cfg)
    assert image.shape == (3, 48, 64) and image.dtype == np.float32


def test_via2_reads_project_files_and_index_keyed_regions(via_root):
    root, truth = via_root
    export = via_export(truth)
    for entry in export.values():
        entry["regions"] = {str(i): region for i, region in enumerate(entry["regions"])}
    export["unannotated"] = {"filename": "f9.tif", "size": 1, "regions": [], "file_attributes": {}}
    (root / "via.json").write_text(json.dumps({"_via_settings": {}, "_via_img_metadata": export}))
    cfg = via_config(root)
    sample = load_sample(cfg, read_records(cfg)[1])
    assert min(iou(a, b) for a, b in zip(sample["masks"], truth["f1.tif"])) > 0.8


def test_via2_one_class_model_ignores_phases(via_root):
    root, _ = via_root
    cfg = load_config(None, ["DATASETS.FORMAT", "via2", "DATASETS.ROOT", str(root), "INPUT.CHANNELS", "[pcna]"])
    assert load_sample(cfg, read_records(cfg)[0])["labels"].tolist() == [1, 1, 1, 1]


def test_via2_multichannel_composites_like_pcnadeep(tmp_path):
    masks, pcna, _ = make_frame((40, 56), seed=3)
    bright_field = np.random.default_rng(0).integers(0, 255, (40, 56)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", np.stack([pcna.astype(np.uint8), pcna.astype(np.uint8), bright_field]),
                    photometric="minisblack")
    (tmp_path / "via.json").write_text(json.dumps(via_export({"c.tif": masks})))
    cfg = load_config(None, ["DATASETS.FORMAT", "via2", "DATASETS.ROOT", str(tmp_path), *PHASES,
                             "INPUT.CHANNELS", "[pcna, pcna, bf]", "INPUT.STORED_CHANNELS", "[pcna, pcna, bf]"])
    sample = load_sample(cfg, read_records(cfg)[0])
    np.testing.assert_array_equal(sample["channels"]["bf"], bright_field)
    image = compose_channels(sample["channels"], cfg.INPUT.CHANNELS, cfg)
    assert image.shape == (3, 40, 56) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0], image[1])


def test_via2_channel_dirs_find_dic_in_a_sibling_folder(tmp_path):
    truth = make_annotated_folder(tmp_path, n_images=1)
    (tmp_path / "pcna" / "via.json").write_text(json.dumps(via_export(truth)))
    cfg = via_config(tmp_path / "pcna", "DATASETS.CHANNEL_DIRS", "[dic=../dic]")
    files = read_records(cfg)[0]["channel_files"]
    assert [name for _, name in files] == [("pcna",), ("dic",)]
    assert files[1][0].endswith("dic/f0.tif")
    with pytest.raises(PcnacycleError, match=r"no folder for channel 'dic'.*DATASETS.CHANNEL_DIRS"):
        read_records(via_config(tmp_path / "pcna"))


def _edit_first_region(root, change):
    export = json.loads((root / "via.json").read_text())
    change(next(iter(export.values())))
    (root / "via.json").write_text(json.dumps(export))


@pytest.mark.parametrize("change, message", [
    (lambda e: e["regions"][1]["region_attributes"].update(phase="G3"),
     r"via\.json: image f0\.tif, region 1: class 'G3' is not in MODEL.CLASS_NAMES"),
    (lambda e: e["regions"][2]["shape_attributes"].update(all_points_x=[1, 5], all_points_y=[1, 5]),
     r"via\.json: image f0\.tif, region 2: polygon has 2 point\(s\)"),
    (lambda e: e["regions"][0]["shape_attributes"].update(all_points_x=[10, 130, 20],
                                                                 all_points_y=[10, 10, 20]),
     r"via\.json: image f0\.tif, region 0: polygon point \(130, .*\) lies outside the 64×48 image"),
    (lambda e: e.update(filename="missing.tif"), r"via\.json: image missing\.tif: image file .*missing\.tif not found"),
    (lambda e: e["regions"][3]["region_attributes"].pop("phase"), r"via\.json: image f0\.tif, region 3: no class"),
    (lambda e: e["regions"][0]["shape_attributes"].update(name="rect"),
     r"via\.json: image f0\.tif, region 0: a 'rect' shape; only polygons are read"),
])
def test_via2_bad_annotations_name_file_image_and_region(via_root, change, message):
    root, _ = via_root
    _edit_first_region(root, change)
    with pytest.raises(PcnacycleError, match=message):
        read_records(via_config(root))


def test_via2_polygons_that_outline_no_nucleus_are_skipped_and_named(via_root, caplog):
    root, _ = via_root

    def spoil(entry):
        shapes = [region["shape_attributes"] for region in entry["regions"]]
        shapes[0].update(all_points_x=[10, 30, 10, 30], all_points_y=[10, 30, 30, 10])  # a bow tie
        shapes[1].update(all_points_x=[10, 20, 30], all_points_y=[10, 20, 30])  # a line
        shapes[2].update(all_points_x=[9.2, 9.4, 9.3], all_points_y=[9.2, 9.2, 9.4])  # between pixel centres

    _edit_first_region(root, spoil)
    with caplog.at_level("WARNING"):
        first = read_records(via_config(root))[0]
    assert first["image_id"] == "f0" and len(first["polygons"]) == 1 and first["labels"] == [1]  # region 3 only
    assert "skipped 3 polygon(s)" in caplog.text
    for named in ("image f0.tif region 0 (self-intersecting)", "image f0.tif region 1 (no area)",
                  "image f0.tif region 2 (no pixel inside)"):
        assert named in caplog.text


@pytest.mark.parametrize("xs, ys, fault", [
    ([0, 4, 4, 0], [0, 0, 4, 4], None),  # a square
    ([0, 4, 4, 4, 0, 0], [0, 0, 0, 4, 4, 0], None),  # the same, with a double click and the first point repeated
    ([0, 6, 6, 3, 3, 0], [0, 0, 2, 2, 6, 6], None),  # concave (an L)
    ([0, 4, 0, 4], [0, 4, 4, 0], "self-intersecting"),  # a bow tie
    ([0, 2, 4, 4, 2, 0, 0, 2], [0, 2, 0, 4, 2, 4, 1, 2], "self-intersecting"),  # touches itself at (2, 2)
    ([0, 1, 2, 3], [0, 1, 2, 3], "no area"),  # all on one line
    ([5, 5, 5], [1, 1, 1], "no area"),
])
def test_polygon_faults(xs, ys, fault):
    assert polygon_fault(np.array(xs, float), np.array(ys, float)) == fault


def test_via2_channels_of_different_shapes_name_both_files(via_root):
    root, _ = via_root
    tifffile.imwrite(root / "dic" / "f1.tif", np.zeros((40, 64), np.float32))
    with pytest.raises(PcnacycleError, match=r"dic/f1\.tif: image is 64×40 but .*pcna/f1\.tif is 64×48"):
        read_records(via_config(root))


def test_via2_annotation_file_must_be_unambiguous(via_root):
    root, _ = via_root
    (root / "other.json").write_text("{}")
    with pytest.raises(PcnacycleError, match=r"2 \*\.json files: other\.json, via\.json; set DATASETS.ANNOTATIONS"):
        read_records(via_config(root))
    assert len(read_records(via_config(root, "DATASETS.ANNOTATIONS", "via.json"))) == 2
    (root / "via.json").unlink()
    (root / "other.json").unlink()
    with pytest.raises(PcnacycleError, match=r"0 \*\.json files"):
        read_records(via_config(root))


# ---------------------------------------------------------------- coco


def coco_export(truth, names=("G1/G2", "S", "M")):
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for image_id, (filename, masks) in enumerate(truth.items(), start=1):
        images.append({"id": image_id, "file_name": filename, "height": masks.shape[1], "width": masks.shape[2]})
        for k, mask in enumerate(masks):
            if k % 2:  # odd objects as RLE, even ones as polygons (pixel-edge coordinates)
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode()}
            else:
                xs, ys = disc_polygon(mask)
                segmentation = [np.ravel(np.column_stack([xs, ys]) + 0.5).tolist()]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": k % 3 + 1,
                                "segmentation": segmentation, "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(names)]}


def test_coco_reader_polygons_and_rle(tmp_path):
    truth = make_annotated_folder(tmp_path)
    (tmp_path / "coco.json").write_text(json.dumps(coco_export(truth)))
    cfg = load_config(None, ["DATASETS.FORMAT", "coco", "DATASETS.ROOT", str(tmp_path),
                             "INPUT.CHANNELS", "[pcna, dic, otsu]", *PHASES])
    records = read_records(cfg)
    sample = load_sample(cfg, records[1])
    assert sample["labels"].tolist() == [1, 2, 3, 1]
    np.testing.assert_array_equal(sample["masks"][1], truth["f1.tif"][1])  # RLE: exact
    assert iou(sample["masks"][0], truth["f1.tif"][0]) > 0.8


def test_coco_bad_annotations_name_file_image_and_annotation(tmp_path):
    truth = make_annotated_folder(tmp_path, n_images=1)
    cfg = load_config(None, ["DATASETS.FORMAT", "coco", "DATASETS.ROOT", str(tmp_path), "INPUT.CHANNELS", "[pcna]",
                             *PHASES])
    export = coco_export(truth, names=("G1/G2", "S", "anaphase"))
    (tmp_path / "coco.json").write_text(json.dumps(export))
    with pytest.raises(PcnacycleError, match=r"coco\.json: image f0\.tif, annotation 3: class 'anaphase'"):
        read_records(cfg)
    export = coco_export(truth)
    export["annotations"][2]["segmentation"] = [[1, 1, 5, 5]]
    (tmp_path / "coco.json").write_text(json.dumps(export))
    with pytest.raises(PcnacycleError, match=r"coco\.json: image f0\.tif, annotation 3: polygon has 2 point"):
        read_records(cfg)
    export = coco_export(truth)
    export["images"][0]["file_name"] = "gone.tif"
    (tmp_path / "coco.json").write_text(json.dumps(export))
    with pytest.raises(PcnacycleError, match=r"coco\.json: image gone\.tif: image file .*gone\.tif not found"):
        read_records(cfg)


# ---------------------------------------------------------------- labelmask


def test_labelmask_reader_still_reads_the_simulator_layout(tmp_path):
    truth = make_annotated_folder(tmp_path, n_images=1)
    label_image = np.zeros((48, 64), np.uint16)
    for k, mask in enumerate(truth["f0.tif"]):
        label_image[mask] = k + 1
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "f0.tif", label_image)
    (tmp_path / "classes.csv").write_text("image,label,class\nf0,1,S\nf0,2,M\nf0,3,G1/G2\nf0,4,S\n")
    cfg = load_config(None, ["DATASETS.FORMAT", "labelmask", "DATASETS.ROOT", str(tmp_path),
                             "INPUT.CHANNELS", "[pcna, dic, otsu]", *PHASES])
    sample = load_sample(cfg, read_records(cfg)[0])
    assert sample["labels"].tolist() == [2, 3, 1, 2]
    np.testing.assert_array_equal(sample["masks"], truth["f0.tif"])


# ---------------------------------------------------------------- splits


def test_group_split_keeps_movies_whole_and_near_the_asked_size():
    sizes = [12, 3, 7, 20, 5, 9, 15, 4, 11, 14]
    records = [{"image_id": f"m{m}/{t}", "group": f"m{m}"} for m, size in enumerate(sizes) for t in range(size)]
    for seed in range(5):
        split = split_records(records, 0.25, seed=seed)
        val_movies = {i.split("/")[0] for i in split["val"]}
        train_movies = {i.split("/")[0] for i in split["train"]}
        assert not val_movies & train_movies and len(split["val"]) + len(split["train"]) == len(records)
        assert abs(len(split["val"]) - 0.25 * len(records)) <= max(sizes) / 2
    assert split == split_records(list(reversed(records)), 0.25, seed=4)
    by_image = split_records(records, 0.25, seed=0, by="image")
    assert by_image == split_records([{"image_id": r["image_id"]} for r in records], 0.25, seed=0)
    assert {i.split("/")[0] for i in by_image["val"]} & {i.split("/")[0] for i in by_image["train"]}


def test_group_split_of_one_movie_asks_for_an_image_split():
    records = [{"image_id": f"m/{t}", "group": "m"} for t in range(10)]
    with pytest.raises(PcnacycleError, match="DATASETS.SPLIT_BY image"):
        split_records(records, 0.2, seed=0)
    assert len(split_records(records, 0.2, seed=0, by="image")["val"]) == 2


# ---------------------------------------------------------------- channels and augmentation


@pytest.mark.parametrize("names", [["pcna"], ["pcna", "dic", "otsu"], ["pcna", "pcna", "bf"]])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_channel_composition_shapes_and_dtypes(names, dtype):
    _, pcna, dic = make_frame((24, 40), seed=1)
    channels = {"pcna": pcna.astype(dtype), "dic": dic, "bf": (dic * 10).astype(dtype)}
    cfg = load_config(None, ["INPUT.CHANNELS", str(names)])
    image = compose_channels(channels, names, cfg)
    assert image.shape == (len(names), 24, 40) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1


def test_otsu_factor_is_configurable():
    masks, pcna, _ = make_frame((48, 64), seed=2)
    pcna[masks[0]] //= 4  # a dim nucleus
    area = {factor: compose_channels({"pcna": pcna}, ["otsu"], load_config(None, ["INPUT.OTSU_FACTOR", str(factor)]))
            [0].sum() for factor in (0.3, 1.0)}
    assert area[0.3] > area[1.0]


@pytest.mark.parametrize("shape", [(40, 64), (48, 48)])
def test_rotation_and_jitter_keep_masks_on_their_nuclei(shape):
    masks, _, _ = make_frame(shape, seed=5, nuclei=6)
    labels = np.arange(1, len(masks) + 1) % 3 + 1
    union = masks.any(0).astype(np.float32)
    image = np.stack([union * 0.9 + 0.05, union])  # a nucleus channel and a binary "otsu" channel
    cfg = load_config(None, ["INPUT.CHANNELS", "[pcna, otsu]", "INPUT.ROTATE_90", "true", "INPUT.INTENSITY_JITTER",
                             "0.2", "INPUT.RANDOM_FLIP", "both", "INPUT.CROP.ENABLED", "true"])
    shapes = set()
    for seed in range(12):
        out, out_masks, out_labels = augment(image, masks, labels, cfg, np.random.default_rng(seed))
        shapes.add(out.shape[1:])
        assert out.shape[1:] == out_masks.shape[1:] and len(out_masks) == len(out_labels)
        assert set(np.unique(out[1])) <= {0.0, 1.0}  # the binary channel is not jittered
        assert not (out_masks.any(0) & (out[1] == 0)).any()  # every mask pixel is still on a nucleus
        assert (out[0][out[1] == 1].min() > out[0][out[1] == 0].max())  # jitter keeps nuclei brighter
    if shape[0] != shape[1]:  # quarter turns swap height and width of non-square images (after a 0.9 crop)
        assert {s[0] > s[1] for s in shapes} == {True, False}


# ---------------------------------------------------------------- pre-annotation


def test_preannotate_writes_via2_and_coco_that_read_back(tmp_path, monkeypatch):
    truth = make_annotated_folder(tmp_path / "data", n_images=2)
    cfg = via_config(tmp_path / "data")
    predicted = {}
    for filename, masks in truth.items():
        label_image = np.zeros(masks.shape[1:], np.int32)
        for k, mask in enumerate(masks):
            label_image[mask] = k + 1
        predicted[filename] = label_image
    empty = np.zeros_like(predicted["f1.tif"])
    tifffile.imwrite(tmp_path / "data" / "pcna" / "f2.tif", np.zeros((48, 64), np.uint16))
    tifffile.imwrite(tmp_path / "data" / "dic" / "f2.tif", np.zeros((48, 64), np.float32))
    frames = iter([predicted["f0.tif"], predicted["f1.tif"], empty])

    def fake_predict(image):
        assert image.shape == (3, 48, 64)  # pcna, dic and otsu were composed
        label_image = next(frames)
        count = int(label_image.max())
        return {"label_image": label_image, "labels": np.arange(count) % 3 + 1,
                "scores": np.linspace(0.9, 0.5, count).astype(np.float32)}

    monkeypatch.setattr(annotate, "Predictor", stand_in_predictor(cfg, fake_predict))
    (tmp_path / "model.pt").write_bytes(b"")
    images = [tmp_path / "data" / "pcna" / name for name in ("f0.tif", "f1.tif", "f2.tif")]
    written = annotate.preannotate(tmp_path / "model.pt", images, tmp_path / "out", cfg)
    assert sorted(written) == ["coco", "via2"]

    for fmt, path in written.items():
        reread = load_config(None, ["DATASETS.FORMAT", fmt, "DATASETS.ROOT", str(tmp_path / "data"),
                                    "DATASETS.ANNOTATIONS", str(path), "INPUT.CHANNELS", "[pcna, dic, otsu]", *PHASES])
        records = read_records(reread)
        assert [r["image_id"] for r in records] == ["f0", "f1"]  # f2 had no nuclei
        for record in records:
            sample = load_sample(reread, record)
            expected = truth[record["image_id"] + ".tif"]
            assert sample["masks"].shape == expected.shape
            assert min(iou(a, b) for a, b in zip(sample["masks"], expected)) > 0.9, fmt
            assert sample["labels"].tolist() == (np.arange(len(expected)) % 3 + 1).tolist()


def test_preannotate_refuses_images_from_several_folders(tmp_path):
    with pytest.raises(PcnacycleError, match="2 folders"):
        annotate.preannotate(tmp_path / "model.pt", [tmp_path / "a" / "x.tif", tmp_path / "b" / "y.tif"],
                             tmp_path / "out")


def test_preannotate_checks_every_input_and_keeps_corrected_annotations(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(annotate, "Predictor", stand_in_predictor(None, None, loaded=calls))
    (tmp_path / "imgs").mkdir()
    tifffile.imwrite(tmp_path / "imgs" / "a.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(PcnacycleError, match="b.tif: no such image file"):
        annotate.preannotate(tmp_path / "model.pt", [tmp_path / "imgs" / "a.tif", tmp_path / "imgs" / "b.tif"],
                             tmp_path / "out")
    corrected = tmp_path / "out" / "via_region_data.json"
    corrected.parent.mkdir()
    corrected.write_text('{"hand": "corrected"}')
    with pytest.raises(PcnacycleError, match="already exists.*--overwrite"):
        annotate.preannotate(tmp_path / "model.pt", [tmp_path / "imgs" / "a.tif"], tmp_path / "out")
    assert corrected.read_text() == '{"hand": "corrected"}' and not calls  # refused before loading the model


def test_format_catalog_holds_every_configurable_format_and_refuses_others(tmp_path):
    from pcnacycle.config import _CHOICES
    from pcnacycle.data.catalog import FORMATS

    assert set(FORMATS) == set(_CHOICES["DATASETS.FORMAT"])
    make_annotated_folder(tmp_path)
    cfg = load_config("stage3_pcna_cpu", ["DATASETS.ROOT", str(tmp_path)])
    cfg.DATASETS["FORMAT"] = "labelmasks"  # a typo set in code, past the config's own check
    with pytest.raises(PcnacycleError, match=r"DATASETS.FORMAT.*'labelmasks'.*labelmask"):
        read_records(cfg)


def test_reader_caches_read_a_changed_file_again(tmp_path):
    import os

    from pcnacycle.data.cache import FileCache

    images, labels = deepcell_arrays(movies=1, frames=2)
    path = tmp_path / "a.npz"
    np.savez(path, X=images[0], y=labels[0])
    first = np.array(npz_array(path, "X"))
    assert npz_array(path, "X") is npz_array(path, "X")  # unchanged: kept
    np.savez(path, X=images[0] + 1, y=labels[0])  # same size: only the modification time tells
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    np.testing.assert_array_equal(npz_array(path, "X"), first + 1)

    reads, cache, table = [], FileCache(), tmp_path / "classes.csv"
    table.write_text("image,label,class\n")

    def read():
        reads.append(table.read_text())
        return reads[-1]

    assert cache.get(table, "t", read) == cache.get(table, "t", read) and len(reads) == 1
    table.write_text("image,label,class\nf0,1,S\n")
    assert cache.get(table, "t", read).endswith("S\n") and len(reads) == 2
