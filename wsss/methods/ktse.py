"""KTSE (docs/method.md §3): the baseline plus three parts, each a switch; all off = the baseline.

Before `warmup_epochs` only L_cls trains. Afterwards:
- SSR: PAR-refined pseudo-labels Yhat from the anchor's own CAM; L_seg = L_bg + w_fg·L_fg
  (simple images) + w_inter·L_inter (complex images).
- SIE: the first num_pair anchors are stacked on top of their partners (height) and run as one
  image; L_kt keeps the stacked image's CAM from falling below the separate ones, and with SSR
  on, L_seg_two supervises it with the stacked pseudo-labels.
- MGA: the anchor with its confident region (A > erase_threshold) erased; L_local and L_global
  align its features with the anchor's.
"""

import torch
import torch.nn.functional as F

from wsss.config.train_cam import KtseParams
from wsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from wsss.losses.classification import cls_loss
from wsss.losses.ktse import (
    activation_map,
    bg_target,
    fg_target,
    inter_class_loss,
    margin_excess,
    mga_losses,
    pseudo_labels,
    safe_ce,
)
from wsss.methods.base import Loss, parts_to_floats
from wsss.methods.baseline import Baseline
from wsss.models.cam import CamNet
from wsss.refine.par import PAR
from wsss.tensors import up


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Normalized (B, 3, H, W) -> [0, 1] RGB, for PAR's colour affinities."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image * std + mean).clamp(0, 1)


class Ktse(Baseline):
    params = KtseParams
    p: KtseParams

    def __init__(self, p: KtseParams):
        super().__init__(p)
        self.par = PAR(p.par_dilations, p.par_iterations)

    @property
    def needs_pairs(self) -> bool:
        return self.p.sie

    def seg_loss(self, prob, target, y, region) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_bg on all images, L_fg on simple ones (one class), L_inter on complex ones."""
        simple = y.sum(1) == 1
        l_bg = safe_ce(prob, bg_target(target))
        l_fg = safe_ce(prob, fg_target(target, simple))
        l_inter = inter_class_loss(prob, region.squeeze(1) & ~simple[:, None, None])
        total = l_bg + self.p.w_fg * l_fg + self.p.w_inter * l_inter
        return total, {"bg": l_bg, "fg": l_fg, "inter": l_inter}

    def loss(self, model: CamNet, batch: dict, epoch: int) -> Loss:
        p = self.p
        image, y = batch["image"], batch["labels"]
        out = model(image)
        l_cls = cls_loss(out.logits, y)
        parts: dict[str, torch.Tensor] = {"cls": l_cls}
        total = l_cls
        if epoch >= p.warmup_epochs and (p.sie or p.ssr or p.mga):
            self.par.to(image.device)
            size = image.shape[-2:]
            feat = out.cam.float()
            a_img = activation_map(feat, y, size)
            yhat = None
            if p.ssr:
                yhat = pseudo_labels(feat, y, denormalize(image), self.par, p.tau_fg, p.tau_bg)
                prob = up(F.relu(out.fall.float()), size)
                l_seg, seg_parts = self.seg_loss(prob, yhat, y, a_img > p.inter_threshold)
                parts |= seg_parts
                total = total + l_seg
            if p.sie:
                total = total + self._sie(model, batch, feat, yhat, parts)
            if p.mga:
                erased = image * (a_img < p.erase_threshold).to(image.dtype)
                with model.auxiliary():
                    feat_m = model(erased).cam.float()
                keep = (activation_map(feat, y) < p.erase_threshold).to(feat.dtype)
                parts["local"], parts["global"] = mga_losses(
                    feat_m, feat, keep, y, p.margin, p.mga_gradients == "paper"
                )
                total = total + parts["local"] + parts["global"]
        parts["total"] = total
        return total, parts_to_floats(parts)

    def _sie(self, model, batch, feat, yhat, parts) -> torch.Tensor:
        """L_kt (+ L_seg_two): the stacked pair must keep both images' activations."""
        p = self.p
        n = min(p.num_pair, feat.shape[0])
        image, pair = batch["image"][:n], batch["pair_image"][:n]
        y, y2 = batch["labels"][:n], batch["pair_labels"][:n]
        with model.auxiliary():
            out_p = model(pair)
            out_s = model(torch.cat([image, pair], dim=2))
        feat_p = out_p.cam.float()
        stacked = torch.cat([feat[:n], feat_p], dim=2)
        feat_s = out_s.cam.float()
        if feat_s.shape != stacked.shape:  # odd sizes: align the simulated map to the stack
            feat_s = up(feat_s, stacked.shape[-2:])
        parts["kt"] = margin_excess(stacked, feat_s, torch.maximum(y, y2), p.margin)
        total = parts["kt"]
        if yhat is not None:
            yhat_p = pseudo_labels(feat_p, y2, denormalize(pair), self.par, p.tau_fg, p.tau_bg)
            target = torch.cat([yhat[:n], yhat_p], dim=1)
            prob = up(F.relu(out_s.fall.float()), target.shape[-2:])
            parts["seg_two"] = safe_ce(prob, bg_target(target)) + p.w_fg * safe_ce(
                prob, fg_target(target)
            )
            total = total + parts["seg_two"]
        return total
