"""Configuration: detectron2's key names, validated, with YAML files and overrides.

A config is a tree of upper-case keys (``SOLVER.BASE_LR``) whose defaults are
declared in :data:`DEFAULTS`. Lines from a detectron2 training script or paper
(``cfg.SOLVER.STEPS = (1000,)``) paste into a YAML file as ``SOLVER: {STEPS:
[1000]}`` or onto the command line as ``SOLVER.STEPS "(1000,)"``.

Every key a user gives must exist in :data:`DEFAULTS` and every value must have
the default's type and pass the checks in :func:`validate`; otherwise a
:class:`~pcnacycle.errors.PcnacycleError` names the key. A file may start from
another with ``_BASE_: other.yaml`` (path relative to the file), as in
detectron2.
"""

from __future__ import annotations

import ast
import copy
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import PcnacycleError

#: Every key the package knows, with its default. Values in the report's
#: configs override these; the defaults are detectron2's where it has the key.
DEFAULTS: dict[str, Any] = {
    "SEED": 0,
    "OUTPUT_DIR": "",
    "MODEL": {
        # "auto" picks CUDA when a GPU is visible, else the CPU.
        "DEVICE": "auto",
        # A local checkpoint (ours or a torchvision state dict) to start from.
        "WEIGHTS": "",
        "CLASS_NAMES": ["nucleus"],
        # Input normalisation on detectron2's 0-255 scale, one value per INPUT.CHANNELS entry: the network sees
        # (255 * x - MEAN) / STD for x in [0, 1]. Empty: 127.5 each (x centred on 0, range [-1, 1]).
        # `convert-weights` sets these to the values a detectron2 model was trained with.
        "PIXEL_MEAN": [],
        "PIXEL_STD": [],
        # STRIDE_IN_1X1: the stride of each stage's first block sits in its 1x1 convolution, as in
        # detectron2's (MSRA) ResNets, instead of the 3x3 one as in torchvision's.
        "RESNETS": {"DEPTH": 50, "NORM": "GN", "STRIDE_IN_1X1": False},
        # detectron2's key: 0 trains the whole ResNet; 1 freezes its stem; N > 1 the stem and res2..resN.
        # detectron2 defaults to 2 because its backbones start from ImageNet; ours may start from nothing,
        # where a frozen stem would stay random. For fine-tuning from a model of real nuclei (stage 3).
        "BACKBONE": {"FREEZE_AT": 0},
        "FPN": {"OUT_CHANNELS": 256, "NORM": "GN"},
        "ANCHOR_GENERATOR": {
            "SIZES": [[32], [64], [128], [256], [512]],
            "ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
        },
        "RPN": {
            "PRE_NMS_TOPK_TRAIN": 2000,
            "PRE_NMS_TOPK_TEST": 1000,
            "POST_NMS_TOPK_TRAIN": 1000,
            "POST_NMS_TOPK_TEST": 1000,
            "NMS_THRESH": 0.7,
            "BATCH_SIZE_PER_IMAGE": 256,
            "POSITIVE_FRACTION": 0.5,
            # torchvision: cell anchors rounded to whole pixels, strides from the padded image size, proposals
            # ranked on sigmoid probabilities (which tie at 1.0); detectron2: exact cell anchors, FPN strides
            # 4, 8, 16, 32, 64, proposals ranked on logits (set by convert-weights).
            "STYLE": "torchvision",
        },
        "ROI_HEADS": {
            "NUM_CLASSES": 1,
            "BATCH_SIZE_PER_IMAGE": 512,
            "POSITIVE_FRACTION": 0.25,
            "SCORE_THRESH_TEST": 0.05,
            "NMS_THRESH_TEST": 0.5,
            # "NAME=CLASS": extra predictor outputs, after CLASS_NAMES, whose probability counts as CLASS's
            # (pcnaDeep's emerging daughters: ["E=G1/G2"]); set by convert-weights.
            "FOLDED_CLASSES": [],
            # One weight per class of MODEL.CLASS_NAMES (background 1) multiplying each sampled proposal's
            # classification loss, so that a rare phase (M) counts more; [] weighs every class alike.
            "CLASS_LOSS_WEIGHTS": [],
        },
        # POOLER_TYPE ROIAlign: torchvision's RoIAlign (aligned=False); ROIAlignV2: detectron2's half-pixel
        # aligned one. POOLER_SAMPLING_RATIO 0: adaptive, as detectron2.
        "ROI_BOX_HEAD": {"NUM_CONV": 0, "CONV_DIM": 256, "NUM_FC": 2, "FC_DIM": 1024, "NORM": "",
                         "POOLER_TYPE": "ROIAlign", "POOLER_SAMPLING_RATIO": 2},
        "ROI_MASK_HEAD": {"NUM_CONV": 4, "CONV_DIM": 256, "NORM": "", "POOLER_TYPE": "ROIAlign",
                          "POOLER_SAMPLING_RATIO": 2},
    },
    "INPUT": {
        # Image channels fed to the network, by name; what a name means is up
        # to the dataset reader ("gray" for DSB2018; "pcna", "dic", "otsu"...).
        "CHANNELS": ["gray"],
        # Shorter-side sizes; 0 keeps images at their own scale.
        "MIN_SIZE_TRAIN": [800],
        "MIN_SIZE_TRAIN_SAMPLING": "choice",
        "MAX_SIZE_TRAIN": 1333,
        "MIN_SIZE_TEST": 800,
        "MAX_SIZE_TEST": 1333,
        "RANDOM_FLIP": "none",
        "CROP": {"ENABLED": False, "TYPE": "relative_range", "SIZE": [0.9, 0.9]},
        # Each channel is scaled so these percentiles map to 0 and 1, then
        # raised to GAMMA: uint8, uint16 and float input look alike.
        "NORMALIZE": {"PERCENTILES": [1.0, 99.8], "GAMMA": 1.0},
        # The "otsu" channel thresholds at this fraction of Otsu's threshold: 0.7 is the
        # highest that captured every simulated nucleus, M included (benchmarks/otsu_factor.py).
        "OTSU_FACTOR": 0.6,
        # Training augmentation: random quarter turns, and a random per-channel
        # gain and offset of up to this magnitude (not on "otsu").
        "ROTATE_90": False,
        "INTENSITY_JITTER": 0.0,
        # Scale augmentation: each training image (with its masks) resized by a factor drawn
        # log-uniformly from [low, high], so nuclei a little off the training size after `run`'s
        # rescaling (within its 10 % tolerance) are still familiar. [1.0, 1.0]: off.
        "RANDOM_SCALE": [1.0, 1.0],
        # Channel names of a multichannel image file, in stored order (e.g.
        # [pcna, pcna, bf]); empty: one single-channel file per channel.
        "STORED_CHANNELS": [],
        # Median equivalent diameter (pixels) of the training nuclei as the network saw them (after the
        # MIN_SIZE_TRAIN resize, if any), measured by `train` when 0. `run`, `evaluate` and `annotate`
        # rescale inputs whose nuclei differ in size so that the network sees them at this size.
        "NUCLEUS_DIAMETER": 0.0,
    },
    "DATASETS": {
        "FORMAT": "dsb2018",
        "ROOT": "",
        # Validation subset: a count of images, or a fraction when below 1.
        "VAL_SIZE": 100.0,
        "SPLIT_SEED": 0,
        # "group": keep each movie's frames in one subset when the reader
        # knows the movies (deepcell); "image": shuffle frames individually.
        "SPLIT_BY": "group",
        # via2/coco: the annotation JSON, relative to ROOT; "": the one *.json in ROOT.
        "ANNOTATIONS": "",
        # via2: the region attribute holding the class name.
        "CLASS_ATTRIBUTE": "phase",
        # via2/coco: "NAME=CLASS" renamings applied before matching MODEL.CLASS_NAMES
        # (pcnaDeep's emerging daughters "E" count as G1/G2).
        "CLASS_MAP": ["E=G1/G2"],
        # "CHANNEL=FOLDER" (relative to ROOT) where a channel's files are;
        # by default <ROOT>/<channel>/, or ROOT itself for the annotated channel.
        "CHANNEL_DIRS": [],
        # A second dataset of nuclei annotated without phases (e.g. DSB2018), mixed into training so that a
        # phase model keeps segmenting real nuclei while it learns phases from simulated ones: its nuclei teach
        # "nucleus, not background", boxes and masks, never a phase. ROOT "": none. SPLIT_FILE: a split.json
        # whose "train" images alone are used (e.g. the stage-1 run's, keeping its val images unseen); "": all.
        # FRACTION: the share of training images drawn from it. With INPUT.MIN_SIZE_TRAIN [0] its images are
        # resized so that its nuclei have the phase dataset's median size (INPUT.NUCLEUS_DIAMETER): SIZE_MATCH
        # "image", each image by its own median nucleus (measured best: BENCHMARKS.md, "Real nuclei kept"), or
        # "dataset", one factor for all (their spread of sizes kept, as `run` resizes a movie).
        "NUCLEI_ONLY": {"ROOT": "", "FORMAT": "dsb2018", "SPLIT_FILE": "", "FRACTION": 0.25, "SIZE_MATCH": "image"},
    },
    "DATALOADER": {
        "NUM_WORKERS": 2,
        # detectron2's keys: "RepeatFactorTrainingSampler" repeats each training image by its rarest class
        # (LVIS's rule: max over its classes of max(1, sqrt(REPEAT_THRESHOLD / share of images holding the
        # class))), so that rare classes such as M are seen more often.
        "SAMPLER_TRAIN": "TrainingSampler",
        "REPEAT_THRESHOLD": 0.0,
    },
    "SOLVER": {
        "IMS_PER_BATCH": 16,
        "BASE_LR": 0.001,
        "MOMENTUM": 0.9,
        "WEIGHT_DECAY": 0.0001,
        "WEIGHT_DECAY_NORM": 0.0,
        "BIAS_LR_FACTOR": 1.0,
        "GAMMA": 0.1,
        "STEPS": [30000],
        "MAX_ITER": 40000,
        "WARMUP_FACTOR": 0.001,
        "WARMUP_ITERS": 1000,
        "WARMUP_METHOD": "linear",
        "CHECKPOINT_PERIOD": 5000,
        "LOG_PERIOD": 20,
        "AMP": {"ENABLED": True},
        "CLIP_GRADIENTS": {"ENABLED": False, "CLIP_TYPE": "norm", "CLIP_VALUE": 1.0, "NORM_TYPE": 2.0},
    },
    "TEST": {
        # Training scores the validation images every EVAL_PERIOD iterations and at the end;
        # 0: only at the end; -1: never (a quick check of a config waits for nothing).
        "EVAL_PERIOD": 0,
        "DETECTIONS_PER_IMAGE": 100,
        # Frames larger than this (input pixels, before any resizing) are
        # predicted in overlapping tiles; 0 never tiles. The overlap must
        # exceed the largest nucleus diameter.
        "TILE_SIZE": 2048,
        "TILE_OVERLAP": 128,
    },
}

