"""The `cam_model` artifact: `model.pt` holds the state dict and the metadata that rebuilds the
network (its method's `network_meta`, `method`, the classes), written by train_cam."""

from pathlib import Path

import torch
from torch import nn

from wsss.artifacts.manifest import Artifact
from wsss.checkpoint import MODEL, load_model_file
from wsss.methods.registry import METHODS


def build_cam_model(meta: dict, weights: Path | None = None) -> nn.Module:
    """The network a `cam_model` describes (its method builds it), initialized from ImageNet
    WEIGHTS when given."""
    if meta.get("method") not in METHODS:
        # load_model_file names the file
        raise ValueError(f"its method {meta.get('method')!r} is none of {', '.join(METHODS)}")
    return METHODS[meta["method"]].build_network(meta, weights)


def load_cam_model(artifact: Artifact, device: torch.device) -> tuple[nn.Module, dict]:
    """The trained network of a `cam_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_cam_model, "CAM", device)
