"""Class names found in annotations, renamed and looked up as class ids."""

from __future__ import annotations

from typing import Callable

from ..config import CfgNode
from ..errors import PcnacycleError
from .channels import parse_assignments

#: The label of a nucleus annotated without a phase (``DATASETS.NUCLEI_ONLY``): above every class id, so that
#: torchvision's proposal sampler counts its matches as foreground; the RoI heads' losses read it as "a nucleus
#: in some phase" (:mod:`pcnacycle.modeling.roi_heads`).
UNKNOWN_PHASE = 10_000


def class_lookup(cfg: CfgNode, what: str) -> Callable[[object, str], int]:
    """A function ``(name found in an annotation, where) -> class id 1..K``.

    Names are renamed by ``DATASETS.CLASS_MAP`` first, then looked up in
    ``MODEL.CLASS_NAMES``. With a single class every object is class 1,
    whatever it is called (a phase-annotated set trains a nucleus model).
    ``what`` says where names come from, for the error messages.
    """
    names = list(cfg.MODEL.CLASS_NAMES)
    renames = parse_assignments(cfg.DATASETS.CLASS_MAP, "DATASETS.CLASS_MAP")

    def lookup(value, where: str) -> int:
        if len(names) == 1:
            return 1
        if value is None or value == "":
            raise PcnacycleError(f"{where}: no class ({what}); expected one of MODEL.CLASS_NAMES {names}")
        name = renames.get(str(value), str(value))
        if name not in names:
            raise PcnacycleError(f"{where}: class {value!r} is not in MODEL.CLASS_NAMES {names} "
                                 f"(nor renamed to one by DATASETS.CLASS_MAP {cfg.DATASETS.CLASS_MAP})")
        return names.index(name) + 1

    return lookup
