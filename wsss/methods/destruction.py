"""Destruction learning (Li et al., Neurocomputing 2023; docs/method.md §9), from its abstract.

A plain classifier finds the few most discriminative parts and stops. Two modules, both used in
training only and both pluggable on any backbone, make it find evidence everywhere:
- Low-Level Destruction (LDM): the image cut into a grid of patches and shuffled (a jigsaw) is
  classified with the same image-level labels, so global shape no longer helps and small
  scattered parts must be recognized.
- Mid-Level Distribution-and-Collection (MDC): the backbone's mid-level feature map is cut into
  a grid of local patches that the later layers process independently (one batch of patches,
  shared weights); the patches' outputs are put back in place for the CAM head, so evidence of
  every class must be found from local context alone.
The loss is L_cls(image) + ldm_weight·L_cls(shuffled) + mdc_weight·L_cls(distributed). CAMs at
inference come from the plain forward. Every choice the abstract leaves open is a named param
(DestructionParams; the backbones' `mid_level`).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from wsss.config.train_cam import DestructionParams
from wsss.errors import WsssError
from wsss.losses.classification import cls_loss
from wsss.methods.base import Loss, parts_to_floats
from wsss.methods.cnn import CnnCamMethod
from wsss.models.cam import CamNet


def _to_patches(x: torch.Tensor, grid: int, key: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, grid², C, H/grid, W/grid), patches in row-major order."""
    b, c, h, w = x.shape
    if h % grid or w % grid:
        raise WsssError(f"params: train_cam.{key}: a {h}x{w} map does not split into {grid}x{grid}")
    x = x.reshape(b, c, grid, h // grid, grid, w // grid)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, h // grid, w // grid)


def _from_patches(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """The inverse of _to_patches."""
    b, _, c, ph, pw = patches.shape
    x = patches.reshape(b, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, grid * ph, grid * pw)


def shuffle_patches(image: torch.Tensor, grid: int) -> torch.Tensor:
    """LDM: each image's grid x grid patches in a random order (one permutation per image)."""
    patches = _to_patches(image, grid, "ldm_grid")
    order = torch.rand(patches.shape[:2], device=image.device).argsort(1)
    picked = patches[torch.arange(len(patches), device=image.device)[:, None], order]
    return _from_patches(picked, grid)


def distribute(feat: torch.Tensor, grid: int) -> torch.Tensor:
    """MDC's distribution: (B, C, h, w) -> (B·grid², C, h/grid, w/grid), one patch per item."""
    patches = _to_patches(feat, grid, "mdc_grid")
    return patches.reshape(-1, *patches.shape[2:])


def collect(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """MDC's collection: the inverse of distribute."""
    return _from_patches(patches.reshape(-1, grid * grid, *patches.shape[1:]), grid)


@contextmanager
def distributed_mid_level(backbone: nn.Module, grid: int) -> Iterator[None]:
    """Within the block, BACKBONE's layers after its `mid_level` module process its output's
    patches independently, and the backbone's output is collected back into whole maps."""
    layer = backbone.get_submodule(backbone.mid_level)
    handles = [
        layer.register_forward_hook(lambda _m, _i, out: distribute(out, grid)),
        backbone.register_forward_hook(lambda _m, _i, out: collect(out, grid)),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class Destruction(CnnCamMethod):
    params = DestructionParams
    p: DestructionParams

    def loss(self, model: CamNet, batch: dict, epoch: int) -> Loss:
        p = self.p
        image, y = batch["image"], batch["labels"]
        l_cls = cls_loss(model(image).logits, y)
        parts = {"cls": l_cls}
        total = l_cls
        if p.ldm_weight > 0:
            shuffled = model(shuffle_patches(image, p.ldm_grid)).logits
            parts["ldm"] = cls_loss(shuffled, y)
            total = total + p.ldm_weight * parts["ldm"]
        if p.mdc_weight > 0:
            with distributed_mid_level(model.backbone, p.mdc_grid):
                local = model(image).logits
            parts["mdc"] = cls_loss(local, y)
            total = total + p.mdc_weight * parts["mdc"]
        parts["total"] = total
        return total, parts_to_floats(parts)
