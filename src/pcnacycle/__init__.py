"""pcnacycle: nuclei, PCNA cell-cycle phases, tracks and phase durations from time-lapse movies.

The Python API mirrors the ``pcnacycle`` command line::

    from pcnacycle import load_config, train
    cfg = load_config("stage1_dsb2018_cpu", ["DATASETS.ROOT", "/data/stage1_train"])
    train(cfg, "runs/stage1")

Names are imported on first use, so ``import pcnacycle`` (and ``pcnacycle --help``)
does not load torch.
"""

import sys
import types
from importlib import import_module

from .errors import PcnacycleError

__version__ = "0.1.0"

#: Public name → module that defines it, imported when first asked for.
_LAZY = {"load_config": ".config", "train": ".train", "RunSettings": ".settings"}

__all__ = ["PcnacycleError", "RunSettings", "__version__", "load_config", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Importing the submodule ``pcnacycle.train`` binds it to the package's ``train``: give the function."""

    def __getattribute__(self, name: str):
        value = super().__getattribute__(name)
        if name in _LAZY and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value


sys.modules[__name__].__class__ = _Package
