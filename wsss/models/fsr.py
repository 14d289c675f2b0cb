"""FSR's network (docs/method.md §8): the ViT encoder with classifiers, a LargeFOV decoder,
DINO projection heads, and their EMA teacher."""

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsss.models.cam import CamOutput
from wsss.models.vit import Tokens, ViTEncoder


class DinoHead(nn.Module):
    """Projector: MLP -> L2 normalization -> weight-normalized linear layer onto prototypes."""

    def __init__(self, dim: int, hidden: int, bottleneck: int, prototypes: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.last = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck, prototypes, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


@dataclass
class FsrOutput:
    tokens: Tokens
    logits: torch.Tensor  # (B, C) from the final tokens
    aux_logits: torch.Tensor  # (B, C) from block -3's tokens
    cam: torch.Tensor  # (B, C, h, w) the classifier on the final token map (before ReLU)
    aux_cam: torch.Tensor
    seg: torch.Tensor  # (B, C+1, h, w) the LargeFOV decoder


class FsrNet(nn.Module):
    """FSR's student (encoder, classifiers, decoder, DINO heads) and its EMA teacher (a copy of
    the encoder and heads, never trained by gradients; kept in the state dict with DINO's
    centres, so a resumed run resumes the teacher too). forward() gives CAMs like CamNet:
    extract_seeds treats both alike."""

    def __init__(self, encoder: str, num_classes: int, head: tuple[int, int, int, int]):
        super().__init__()
        self.encoder = ViTEncoder(encoder)
        dim, (hidden, bottleneck, prototypes, decoder) = self.encoder.dim, head
        self.classifier = nn.Conv2d(dim, num_classes, 1, bias=False)
        self.aux_classifier = nn.Conv2d(dim, num_classes, 1, bias=False)
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, decoder, 3, padding=5, dilation=5),
            nn.ReLU(),
            nn.Conv2d(decoder, decoder, 3, padding=5, dilation=5),
            nn.ReLU(),
            nn.Conv2d(decoder, num_classes + 1, 1),
        )
        self.class_head = DinoHead(dim, hidden, bottleneck, prototypes)
        self.patch_head = DinoHead(dim, hidden, bottleneck, prototypes)
        self.teacher = nn.ModuleDict(
            {
                "encoder": copy.deepcopy(self.encoder),
                "class_head": copy.deepcopy(self.class_head),
                "patch_head": copy.deepcopy(self.patch_head),
            }
        )
        self.teacher.requires_grad_(False)
        # DINO's running centres of the teacher's class and patch outputs: training state that
        # a checkpoint must carry for a resumed run to follow an uninterrupted one
        self.register_buffer("class_center", torch.zeros(1, prototypes))
        self.register_buffer("patch_center", torch.zeros(1, prototypes))
        self.stride = self.encoder.stride

    def sync_teacher(self) -> None:
        """The teacher starts as the student (after the student's weights are loaded)."""
        for name, module in self.student().items():
            self.teacher[name].load_state_dict(module.state_dict())

    def student(self) -> dict[str, nn.Module]:
        return {
            "encoder": self.encoder,
            "class_head": self.class_head,
            "patch_head": self.patch_head,
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def run(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> FsrOutput:
        tokens = self.encoder(x, mask)
        fmap, aux = tokens.maps(tokens.final), tokens.maps(tokens.aux)
        cam, aux_cam = self.classifier(fmap), self.aux_classifier(aux)
        # the image-level logits classify global-max-pooled tokens
        logits = self.classifier(F.adaptive_max_pool2d(fmap, 1)).flatten(1)
        aux_logits = self.aux_classifier(F.adaptive_max_pool2d(aux, 1)).flatten(1)
        return FsrOutput(tokens, logits, aux_logits, cam, aux_cam, self.decoder(fmap))

    def forward(self, x: torch.Tensor) -> CamOutput:
        out = self.run(x)
        return CamOutput(out.logits, torch.cat([torch.zeros_like(out.cam[:, :1]), out.cam], 1))