# Keys whose value must be one of a few words or numbers.
_CHOICES: dict[str, tuple] = {
    "MODEL.RESNETS.DEPTH": (18, 34, 50, 101, 152),
    "MODEL.RESNETS.NORM": ("GN", "FrozenBN", "BN"),
    "MODEL.BACKBONE.FREEZE_AT": (0, 1, 2, 3, 4, 5),
    "MODEL.FPN.NORM": ("", "GN"),
    "MODEL.ROI_BOX_HEAD.NORM": ("", "GN"),
    "MODEL.ROI_MASK_HEAD.NORM": ("", "GN"),
    "MODEL.RPN.STYLE": ("torchvision", "detectron2"),
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": ("ROIAlign", "ROIAlignV2"),
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": ("ROIAlign", "ROIAlignV2"),
    "INPUT.MIN_SIZE_TRAIN_SAMPLING": ("choice", "range"),
    "INPUT.RANDOM_FLIP": ("none", "horizontal", "vertical", "both"),
    "INPUT.CROP.TYPE": ("relative", "relative_range", "absolute"),
    "DATASETS.FORMAT": ("dsb2018", "labelmask", "deepcell", "via2", "coco", "arrays"),
    "DATASETS.NUCLEI_ONLY.FORMAT": ("dsb2018", "labelmask", "deepcell", "via2", "coco"),
    "DATASETS.NUCLEI_ONLY.SIZE_MATCH": ("dataset", "image"),
    "DATALOADER.SAMPLER_TRAIN": ("TrainingSampler", "RepeatFactorTrainingSampler"),
    "DATASETS.SPLIT_BY": ("group", "image"),
    "SOLVER.WARMUP_METHOD": ("linear", "constant"),
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": ("norm", "value"),
}

