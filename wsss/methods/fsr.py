"""FSR, feature self-reinforcement (single stage; docs/method.md §8), as a train_cam method.

Each step: a second view of every image (random resized crop + flip); on it, blocks of patch
tokens are masked, chosen at random early on and afterwards preferring blocks where the
auxiliary CAM is uncertain (between the two `uncertain` bounds). An EMA teacher sees both
views unmasked; the student learns
- L_cls: multi-label soft margin on the top and the auxiliary classifiers (view 1);
- patch self-distillation: its masked tokens of view 2 predict the teacher's tokens there;
- complementary self-enhancement: its CLS of masked view 2 predicts the teacher's CLS of view 1;
  both as DINO cross-entropies (centred, sharpened teacher), weights `w_patch`/`w_class`;
- after `seg_start`, the LargeFOV decoder learns PAR-refined CAM labels (0.5 (CE_bg + CE_fg)).
Not carried from FSR's code: its affinity loss and DenseEnergy loss (regularizers of the decoder
beside the parts the method is named for) and multi-scale auxiliary CAMs for the masking.
Schedules (teacher momentum, teacher temperature, masking, seg start) advance per epoch, as
fractions of training, so a resumed run follows them exactly.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wsss.config.train_cam import FsrParams
from wsss.losses.classification import cls_loss
from wsss.losses.dino import dino_loss
from wsss.losses.ktse import bg_target, fg_target, pseudo_labels, safe_ce
from wsss.methods.base import CamMethod, Loss, parts_to_floats
from wsss.methods.ktse import denormalize
from wsss.models.fsr import FsrNet
from wsss.models.weights import load_weights
from wsss.refine.par import PAR
from wsss.tensors import up


def second_view(image: torch.Tensor, min_scale: float) -> torch.Tensor:
    """Per image, a random crop of area fraction in [MIN_SCALE, 1] (square aspect), resized back
    to the input size, flipped with probability 0.5: one affine resampling of the batch."""
    b = len(image)
    side = torch.empty(b, device=image.device).uniform_(min_scale, 1.0).sqrt()
    shift = (torch.rand(b, 2, device=image.device) * 2 - 1) * (1 - side[:, None])
    flip = torch.where(torch.rand(b, device=image.device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=image.device)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def block_mask(
    aux_cam: torch.Tensor | None,
    y: torch.Tensor,
    grid: tuple[int, int],
    block: int,
    ratio: float,
    uncertain: tuple[float, float],
) -> torch.Tensor:
    """(B, h, w) bool token mask of round(RATIO·blocks) BLOCK x BLOCK blocks per image: random
    when AUX_CAM is None, else blocks whose auxiliary CAM (per class normalized to its max, GT
    classes, max over them) lies inside UNCERTAIN first, then random ones."""
    h, w = grid
    gh, gw = -(-h // block), -(-w // block)
    noise = torch.rand(len(y), gh * gw, device=y.device)
    if aux_cam is not None:
        cam = F.relu(aux_cam.float())
        cam = cam / cam.amax((2, 3), keepdim=True).clamp(min=1e-5) * y[:, :, None, None]
        strength = F.interpolate(cam.amax(1, keepdim=True), (gh, gw), mode="nearest")
        low, high = uncertain
        noise = noise + ((strength > low) & (strength < high)).flatten(1).float()
    count = round(ratio * gh * gw)
    chosen = torch.zeros_like(noise, dtype=torch.bool)
    chosen.scatter_(1, noise.topk(count, 1).indices, True)
    blocks = chosen.reshape(-1, gh, gw)
    return blocks.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]


@torch.no_grad()
def ema_update(teacher: nn.ModuleDict, student: dict[str, nn.Module], momentum: float) -> None:
    for name, module in student.items():
        for t, s in zip(teacher[name].parameters(), module.parameters(), strict=True):
            t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)


class Fsr(CamMethod):
    params = FsrParams
    p: FsrParams

    def __init__(self, p: FsrParams):
        super().__init__(p)
        self.par = PAR(p.par_dilations, p.par_iterations)

    @property
    def network(self) -> str:
        return self.p.encoder

    def network_meta(self) -> dict:
        return {"encoder": self.p.encoder, "head": list(self.p.head)}

    @staticmethod
    def build_network(meta: dict, weights: Path | None) -> FsrNet:
        model = FsrNet(meta["encoder"], meta["num_classes"], tuple(meta["head"]))
        if weights is not None:
            model.encoder.load_imagenet(load_weights(weights, mxnet_names=False))
            model.sync_teacher()
        return model

    def optimizer(self, model: FsrNet) -> torch.optim.Optimizer:
        """AdamW: the encoder at lr, the new heads at 10x; no weight decay on biases,
        norms, tokens and position embeddings."""
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            lr = self.p.lr * (1 if name.startswith("encoder.") else 10)
            no_decay = param.ndim <= 1 or name.endswith(("token", "pos_embedding"))
            groups.setdefault((lr, 0.0 if no_decay else self.p.weight_decay), []).append(param)
        return torch.optim.AdamW(
            [{"params": ps, "base_lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
            lr=self.p.lr,
        )

    def lr_factor(self, step: int, total: int) -> float:
        """Linear warm-up from 0.1 over `warmup` of the steps, then cosine decay to 0."""
        warm = max(1, round(self.p.warmup * total))
        if step < warm:
            return 0.1 + 0.9 * step / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    @torch.no_grad()
    def _center(self, center: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The centre for this step's loss; CENTER (a model buffer) moves towards TEACHER's mean."""
        before = center.clone()
        if len(teacher):
            m = self.p.center_momentum
            center.mul_(m).add_(teacher.mean(0, keepdim=True), alpha=1 - m)
        return before

    def loss(self, model: FsrNet, batch: dict, epoch: int) -> Loss:
        p = self.p
        progress = epoch / p.epochs
        # the previous step's update reaches the teacher first (cosine momentum schedule to 1)
        ema_update(
            model.teacher,
            model.student(),
            1 - (1 - p.ema) * (1 + math.cos(math.pi * progress)) / 2,
        )
        image, y = batch["image"], batch["labels"]
        view2 = second_view(image, p.min_scale)
        guided = progress >= p.random_mask
        with torch.no_grad():
            aux_cam = model.run(view2).aux_cam if guided else None
        grid = (image.shape[-2] // model.stride, image.shape[-1] // model.stride)
        mask = block_mask(aux_cam, y, grid, p.mask_block, p.mask_ratio, p.uncertain)

        first, masked = model.run(image), model.run(view2, mask)
        l_top = cls_loss(first.logits, y)
        l_aux = cls_loss(first.aux_logits, y)
        with torch.no_grad():
            t1, t2 = model.teacher["encoder"](image), model.teacher["encoder"](view2)
            t_class = model.teacher["class_head"](t1.cls).float()
            t_patch = model.teacher["patch_head"](t2.final[mask.flatten(1)]).float()
        s_class = model.class_head(masked.tokens.cls).float()
        s_patch = model.patch_head(masked.tokens.final[mask.flatten(1)]).float()
        t_low, t_high = p.teacher_temp
        t_temp = t_low + (t_high - t_low) * min(1.0, progress / p.temp_warmup)
        s_temp = p.student_temp
        parts = {
            "cls": l_top,
            "aux": l_aux,
            "class": dino_loss(
                t_class, s_class, self._center(model.class_center, t_class), t_temp, s_temp
            ),
            "patch": dino_loss(
                t_patch, s_patch, self._center(model.patch_center, t_patch), t_temp, s_temp
            ),
        }
        total = l_top + l_aux + p.w_class * parts["class"] + p.w_patch * parts["patch"]
        if progress >= p.seg_start:
            self.par.to(image.device)
            fg, bg = p.seg_thresholds
            yhat = pseudo_labels(first.cam.float(), y, denormalize(image), self.par, fg, bg)
            seg = up(first.seg.float(), image.shape[-2:])
            parts["seg"] = 0.5 * (safe_ce(seg, bg_target(yhat)) + safe_ce(seg, fg_target(yhat)))
            total = total + p.w_seg * parts["seg"]
        parts["total"] = total
        return total, parts_to_floats(parts)
