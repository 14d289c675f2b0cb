"""A CAM method written outside wsss, the way docs/design.md says to add one: this file and an
entry in wsss.methods.registry.METHODS and in wsss.config.train_cam.METHOD_PARAMS
(tests/test_methods.py adds them). It classifies the image and its
mirror image (a plain flip-consistency toy, not a published method)."""

from typing import Literal

from pydantic import Field

from wsss.config.train_cam import CnnCamParams
from wsss.losses.classification import cls_loss
from wsss.methods.base import Loss, parts_to_floats
from wsss.methods.cnn import CnnCamMethod
from wsss.models.cam import CamNet


class MirrorParams(CnnCamParams):
    method: Literal["mirror"] = "mirror"
    mirror_weight: float = Field(default=0.5, ge=0)


class Mirror(CnnCamMethod):
    params = MirrorParams
    p: MirrorParams

    def loss(self, model: CamNet, batch: dict, epoch: int) -> Loss:
        image, y = batch["image"], batch["labels"]
        parts = {
            "cls": cls_loss(model(image).logits, y),
            "mirror": cls_loss(model(image.flip(-1)).logits, y),
        }
        parts["total"] = parts["cls"] + self.p.mirror_weight * parts["mirror"]
        return parts["total"], parts_to_floats(parts)
