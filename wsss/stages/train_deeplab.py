"""train_deeplab: DeepLabV2 trained on a `pseudo_masks` artifact -> `seg_model`.

Pixel cross-entropy on the pseudo-masks (255 ignored; pixels outside the confidence masks
ignored or down-weighted per params), RandomResizedCrop + flip, SGD with poly decay to `min_lr`,
through the shared loop (autocast + channels_last on CUDA, DDP gradients under torchrun,
checkpoint and resume, logging). `select_on_val` keeps the epoch with the best val mIoU: it uses
GT labels, so it is off unless asked for, and the manifest's params say when it was on.
"""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from wsss.artifacts.output import BEST
from wsss.checkpoint import save_atomic
from wsss.config.params import Params
from wsss.data.dataset import AugmentedSet, SegmentationDataset, size_batches
from wsss.data.index import DatasetIndex
from wsss.data.transforms import eval_transforms, train_transforms
from wsss.inference import segment
from wsss.kinds.dataset import load_index, require_splits
from wsss.kinds.pseudo_masks import CONFIDENCE, MASKS
from wsss.losses.segmentation import pseudo_mask_loss
from wsss.metrics import ConfusionMatrix
from wsss.models.deeplab import DeepLabV2, build_deeplab
from wsss.optim import poly_factor, sgd
from wsss.runtime import (
    describe,
)
from wsss.training import fit, initial_weights, place_model, start


@torch.no_grad()
def val_miou(model: DeepLabV2, index: DatasetIndex, split: str, device, workers: int) -> float:
    """Single-scale mIoU on SPLIT's GT (for select_on_val)."""
    model.eval()
    dataset = SegmentationDataset(index, split, eval_transforms())
    matrix = ConfusionMatrix(index.num_classes)
    batches = size_batches(dataset, 8)
    for items in DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=list):
        images = torch.stack([it["image"] for it in items]).to(device)
        pred = segment(model, images, (1.0,), False, "max").argmax(1).cpu().numpy()
        for item, p in zip(items, pred, strict=True):
            matrix.update(p, item["mask"].numpy())
    model.train()
    return matrix.miou()


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.train_deeplab, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "train_deeplab", p, "split", *(("val_split",) if p.select_on_val else ()))
    job = start("train_deeplab", inputs, out, params)
    device, dist = job.device, job.dist

    masks = inputs["pseudo_masks"].path
    base = SegmentationDataset(
        index,
        p.split,
        masks=masks / MASKS,
        confidence=masks / CONFIDENCE if p.confidence != "off" else None,
    )
    dataset = AugmentedSet(base, train_transforms(p.crop, p.scale, p.hflip), rt.seed)
    weights = initial_weights("train_deeplab", p.backbone, p.weights)
    model = build_deeplab(p.backbone, weights, index.num_classes, p.aspp_rates, p.toy_width)
    place_model(model, device, dist)
    backbone, head = model.parameter_groups()

    def loss_fn(batch: dict, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["image"])
        low = 0.0 if p.confidence == "ignore" else p.low_confidence_weight
        loss = pseudo_mask_loss(logits, batch["mask"], batch.get("confidence"), low)
        return loss, {"total": loss.item()}

    def keep_best(epoch: int, key: str) -> None:
        if not dist.is_main:
            return
        miou = val_miou(model, index, p.val_split, device, rt.num_workers)
        best = out / BEST
        try:  # only a best epoch of this very run (params, seed, inputs) competes
            saved = torch.load(best, weights_only=True)
            kept = saved["resume_key"] == key and saved["miou"] >= miou
        except Exception:  # absent, torn or from another run
            kept = False
        if not kept:
            state = {"miou": miou, "epoch": epoch, "state_dict": model.state_dict()}
            save_atomic(state | {"resume_key": key}, best)

    selected = {}

    def adopt_best() -> None:
        if p.select_on_val and dist.is_main:
            best = torch.load(out / BEST, weights_only=True)
            model.load_state_dict(best["state_dict"])
            selected.update(selected_epoch=float(best["epoch"]), selected_val_miou=best["miou"])
            (out / BEST).unlink()

    meta = {
        "backbone": p.backbone,
        "toy_width": p.toy_width,
        "aspp_rates": list(p.aspp_rates),
        "num_classes": index.num_classes,
        "classes": index.names_with_background,
    }
    floor = p.min_lr / p.lr
    history, total = fit(
        job,
        model=model,
        optimizer=sgd([(backbone, p.lr), (head, p.lr * p.head_lr_scale)], p),
        dataset=dataset,
        batch_sizes=[p.batch_size] * p.epochs,
        lr_factor=lambda step, total: max(poly_factor(step, total, p.poly_power), floor),
        loss_fn=loss_fn,
        meta=meta,
        on_epoch_end=keep_best if p.select_on_val else None,
        before_save=adopt_best,
    )
    metrics = {"train_loss": history[-1]["total"], "steps": float(total)} | selected
    return metrics, describe(device, dist.world_size)
