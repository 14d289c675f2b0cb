"""CAM training objectives. A method turns a batch into a loss (and named parts to log)."""

from wsss.methods.destruction import Destruction
from wsss.methods.ktse import Ktse
from wsss.params import TrainCamParams


def build_method(p: TrainCamParams) -> Ktse | Destruction:
    """`baseline` is KTSE with every switch off: classification loss only."""
    if p.method == "destruction":
        return Destruction(p)
    if p.method == "baseline":
        return Ktse(p.model_copy(update={"sie": False, "ssr": False, "mga": False}))
    return Ktse(p)