# Keys that hold a path: relative paths in a YAML file are resolved against
# the file's folder, so a config works from any working directory.
_PATH_KEYS = ("MODEL.WEIGHTS", "DATASETS.ROOT", "DATASETS.NUCLEI_ONLY.ROOT", "DATASETS.NUCLEI_ONLY.SPLIT_FILE")


class CfgNode(dict):
    """A dict whose keys also read as attributes: ``cfg.SOLVER.BASE_LR``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        """A plain nested dict (for YAML, JSON and checkpoints)."""
        return {k: v.to_dict() if isinstance(v, CfgNode) else copy.deepcopy(v) for k, v in self.items()}


def _wrap(tree: Mapping) -> CfgNode:
    return CfgNode({k: _wrap(v) if isinstance(v, Mapping) else v for k, v in tree.items()})


def get_default_config() -> CfgNode:
    """A fresh copy of :data:`DEFAULTS`."""
    return _wrap(copy.deepcopy(DEFAULTS))


def bundled_config_path(name: str) -> Path:
    """Path of a config shipped with the package, e.g. ``stage1_dsb2018``."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = Path(str(resources.files("pcnacycle") / "configs" / f"{stem}.yaml"))
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise PcnacycleError(f"no config file {name!r}; shipped configs are: {', '.join(shipped)}")
    return path


