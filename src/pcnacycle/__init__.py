"""pcnacycle: nuclei, PCNA cell-cycle phases, tracks and phase durations from time-lapse movies.

The Python API mirrors the ``pcnacycle`` command line::

    from pcnacycle import load_config, train
    cfg = load_config("stage1_dsb2018_cpu", ["DATASETS.ROOT", "/data/stage1_train"])
    train(cfg, "runs/stage1")
"""

from .config import load_config
from .errors import PcnacycleError
from .train import train

__version__ = "0.1.0"

__all__ = ["PcnacycleError", "__version__", "load_config", "train"]
