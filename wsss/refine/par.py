"""PAR: pixel-adaptive refinement of label maps by local colour affinity (from AFA;
docs/method.md §3).

Each pixel looks at 8 neighbours per dilation (48 for the default six dilations, replicate
padding). Affinity = softmax over neighbours of -(|I_i - I_j| / (std_j I + 1e-8) / 0.3)^2
(averaged over RGB) plus 0.01 x softmax of the same form over the neighbours' distances.
Ten times, every map becomes the affinity-weighted sum of its neighbours. All of it is tensor
ops over the whole batch: no Python loop over images or pixels.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

DILATIONS = (1, 2, 4, 8, 12, 24)
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def neighbours(x: torch.Tensor, dilations: tuple[int, ...]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, K, H, W): the K = 8·len(dilations) neighbours of every pixel."""
    pad = max(dilations)
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    shifted = [
        padded[..., pad + dy * d : pad + dy * d + h, pad + dx * d : pad + dx * d + w]
        for d in dilations
        for dy, dx in _OFFSETS
    ]
    return torch.stack(shifted, dim=2)


def neighbour_distances(dilations: tuple[int, ...]) -> torch.Tensor:
    """d for axis neighbours, sqrt(2)·d for diagonal ones, in `neighbours` order."""
    return torch.tensor(
        [d * (math.sqrt(2) if dy and dx else 1.0) for d in dilations for dy, dx in _OFFSETS]
    )


class PAR(nn.Module):
    def __init__(
        self,
        dilations: tuple[int, ...] = DILATIONS,
        iterations: int = 10,
        temperature: float = 0.3,
        position_weight: float = 0.01,
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.iterations = iterations
        self.temperature = temperature
        self.position_weight = position_weight
        dist = neighbour_distances(self.dilations)
        k_pos = -((dist / (dist.std() + 1e-8) / temperature) ** 2)
        self.register_buffer("pos_affinity", torch.softmax(k_pos, 0), persistent=False)

    def affinity(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) image in [0, 1] -> (B, K, H, W) weights over neighbours."""
        nb = neighbours(image, self.dilations)
        std = nb.std(dim=2, keepdim=True)  # unbiased, over the K neighbour values
        k_img = -((((image.unsqueeze(2) - nb).abs() / (std + 1e-8)) / self.temperature) ** 2)
        aff = torch.softmax(k_img.mean(1), dim=1)
        return aff + self.position_weight * self.pos_affinity.view(1, -1, 1, 1).to(aff.dtype)

    @torch.no_grad()
    def forward(self, image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Refine MAPS (B, C, H, W) by IMAGE (B, 3, H, W, values in [0, 1])."""
        aff = self.affinity(image).to(maps.dtype)
        for _ in range(self.iterations):
            maps = propagate(maps, aff, self.dilations)
        return maps


def propagate(maps: torch.Tensor, aff: torch.Tensor, dilations: tuple[int, ...]) -> torch.Tensor:
    """sum_j aff_j * neighbour_j(maps), accumulated offset by offset: the same result as
    (neighbours(maps) * aff).sum(2) without materializing the K-times larger stack."""
    pad = max(dilations)
    h, w = maps.shape[-2:]
    padded = F.pad(maps, (pad, pad, pad, pad), mode="replicate")
    out = torch.zeros_like(maps)
    k = 0
    for d in dilations:
        for dy, dx in _OFFSETS:
            shifted = padded[..., pad + dy * d : pad + dy * d + h, pad + dx * d : pad + dx * d + w]
            out.addcmul_(shifted, aff[:, k : k + 1])
            k += 1
    return out