def resolve_config_path(name: str | os.PathLike) -> Path:
    """A config given as a path, or as the name of a shipped config."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix in ("", ".yaml") and path.parent == Path("."):
        return bundled_config_path(path.name)
    raise PcnacycleError(f"{path}: no such config file")


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> CfgNode:
    """Defaults, then the YAML file (and its ``_BASE_`` chain), then overrides.

    Parameters
    ----------
    path
        A YAML file, the name of a shipped config (``stage1_dsb2018``), or
        None for the defaults alone.
    overrides
        Flat ``KEY VALUE`` pairs as typed on the command line, e.g.
        ``["SOLVER.MAX_ITER", "100", "SOLVER.STEPS", "[50]"]``; each VALUE is
        parsed as YAML (or as a Python tuple such as ``(1000,)``).

    Raises
    ------
    PcnacycleError
        For an unreadable file, an unknown key or an invalid value, naming it.
    """
    cfg = get_default_config()
    if path is not None:
        _merge_file(cfg, resolve_config_path(path), seen=())
    merge_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def config_from_dict(tree: Mapping, source: str = "") -> CfgNode:
    """A validated config from a nested dict, e.g. the ``config`` saved in a checkpoint."""
    cfg = get_default_config()
    for key, value in _flatten(tree):
        set_value(cfg, key, value, source=source)
    validate(cfg)
    return cfg


def _merge_file(cfg: CfgNode, path: Path, seen: tuple[Path, ...]) -> None:
    path = path.resolve()
    if path in seen:
        raise PcnacycleError(f"{path}: _BASE_ chain loops back to itself")
    tree = read_yaml_mapping(path) or {}
    base = tree.pop("_BASE_", None)
    if base:
        _merge_file(cfg, (path.parent / base), seen + (path,))
    for key, value in _flatten(tree):
        if key in _PATH_KEYS and isinstance(value, str) and value and not os.path.isabs(value):
            value = str((path.parent / value).resolve())
        set_value(cfg, key, value, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    Plain PyYAML keeps the last of two equal keys, so a second ``SOLVER:``
    block would silently drop the first.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise PcnacycleError(f"{self.name}: key {key!r} is given twice (lines {seen[key]} and "
                                     f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: Path) -> Mapping | None:
    """The mapping a YAML config file holds (None when the file is empty).

    Raises
    ------
    PcnacycleError
        In one line naming ``path``: unreadable, not text, not YAML, a key
        given twice, or not a mapping.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PcnacycleError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise PcnacycleError(f"{path}: not a text file, so not a YAML config") from None
    if "\0" in text:
        raise PcnacycleError(f"{path}: not a text file, so not a YAML config")
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        tree = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PcnacycleError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    finally:
        loader.dispose()
    if tree is not None and not isinstance(tree, Mapping):
        raise PcnacycleError(f"{path}: a config file must hold a mapping of keys, not {type(tree).__name__}")
    return tree


