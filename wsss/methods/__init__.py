"""The CAM methods train_cam can run, by name: a method is one module (its params model,
network, optimizer, schedule and loss; wsss.methods.base) and one entry here."""

from wsss.methods.base import CamMethod
from wsss.methods.baseline import Baseline
from wsss.methods.destruction import Destruction
from wsss.methods.fsr import Fsr
from wsss.methods.ktse import Ktse
from wsss.params import TrainCamParams

METHODS: dict[str, type[CamMethod]] = {
    "baseline": Baseline,
    "ktse": Ktse,
    "destruction": Destruction,
    "fsr": Fsr,
}


def build_method(p: TrainCamParams) -> CamMethod:
    return METHODS[p.method](p)


def switch_method(p: TrainCamParams, name: str) -> TrainCamParams:
    """P's section for method NAME: the fields of the two params models' closest common base
    are kept (a field of the same name may mean another thing: FSR's AdamW `lr`), NAME's own
    take their defaults. How benchmarks compare methods on one recipe."""
    target = METHODS[name].params
    common = next(c for c in type(p).__mro__ if c in target.__mro__)
    shared = {k: v for k, v in p.model_dump().items() if k in common.model_fields}
    return target.model_validate(shared | {"method": name})
