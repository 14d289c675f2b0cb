"""The loss terms of KTSE (docs/method.md §3), each a small function on tensors.

Shapes: F (B, C, h, w) raw CAM feature; y (B, C) multi-hot; P (B, C+1, H, W) = up(ReLU Fall);
label maps (B, H, W) with 0 = background, c+1 = class c, 255 = ignore.
"""

import torch
import torch.nn.functional as F

from wsss.data.classes import IGNORE
from wsss.refine.par import PAR
from wsss.tensors import up


def maxnorm(x: torch.Tensor) -> torch.Tensor:
    """Per channel: ReLU(ReLU(x) - min - 1e-5) / (max - min + 1e-5), min/max of ReLU(x)."""
    x = F.relu(x)
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return F.relu(x - lo - 1e-5) / (hi - lo + 1e-5)


@torch.no_grad()
def activation_map(feat: torch.Tensor, y: torch.Tensor, size: tuple[int, int] | None = None):
    """A = max over present classes of maxnorm(ReLU F), optionally upsampled first: (B, 1, ., .)."""
    x = F.relu(feat.float())
    if size is not None:
        x = up(x, size)
    return (maxnorm(x) * y[:, :, None, None]).amax(1, keepdim=True)


def safe_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel cross-entropy averaged over non-ignored pixels; 0 (not NaN) when there are none."""
    total = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp(min=1)


def bg_target(label: torch.Tensor) -> torch.Tensor:
    """Only background pixels count."""
    return torch.where(label == 0, label, torch.full_like(label, IGNORE))


def fg_target(label: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Only foreground pixels count, and only in the images where KEEP (B,) is true."""
    out = torch.where(label == 0, torch.full_like(label, IGNORE), label)
    if keep is not None:
        out = torch.where(keep[:, None, None], out, torch.full_like(out, IGNORE))
    return out


def inter_class_loss(prob: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """sum((V2nd - stopgrad(Vmax)) * M) / (sum(M) + 1e-5) over Q = PROB[:, 1:] (all classes).

    V2nd is the largest class score once every entry equal to the maximum is zeroed. REGION (B,H,W)
    is the confident-object mask (and the complex images) where classes should not compete.
    """
    q = prob[:, 1:]
    vmax = q.amax(1, keepdim=True)
    v2nd = q.masked_fill(q == vmax, 0).amax(1)
    m = region.to(q.dtype)
    return ((v2nd - vmax.squeeze(1).detach()) * m).sum() / (m.sum() + 1e-5)


@torch.no_grad()
def pseudo_labels(
    feat: torch.Tensor,
    y: torch.Tensor,
    image01: torch.Tensor,
    par: PAR,
    tau_fg: float = 0.3,
    tau_bg: float = 0.15,
) -> torch.Tensor:
    """SSR labels (B, H, W): foreground where the 0.3 map says so, background where both the 0.3
    and the 0.15 maps say background, 255 in between. Both thresholds go through PAR at once,
    and PAR refines only each image's present channels: an absent class is 0 and stays 0
    under PAR's weighted sums, so the labels are those of all C+1 channels at a fraction of
    the cost.

    As in the official code, the softmax that PAR refines runs over the background score and the
    present classes only: an absent class takes no share of a pixel's probability (and so never
    changes how PAR weighs the present ones). The raw CAM is divided by its spatial maximum; where
    a present class has no positive activation at all, that maximum is clamped at 0 (a guard the
    official code lacks): dividing by a negative maximum would turn the least activated pixels
    into the most confident foreground.
    """
    size = image01.shape[-2:]
    half = (size[0] // 2, size[1] // 2)
    feat = feat.float()
    peak = feat.amax(dim=(2, 3), keepdim=True).clamp(min=0)
    abar = up(feat / (peak + 1e-5), size)
    b = feat.shape[0]
    # each image's present channels (background first, then its classes in class order), padded
    # to the batch's largest count with absent ones, which the softmax sets to 0
    present = torch.cat([torch.ones_like(y[:, :1]), y], 1).bool()  # (B, C+1)
    order = present.byte().argsort(dim=1, descending=True, stable=True)
    keys = order[:, : int(present.sum(1).max())]
    keys, kept = keys.repeat(2, 1), present.gather(1, keys).repeat(2, 1)  # (2B, K)
    scores = torch.cat(
        [torch.cat([torch.full_like(abar[:, :1], tau), abar], 1) for tau in (tau_fg, tau_bg)]
    )  # (2B, C+1, H, W)
    scores = scores.gather(1, keys[:, :, None, None].expand(-1, -1, *size))
    scores = up(scores, half).masked_fill(~kept[:, :, None, None], -torch.inf)
    image_half = up(image01.float(), half).repeat(2, 1, 1, 1)
    refined = up(par(image_half, torch.softmax(scores, 1)), size)
    best = refined.movedim(1, -1).contiguous().argmax(-1)  # on CPU ~10x faster than argmax(1)
    labels = keys.gather(1, best.flatten(1)).view_as(best)
    strict, loose = labels[:b], labels[b:]
    ignore = torch.full_like(strict, IGNORE)
    return torch.where(strict != 0, strict, torch.where(loose == 0, 0, ignore))


def margin_excess(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, margin: float):
    """mean over (b, c, h, w) of ReLU(A - B - margin) * weight_c: A should not exceed B."""
    return (F.relu(a - b - margin) * weight[:, :, None, None]).mean()


def global_alignment(feat_m: torch.Tensor, feat_a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean over (b, c) of |GAP(ReLU F_m)·y - GAP(ReLU F_a)·y|."""
    gm = F.relu(feat_m).mean((2, 3)) * y
    ga = F.relu(feat_a).mean((2, 3)) * y
    return (gm - ga).abs().mean()


def mga_losses(
    feat_m: torch.Tensor,
    feat_a: torch.Tensor,
    keep: torch.Tensor,
    y: torch.Tensor,
    margin: float,
    students_only: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MGA's (L_local, L_global) between the erased image's CAM feature F_m and the anchor's F_a,
    on the anchor's non-confident region KEEP for L_local. STUDENTS_ONLY detaches each loss's
    teacher as the paper describes them (L_global: anchor -> erased; L_local: erased -> anchor);
    otherwise gradients reach both sides, as the official code has it."""
    teacher_m = feat_m.detach() if students_only else feat_m
    teacher_a = feat_a.detach() if students_only else feat_a
    local = margin_excess(teacher_m * keep, feat_a * keep, y, margin)
    return local, global_alignment(feat_m, teacher_a, y)
