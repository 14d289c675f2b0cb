"""The effects of the three documented differences from the official KTSE code, measured on the
artifacts of a `make run` (ToyVOC):

- peak clamp (SSR pseudo-labels): how often a present class has no positive CAM activation in
  a training crop, the only case where clamping its maximum at 0 changes a label;
- mIoU over the classes with a non-empty union, against the official average over all classes
  with absent ones counted as 0 (seeds, pseudo-masks and val);
- PAR on the [0, 1] RGB crop, against the official uint8-truncated BGR input: argmax agreement
  of PAR-refined noisy masks on ToyVOC images.

    python -m benchmarks.fidelity [--artifacts artifacts] [--images 64]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import run_benchmark, write_json
from wsss.artifacts.opening import open_artifact
from wsss.config.params import load_params
from wsss.data.dataset import SegmentationDataset
from wsss.data.pairs import CamTrainSet
from wsss.data.transforms import cam_train_transforms, eval_transforms
from wsss.kinds.cam_model import load_cam_model
from wsss.kinds.dataset import load_index
from wsss.methods.ktse import denormalize
from wsss.refine.par import PAR


@torch.no_grad()
def unclamped_peaks(artifacts: Path, images: int) -> dict[str, float]:
    """Share of (training crop, present class) pairs whose raw CAM maximum is <= 0 (the trained
    network in eval mode on last-epoch crops)."""
    p = load_params(None).train_cam
    index = load_index(artifacts / "dataset")
    model, _ = load_cam_model(open_artifact(artifacts / "cam_model"), torch.device("cpu"))
    crops = CamTrainSet(
        index, p.split, cam_train_transforms(p.long_side, p.crop, p.hflip), 0, False
    )
    crops.set_epoch(p.epochs - 1)
    nonpositive = pairs = 0
    for i in range(min(images, len(crops))):
        item = crops[i]
        feat = model(item["image"][None]).cam[0]
        present = item["labels"].bool()
        peaks = feat.amax((1, 2))[present]
        nonpositive += int((peaks <= 0).sum())
        pairs += int(present.sum())
    return {"pairs": pairs, "nonpositive_peak_share": nonpositive / pairs}


def miou_conventions(artifacts: Path) -> dict[str, dict[str, float]]:
    """Ours (non-empty unions) and the official one (all classes, absent = 0) per scored output."""
    files = {
        "seeds": artifacts / "cams" / "seed_scores.json",
        "pseudo_masks": artifacts / "pseudo_masks" / "mask_scores.json",
        "val": artifacts / "evaluation" / "scores.json",
    }
    out = {}
    for name, path in files.items():
        scores = json.loads(path.read_text())
        iou = (scores["fixed"] if name == "seeds" else scores)["iou"]
        values = list(iou.values()) if isinstance(iou, dict) else iou
        present = [v for v in values if v is not None]
        out[name] = {
            "ours": float(np.mean(present)),
            "official": float(np.mean([v or 0.0 for v in values])),
            "classes_absent": len(values) - len(present),
        }
    return out


@torch.no_grad()
def par_input_agreement(artifacts: Path, images: int) -> dict[str, float]:
    """Argmax agreement of PAR on the de-normalized RGB image and on its uint8-truncated BGR copy
    (the official input), for
    GT masks made noisy (softmax of s·one-hot + N(0, 1)) at a clean and a hard signal s."""
    index = load_index(artifacts / "dataset")
    dataset = SegmentationDataset(index, "train")
    par = PAR()
    gen = torch.Generator().manual_seed(0)
    signals = (3.0, 0.5)
    agree, total = dict.fromkeys(signals, 0), 0
    for i in range(min(images, len(dataset))):
        item = dataset[i]
        image01 = denormalize(eval_transforms()(item["image"])[None])  # what training's PAR sees
        truncated = (image01.flip(1) * 255).to(torch.uint8).float() / 255
        mask = item["mask"].clamp(max=len(index.classes))
        onehot = torch.nn.functional.one_hot(mask, len(index.classes) + 1)
        onehot = onehot.permute(2, 0, 1)[None].float()
        total += mask.numel()
        for s in signals:
            noisy = (s * onehot + torch.randn(onehot.shape, generator=gen)).softmax(1)
            a, b = par(image01, noisy).argmax(1), par(truncated, noisy).argmax(1)
            agree[s] += int((a == b).sum())
    result = {f"argmax_agreement_signal_{s}": agree[s] / total for s in signals}
    return {"images": min(images, len(dataset))} | result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    for kind in ("dataset", "cam_model", "cams", "pseudo_masks", "evaluation"):
        open_artifact(args.artifacts / kind, kind, verify=False)  # one line if make run has not
    results = {
        "peak_clamp": unclamped_peaks(args.artifacts, args.images),
        "miou_average": miou_conventions(args.artifacts),
        "par_input": par_input_agreement(args.artifacts, args.images),
    }
    print(json.dumps(results, indent=1))
    write_json("fidelity", results)


if __name__ == "__main__":
    run_benchmark(main)
