"""The ViT encoder of FSR (docs/method.md §8); FSR's network around it is wsss.models.fsr.

The encoder is built from torchvision's own ViT blocks, so torchvision's ViT-B/16 ImageNet state
dict loads by name; position embeddings are interpolated to any input size (multi-scale CAM
inference), masked patches are replaced by a learnable mask token before the position
embeddings, and after the blocks two aggregation blocks let a learnable CLS token query the patch
tokens (CLS never enters self-attention). `vit_toy` is a small ViT trained from scratch on
ToyVOC (CPU); `vit_b16` is ViT-B/16.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock

from wsss.errors import WsssError

# patch, width, depth, heads, MLP width, the position-embedding grid it was made for
ENCODERS = {
    "vit_toy": (8, 96, 6, 3, 384, 8),  # 0.7 M parameters; a 64-px crop is an 8x8 grid
    "vit_b16": (16, 768, 12, 12, 3072, 14),  # torchvision's vit_b_16 (224 px)
}


@dataclass
class Tokens:
    final: torch.Tensor  # (B, N, D) after the last block and LayerNorm
    aux: torch.Tensor  # (B, N, D) after block -3 (FSR's auxiliary CAM reads these)
    cls: torch.Tensor  # (B, D) the aggregated CLS token
    grid: tuple[int, int]

    def maps(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tokens -> (B, D, h, w) feature map."""
        return tokens.transpose(1, 2).reshape(len(tokens), -1, *self.grid)


class Aggregation(nn.Module):
    """CLS attends to the patch tokens, then an MLP; pre-norm and residual, like the blocks."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.ln_q, self.ln_kv, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, cls: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.ln_kv(tokens)
        cls = cls + self.attention(self.ln_q(cls), kv, kv, need_weights=False)[0]
        return cls + self.mlp(self.ln_2(cls))


class ViTEncoder(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        patch, dim, depth, heads, mlp, base = ENCODERS[name]
        self.stride, self.dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.pos_embedding = nn.Parameter(torch.empty(1, base * base, dim).normal_(std=0.02))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.ModuleList(
            EncoderBlock(heads, dim, mlp, dropout=0.0, attention_dropout=0.0) for _ in range(depth)
        )
        self.aggregation = nn.ModuleList(Aggregation(dim, heads, mlp) for _ in range(2))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def _positions(self, h: int, w: int) -> torch.Tensor:
        base = math.isqrt(self.pos_embedding.shape[1])
        if (h, w) == (base, base):
            return self.pos_embedding
        grid = self.pos_embedding.reshape(1, base, base, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, (h, w), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Tokens:
        """MASK (B, h, w) bool: patches replaced by the mask token."""
        t = self.conv_proj(x)
        grid = (t.shape[-2], t.shape[-1])
        t = t.flatten(2).transpose(1, 2)
        if mask is not None:
            t = torch.where(mask.flatten(1)[..., None], self.mask_token.to(t.dtype), t)
        t = t + self._positions(*grid)
        aux = t
        for i, layer in enumerate(self.layers):
            t = layer(t)
            if i == len(self.layers) - 3:
                aux = t
        cls = self.cls_token.expand(len(t), -1, -1)
        for block in self.aggregation:
            cls = block(cls, t)
        return Tokens(self.ln(t), aux, self.ln(cls)[:, 0], grid)

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """torchvision's vit_b_16 state dict: its blocks, patch embedding, position embeddings
        (without CLS's) and final LayerNorm; its class token and head are not used."""
        mapped = {"pos_embedding": state.get("encoder.pos_embedding", torch.empty(0))[:, 1:]}
        for key, value in state.items():
            if key.startswith("encoder.layers.encoder_layer_"):
                index, rest = key.removeprefix("encoder.layers.encoder_layer_").split(".", 1)
                mapped[f"layers.{index}.{rest}"] = value
            elif key.startswith(("conv_proj.", "encoder.ln.")):
                mapped[key.removeprefix("encoder.")] = value
        own = self.state_dict()
        expected = [k for k in own if k.startswith(("layers.", "conv_proj.", "ln.", "pos_emb"))]
        for key in expected:
            if key not in mapped or mapped[key].shape != own[key].shape:
                raise WsssError(f"ViT weights: '{key}' is missing or has another shape")
        self.load_state_dict({k: mapped[k] for k in expected}, strict=False)
