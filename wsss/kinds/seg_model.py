"""The `seg_model` artifact: `model.pt` holds DeepLabV2's state dict and the metadata that
rebuilds it, written by train_deeplab."""

import torch

from wsss.artifacts.manifest import Artifact
from wsss.checkpoint import MODEL, load_model_file
from wsss.models.deeplab import DeepLabV2, build_deeplab


def build_seg_model(meta: dict) -> DeepLabV2:
    return build_deeplab(
        meta["backbone"], None, meta["num_classes"], tuple(meta["aspp_rates"]), meta["toy_width"]
    )


def load_seg_model(artifact: Artifact, device: torch.device) -> tuple[DeepLabV2, dict]:
    """The trained DeepLabV2 of a `seg_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_seg_model, "segmentation", device)
