"""pcnacycle: nuclei, PCNA cell-cycle phases, tracks and phase durations from time-lapse movies.

The Python API mirrors the ``pcnacycle`` command line::

    from pcnacycle import Predictor, load_config, train
    cfg = load_config("stage1_dsb2018_cpu", ["DATASETS.ROOT", "/data/stage1_train"])
    train(cfg, "runs/stage1")
    nuclei = Predictor("runs/stage1").predict({"gray": image})  # label_image, boxes, scores, probs

``run``, ``evaluate`` and ``simulate`` are the jobs of the commands of those names.

Names are imported on first use, so ``import pcnacycle`` (and ``pcnacycle --help``)
does not load torch.
"""

from importlib import import_module

from .errors import PcnacycleError

__version__ = "0.1.0"

#: Public name → module that defines it, imported when first asked for. No module of the
#: package bears one of these names, so ``pcnacycle.train`` is always the function.
_LAZY = {
    "Predictor": ".engine.predictor",
    "load_config": ".config",
    "train": ".engine.trainer",
    "run": ".pipeline",
    "evaluate": ".evaluation.evaluator",
    "simulate": ".simulation.simulator",
    "RunSettings": ".settings",
}

__all__ = ["PcnacycleError", "Predictor", "RunSettings", "__version__", "evaluate", "load_config", "run", "simulate",
           "train"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
