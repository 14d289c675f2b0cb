"""The baseline: a CNN classifier trained with the multi-label classification loss only, on
KTSE's batch-size schedule, so it is the control any method is measured against (KTSE's
Table 6 base)."""

from typing import Literal

import torch.nn.functional as F
from pydantic import Field

from wsss.methods.base import Loss, parts_to_floats
from wsss.methods.cnn import CnnCamMethod, CnnCamParams
from wsss.models.cam import CamNet
from wsss.params import BatchSize


class BaselineParams(CnnCamParams):
    method: Literal["baseline"] = "baseline"
    # the official recipe's first T epochs run at their own batch size (docs/method.md §2)
    warmup_epochs: int = Field(default=6, ge=0, le=10_000)
    warmup_batch_size: BatchSize = 8


class Baseline(CnnCamMethod):
    params = BaselineParams
    p: BaselineParams

    def batch_sizes(self) -> list[int]:
        """Warm-up epochs at warmup_batch_size (docs/method.md §2)."""
        p = self.p
        warm, rest = p.warmup_batch_size, p.batch_size
        return [warm if e < p.warmup_epochs else rest for e in range(p.epochs)]

    def loss(self, model: CamNet, batch: dict, epoch: int) -> Loss:
        l_cls = F.multilabel_soft_margin_loss(model(batch["image"]).logits.float(), batch["labels"])
        return l_cls, parts_to_floats({"cls": l_cls, "total": l_cls})
