"""IRN's losses (docs/method.md §5): the affinities of pixel pairs against their IR labels, and
the displacement field against the pairs' offsets."""

import torch
import torch.nn.functional as F

from wsss.models.irn import IRNet
from wsss.refine.affinity import Offset, pair_labels, path_affinity, shift


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over MASK; 0 (with a gradient path) when MASK is empty instead of NaN."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def affinity_loss(aff: torch.Tensor, pairs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """L_pos = (mean_bg+ -log(a) + mean_fg+ -log(a)) / 2 and L_neg = mean_neg -log(1 - a)."""
    pos = -torch.log(aff + 1e-5)
    neg = -torch.log(1 + 1e-5 - aff)
    return {
        "pos": (_masked_mean(pos, pairs["bg_pos"]) + _masked_mean(pos, pairs["fg_pos"])) / 2,
        "neg": _masked_mean(neg, pairs["neg"]),
    }


def displacement_loss(
    disp: torch.Tensor, pairs: dict[str, torch.Tensor], offsets: list[Offset]
) -> dict[str, torch.Tensor]:
    """Displacements D (B, 2, h, w) point to the instance centre, so D_i - D_j equals the offset
    from i to j inside one foreground object (dp_fg) and 0 between background pixels (dp_bg);
    each is the L1 sum over pairs divided by 2 x the pair count."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    other = torch.stack([shift(disp, dy, dx, pad, 0.0) for dy, dx in offsets], dim=2)
    delta = torch.tensor(offsets, dtype=disp.dtype, device=disp.device).T  # (2, K)
    diff = disp.unsqueeze(2) - other  # (B, 2, K, h, w)
    fg = (diff - delta[None, :, :, None, None]).abs().sum(1)
    bg = diff.abs().sum(1)

    def mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (values * mask).sum() / (2 * mask.sum().clamp(min=1))

    return {"dp_fg": mean(fg, pairs["fg_pos"]), "dp_bg": mean(bg, pairs["bg_pos"])}


def irn_loss(model: IRNet, batch: dict, offsets) -> tuple[torch.Tensor, dict[str, float]]:
    """(L_pos + L_neg) / 2 + (dp_fg + dp_bg) / 2 on the pairs of the stride-4 IR label."""
    edge, disp = model(batch["image"])
    label = F.interpolate(batch["mask"][:, None].float(), edge.shape[-2:], mode="nearest")
    pairs = pair_labels(label[:, 0].long(), offsets)
    aff = path_affinity(torch.sigmoid(edge.float()[:, 0]), offsets)
    parts = affinity_loss(aff, pairs) | displacement_loss(disp.float(), pairs, offsets)
    total = (parts["pos"] + parts["neg"]) / 2 + (parts["dp_fg"] + parts["dp_bg"]) / 2
    return total, {"total": total.item()} | {k: v.item() for k, v in parts.items()}
