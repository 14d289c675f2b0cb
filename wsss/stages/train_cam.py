"""train_cam: train the CAM network (any CAM method) on a `dataset` -> `cam_model`.

Poly SGD through the shared training loop (wsss.training: autocast, DDP gradients, checkpoint and
resume, logging); the method object turns a batch into the loss.
"""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from wsss.artifacts.storage import local_file
from wsss.data.pairs import CamTrainSet, EpochSampler
from wsss.data.transforms import cam_train_transforms
from wsss.errors import WsssError
from wsss.kinds.dataset import load_index, require_splits
from wsss.kinds.models import MODEL, build_cam_model
from wsss.methods import build_method
from wsss.params import Params, TrainCamParams
from wsss.runtime import (
    autocast,
    describe,
    finish_distributed,
)
from wsss.training import (
    Loop,
    epoch_loader,
    place_model,
    resume_key,
    start,
)


def _batch_size(p: TrainCamParams, epoch: int) -> int:
    return p.warmup_batch_size if epoch < p.warmup_epochs else p.batch_size


def epoch_steps(p: TrainCamParams, images: int, world_size: int = 1) -> list[int]:
    """Optimizer steps per epoch: whole global batches only, warm-up epochs at their batch size."""
    return [images // (_batch_size(p, e) * world_size) for e in range(p.epochs)]


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.train_cam, params.runtime
    index = load_index(inputs["dataset"].path)
    require_splits(index, "train_cam", p, "split")
    device, dist = start(rt.device, rt.seed)

    meta = {
        "backbone": p.backbone,
        "toy_width": p.toy_width,
        "toy_norm": p.toy_norm,
        "num_classes": len(index.classes),
        "classes": list(index.classes),
        "method": p.method,
        "fsr_encoder": p.fsr_encoder,
        "fsr_head": list(p.fsr_head),
    }
    model = build_cam_model(meta, local_file(p.weights))
    meta["stride"] = model.stride
    place_model(model, device, dist)
    method = build_method(p)
    optimizer = method.optimizer(model)
    transforms = cam_train_transforms(p.long_side, p.crop, p.hflip)
    dataset = CamTrainSet(index, p.split, transforms, rt.seed, method.needs_pairs)
    samplers = [
        EpochSampler(len(dataset), _batch_size(p, e), rt.seed, dist.rank, dist.world_size)
        for e in range(p.epochs)
    ]
    steps = epoch_steps(p, len(dataset), dist.world_size)
    if min(steps) == 0:
        raise WsssError(
            f"params: train_cam.batch_size: {len(dataset)} images in '{p.split}' are fewer than "
            f"one batch per process"
        )
    total = sum(steps)
    loop = Loop(
        model=model,
        optimizer=optimizer,
        trainable=model.trainable_parameters(),
        device=device,
        dist=dist,
        out=out,
        steps=steps,
        lr_factor=lambda step: method.lr_factor(step, total),
        resume_key=resume_key("train_cam", p, rt.seed, inputs),
        seed=rt.seed,
        checkpoint_every=p.checkpoint_every,
        log_interval=rt.log_interval,
        name="train_cam",
    )

    loader = epoch_loader(dataset, samplers.__getitem__, rt.num_workers, device)
    history = loop.run(loader, lambda batch, epoch: method.loss(model, batch, epoch))
    loop.finish(history, {"meta": meta, "state_dict": model.state_dict()}, MODEL)
    finish_distributed(dist)
    if not dist.is_main:  # the runner keeps rank 0's metrics only
        return {}, describe(device, dist.world_size)
    metrics = _train_metrics(model, dataset, device, rt.num_workers)
    last = history[-1]
    metrics |= {"train_loss": last["total"], "steps": float(total), "epochs": float(p.epochs)}
    return metrics, describe(device, dist.world_size)


@torch.no_grad()
def _train_metrics(model, dataset: CamTrainSet, device, workers: int) -> dict[str, float]:
    """Classification on the (augmented) training split: label accuracy and exact-match rate."""
    model.eval()
    dataset.pairs, dataset.epoch = False, 10**6
    right = exact = count = 0
    for batch in DataLoader(dataset, batch_size=32, num_workers=workers):
        with autocast(device):
            logits = model(batch["image"].to(device)).logits.float()
        pred = (logits > 0).cpu().float()
        right += (pred == batch["labels"]).float().mean(1).sum().item()
        exact += (pred == batch["labels"]).all(1).sum().item()
        count += len(pred)
    return {"cls_acc": right / count, "cls_exact": exact / count}
