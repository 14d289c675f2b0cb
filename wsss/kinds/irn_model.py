"""The `irn_model` artifact: `model.pt` holds IRNet's state dict and the metadata that rebuilds
it, written by train_irn."""

import torch

from wsss.artifacts.manifest import Artifact
from wsss.checkpoint import MODEL, load_model_file
from wsss.models.irn import IRNet, build_irnet


def build_irn_model(meta: dict) -> IRNet:
    return build_irnet(
        meta["backbone"], None, meta["toy_width"], meta["edge_width"], meta["disp_width"]
    )


def load_irn_model(artifact: Artifact, device: torch.device) -> tuple[IRNet, dict]:
    """The trained IRNet of an `irn_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_irn_model, "IRN", device)