def _flatten(tree: Mapping, prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, full + ".")
        else:
            yield full, value


def merge_overrides(cfg: CfgNode, overrides: Iterable[str]) -> None:
    """Apply command-line ``KEY VALUE`` pairs to ``cfg`` in place."""
    items = list(overrides)
    if len(items) % 2:
        raise PcnacycleError(
            f"overrides come in KEY VALUE pairs; {items[-1]!r} has no value"
        )
    for key, text in zip(items[::2], items[1::2]):
        value = parse_value(text)
        if key in _PATH_KEYS and isinstance(value, str) and value:
            # Saved configs must not depend on where the command was typed.
            value = os.path.abspath(value)
        set_value(cfg, key, value, source="command line")


def parse_value(text: str) -> Any:
    """Parse a command-line value: YAML, or a Python tuple like ``(1000,)``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, str) and value.startswith("(") and value.endswith(")"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    return value


def set_value(cfg: CfgNode, key: str, value: Any, source: str = "") -> None:
    """Set dotted ``key`` to ``value`` after checking the key exists and the type fits."""
    where = f" (from {source})" if source else ""
    node, default = cfg, DEFAULTS
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(default, Mapping) or part not in default:
            known = ", ".join(sorted(default)) if isinstance(default, Mapping) else ""
            parent = ".".join(parts[:depth]) or "the top level"
            raise PcnacycleError(f"unknown config key {key!r}{where}; keys under {parent}: {known}")
        default = default[part]
        if depth < len(parts) - 1:
            node = node[part]
    if isinstance(default, Mapping):
        raise PcnacycleError(f"config key {key!r}{where} is a group; set one of its keys: {', '.join(default)}")
    node[parts[-1]] = _coerce(key, value, default, where)


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    """``value`` converted to the type of ``default``, or an error naming ``key``."""
    if isinstance(value, tuple):
        value = list(value)

    def fail(expected: str):
        raise PcnacycleError(f"config key {key!r}{where}: expected {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if isinstance(default, (int, float)) and isinstance(value, str):
        # PyYAML reads 1e-3 (no dot) as a string, though it is a plain number to anyone typing it
        try:
            value = float(value.strip())
        except ValueError:
            fail("an integer" if isinstance(default, int) else "a number")
    if isinstance(default, (int, float)) and isinstance(value, float) and not math.isfinite(value):
        fail("a finite number")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            fail("an integer")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        return float(value)
    if isinstance(default, str):
        if value is None:
            return ""
        if not isinstance(value, str):
            fail("a string")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            fail("a list")
        if default:
            return [_coerce(f"{key}[{i}]", v, default[0], where) for i, v in enumerate(value)]
        return value
    raise AssertionError(f"no coercion for default of {key}")  # DEFAULTS holds only the types above


def validate(cfg: CfgNode) -> None:
    """Check values and the relations between keys; raise naming the key."""
    for key, allowed in _CHOICES.items():
        value = get_value(cfg, key)
        if value not in allowed:
            raise PcnacycleError(f"config key {key!r}: {value!r} is not one of {list(allowed)}")

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise PcnacycleError(f"config key {key!r}: expected {expected}, got {get_value(cfg, key)!r}")

    device = cfg.MODEL.DEVICE
    need("MODEL.DEVICE", bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device)), "auto, cpu, cuda or cuda:N")
    heads = cfg.MODEL.ROI_HEADS
    need("MODEL.ROI_HEADS.NUM_CLASSES", heads.NUM_CLASSES >= 1, "at least 1")
    need(
        "MODEL.CLASS_NAMES",
        len(cfg.MODEL.CLASS_NAMES) == heads.NUM_CLASSES and len(set(cfg.MODEL.CLASS_NAMES)) == heads.NUM_CLASSES,
        f"{heads.NUM_CLASSES} distinct names (MODEL.ROI_HEADS.NUM_CLASSES)",
    )
    for key in ("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "SOLVER.IMS_PER_BATCH",
                "SOLVER.MAX_ITER", "SOLVER.CHECKPOINT_PERIOD", "SOLVER.LOG_PERIOD", "TEST.DETECTIONS_PER_IMAGE"):
        need(key, get_value(cfg, key) >= 1, "a positive integer")
    for key in ("MODEL.ROI_HEADS.POSITIVE_FRACTION", "MODEL.RPN.POSITIVE_FRACTION", "MODEL.RPN.NMS_THRESH",
                "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.ROI_HEADS.NMS_THRESH_TEST", "SOLVER.WARMUP_FACTOR"):
        need(key, 0.0 <= get_value(cfg, key) <= 1.0, "a number from 0 to 1")
    sizes = cfg.MODEL.ANCHOR_GENERATOR.SIZES
    need("MODEL.ANCHOR_GENERATOR.SIZES", len(sizes) == 5 and all(s and min(s) > 0 for s in sizes),
         "5 lists of positive sizes, one per FPN level (P2-P6)")
    ratios = cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS
    need("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", len(ratios) in (1, 5) and all(r and min(r) > 0 for r in ratios),
         "1 or 5 lists of positive ratios")
    need("INPUT.CHANNELS", len(cfg.INPUT.CHANNELS) >= 1, "at least one channel name")
    for key in ("MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD"):
        values = get_value(cfg, key)
        need(key, len(values) in (0, len(cfg.INPUT.CHANNELS)) and all(isinstance(v, (int, float)) for v in values),
             f"empty or {len(cfg.INPUT.CHANNELS)} numbers (one per INPUT.CHANNELS entry)")
    need("MODEL.PIXEL_STD", all(v > 0 for v in cfg.MODEL.PIXEL_STD), "positive numbers")
    need("MODEL.BACKBONE.FREEZE_AT", cfg.MODEL.BACKBONE.FREEZE_AT == 0 or cfg.MODEL.RESNETS.NORM != "BN",
         "0 with MODEL.RESNETS.NORM BN (a frozen stage's batch statistics would still move; use GN or FrozenBN)")
    weights = cfg.MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS
    need("MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS",
         len(weights) in (0, len(cfg.MODEL.CLASS_NAMES))
         and all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < float("inf") for w in weights),
         f"empty or {len(cfg.MODEL.CLASS_NAMES)} positive numbers (one per MODEL.CLASS_NAMES entry)")
    folded = cfg.MODEL.ROI_HEADS.FOLDED_CLASSES
    need("MODEL.ROI_HEADS.FOLDED_CLASSES",
         all(entry.count("=") == 1 and entry.split("=")[1] in cfg.MODEL.CLASS_NAMES for entry in folded),
         "a list of NAME=CLASS strings, each CLASS one of MODEL.CLASS_NAMES")
    for key in ("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO"):
        need(key, get_value(cfg, key) >= 0, "an integer >= 0 (0: adaptive)")
    need("INPUT.MIN_SIZE_TRAIN", len(cfg.INPUT.MIN_SIZE_TRAIN) >= 1 and min(cfg.INPUT.MIN_SIZE_TRAIN) >= 0,
         "a list of sizes >= 0")
    if cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING == "range":
        need("INPUT.MIN_SIZE_TRAIN", len(cfg.INPUT.MIN_SIZE_TRAIN) == 2, "[low, high] with sampling 'range'")
    need("INPUT.MIN_SIZE_TEST", cfg.INPUT.MIN_SIZE_TEST >= 0, "a size >= 0")
    crop = cfg.INPUT.CROP
    need("INPUT.CROP.SIZE", len(crop.SIZE) == 2 and min(crop.SIZE) > 0, "[height, width], both positive")
    if crop.TYPE != "absolute":
        need("INPUT.CROP.SIZE", max(crop.SIZE) <= 1.0, "fractions in (0, 1] for a relative crop")
    low, high = (cfg.INPUT.NORMALIZE.PERCENTILES + [None, None])[:2]
    need("INPUT.NORMALIZE.PERCENTILES", len(cfg.INPUT.NORMALIZE.PERCENTILES) == 2 and 0 <= low < high <= 100,
         "[low, high] with 0 <= low < high <= 100")
    need("INPUT.NORMALIZE.GAMMA", cfg.INPUT.NORMALIZE.GAMMA > 0, "a positive number")
    val = cfg.DATASETS.VAL_SIZE
    need("DATASETS.VAL_SIZE", 0 <= val < 1 or val == int(val), "a whole count of images, or a fraction below 1")
    need("INPUT.OTSU_FACTOR", 0 < cfg.INPUT.OTSU_FACTOR <= 1, "a number in (0, 1]")
    need("INPUT.INTENSITY_JITTER", 0 <= cfg.INPUT.INTENSITY_JITTER < 1, "a number in [0, 1)")
    scales = cfg.INPUT.RANDOM_SCALE
    need("INPUT.RANDOM_SCALE", len(scales) == 2 and 0.25 <= scales[0] <= scales[1] <= 4.0,
         "[low, high] factors with 0.25 <= low <= high <= 4")
    need("INPUT.NUCLEUS_DIAMETER", cfg.INPUT.NUCLEUS_DIAMETER >= 0, "a number of pixels ≥ 0 (0: measure it)")
    for key in ("DATASETS.CLASS_MAP", "DATASETS.CHANNEL_DIRS"):
        need(key, all("=" in entry for entry in get_value(cfg, key)), "a list of NAME=VALUE strings")
    need("DATASETS.NUCLEI_ONLY.FRACTION", 0 < cfg.DATASETS.NUCLEI_ONLY.FRACTION < 1, "a fraction in (0, 1)")
    need("DATALOADER.NUM_WORKERS", cfg.DATALOADER.NUM_WORKERS >= 0, "an integer >= 0")
    need("DATALOADER.REPEAT_THRESHOLD", 0 <= cfg.DATALOADER.REPEAT_THRESHOLD <= 1, "a fraction of images, 0 to 1")
    solver = cfg.SOLVER
    need("SOLVER.BASE_LR", solver.BASE_LR > 0, "a positive number")
    need("SOLVER.MOMENTUM", 0 <= solver.MOMENTUM < 1, "a number in [0, 1)")
    for key in ("SOLVER.WEIGHT_DECAY", "SOLVER.WEIGHT_DECAY_NORM", "SOLVER.WARMUP_ITERS", "SOLVER.GAMMA"):
        need(key, get_value(cfg, key) >= 0, "a number >= 0")
    need("SOLVER.STEPS", all(0 < s for s in solver.STEPS) and solver.STEPS == sorted(solver.STEPS),
         "increasing positive iterations")
    late = [step for step in solver.STEPS if step >= solver.MAX_ITER]
    if late:
        raise PcnacycleError(f"config key 'SOLVER.STEPS': step {late[0]} is not before SOLVER.MAX_ITER "
                             f"{solver.MAX_ITER}, so the learning rate would never drop there; lower it or "
                             "raise SOLVER.MAX_ITER")
    need("TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD >= -1, "an integer >= -1 (0: only at the end; -1: never)")
    need("TEST.TILE_OVERLAP", cfg.TEST.TILE_OVERLAP >= 0, "an integer >= 0")
    need("TEST.TILE_SIZE", cfg.TEST.TILE_SIZE == 0 or cfg.TEST.TILE_SIZE > 2 * cfg.TEST.TILE_OVERLAP,
         "0 (no tiling) or more than twice TEST.TILE_OVERLAP")


def get_value(cfg: Mapping, key: str) -> Any:
    """The value at dotted ``key``."""
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def dump_config(cfg: CfgNode) -> str:
    """The config as YAML text that :func:`load_config` reads back unchanged."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
