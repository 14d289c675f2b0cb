"""The model artifacts (`cam_model`, `irn_model`, `seg_model`): `model.pt` holds the state dict
and the metadata that rebuilds its network (written by the training stages)."""

from pathlib import Path

import torch

from wsss.artifacts import Artifact
from wsss.errors import WsssError
from wsss.models.backbones import build_backbone
from wsss.models.cam import CamNet
from wsss.models.deeplab import DeepLabV2, build_deeplab
from wsss.models.fsr import FsrNet
from wsss.models.irn import IRNet, build_irnet
from wsss.models.weights import load_weights
from wsss.training import MODEL, load_model_file


def build_cam_model(meta: dict, weights: Path | None = None) -> CamNet | FsrNet:
    """The network a `cam_model` describes: FSR's ViT network or a CNN with the CAM head;
    initialized from ImageNet WEIGHTS when given."""
    if meta["method"] == "fsr":
        model = FsrNet(meta["fsr_encoder"], meta["num_classes"], tuple(meta["fsr_head"]))
        if weights is not None:
            if meta["fsr_encoder"] == "vit_toy":
                raise WsssError("params: train_cam.weights: vit_toy trains from scratch; null")
            model.encoder.load_imagenet(load_weights(weights, mxnet_names=False))
            model.sync_teacher()
        return model
    backbone = build_backbone(meta["backbone"], weights, meta["toy_width"], meta["toy_norm"])
    return CamNet(backbone, meta["num_classes"])


def load_cam_model(artifact: Artifact, device: torch.device) -> tuple[CamNet | FsrNet, dict]:
    """The trained network of a `cam_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_cam_model, "CAM", device)


def build_irn_model(meta: dict) -> IRNet:
    return build_irnet(
        meta["backbone"], None, meta["toy_width"], meta["edge_width"], meta["disp_width"]
    )


def load_irn_model(artifact: Artifact, device: torch.device) -> tuple[IRNet, dict]:
    """The trained IRNet of an `irn_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_irn_model, "IRN", device)


def build_seg_model(meta: dict) -> DeepLabV2:
    return build_deeplab(
        meta["backbone"], None, meta["num_classes"], tuple(meta["aspp_rates"]), meta["toy_width"]
    )


def load_seg_model(artifact: Artifact, device: torch.device) -> tuple[DeepLabV2, dict]:
    """The trained DeepLabV2 of a `seg_model` artifact, in eval mode, and its metadata."""
    return load_model_file(artifact.path / MODEL, build_seg_model, "segmentation", device)
