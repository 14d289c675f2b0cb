"""The CAM methods by name: a method is one module of this package and one entry here, with its
params model in wsss.config.train_cam.METHOD_PARAMS; the name is its params' `method`."""

from wsss.config.train_cam import TrainCamParams
from wsss.methods.base import CamMethod
from wsss.methods.baseline import Baseline
from wsss.methods.destruction import Destruction
from wsss.methods.fsr import Fsr
from wsss.methods.ktse import Ktse

METHODS: dict[str, type[CamMethod]] = {
    method.params.model_fields["method"].default: method
    for method in (Baseline, Ktse, Destruction, Fsr)
}


def build_method(p: TrainCamParams) -> CamMethod:
    return METHODS[p.method](p)
