"""The CAM methods by name: a method is one module of this package and one entry here, with its
params model under the same name in wsss.config.train_cam.METHOD_PARAMS."""

from wsss.config.train_cam import TrainCamParams
from wsss.methods.base import CamMethod
from wsss.methods.baseline import Baseline
from wsss.methods.destruction import Destruction
from wsss.methods.fsr import Fsr
from wsss.methods.ktse import Ktse

METHODS: dict[str, type[CamMethod]] = {
    "baseline": Baseline,
    "ktse": Ktse,
    "destruction": Destruction,
    "fsr": Fsr,
}


def build_method(p: TrainCamParams) -> CamMethod:
    return METHODS[p.method](p)
