"""The baseline: a CNN classifier trained with the multi-label classification loss only, on
KTSE's batch-size schedule, so it is the control any method is measured against (KTSE's
Table 6 base)."""

from wsss.config.train_cam import BaselineParams
from wsss.losses.classification import cls_loss
from wsss.methods.base import Loss, parts_to_floats
from wsss.methods.cnn import CnnCamMethod
from wsss.models.cam import CamNet


class Baseline(CnnCamMethod):
    params = BaselineParams
    p: BaselineParams

    def batch_sizes(self) -> list[int]:
        """Warm-up epochs at warmup_batch_size (docs/method.md §2)."""
        p = self.p
        warm, rest = p.warmup_batch_size, p.batch_size
        return [warm if e < p.warmup_epochs else rest for e in range(p.epochs)]

    def loss(self, model: CamNet, batch: dict, epoch: int) -> Loss:
        l_cls = cls_loss(model(batch["image"]).logits, batch["labels"])
        return l_cls, parts_to_floats({"cls": l_cls, "total": l_cls})
