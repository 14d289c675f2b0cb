"""CAM training objectives. A method turns a batch into a loss (and named parts to log) and
says how to optimize: `optimizer(model)` and `lr_factor(step, total)`."""

from wsss.methods.destruction import Destruction
from wsss.methods.fsr import Fsr
from wsss.methods.ktse import Ktse
from wsss.params import TrainCamParams

Method = Ktse | Destruction | Fsr


def build_method(p: TrainCamParams) -> Method:
    """`baseline` is KTSE with every switch off: classification loss only."""
    if p.method == "destruction":
        return Destruction(p)
    if p.method == "fsr":
        return Fsr(p)
    if p.method == "baseline":
        return Ktse(p.model_copy(update={"sie": False, "ssr": False, "mga": False}))
    return Ktse(p)
