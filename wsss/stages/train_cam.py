"""train_cam: train the CAM network (KTSE or the baseline) on a `dataset` -> `cam_model`.

A plain training loop in the torchvision-references style: poly SGD, bf16 autocast and
channels_last on CUDA, gradients averaged across torchrun processes, a checkpoint every
`checkpoint_every` steps (the stage resumes from it after a kill), tqdm progress and one JSON log
line per `runtime.log_interval` steps.
"""

import json
import math
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from wsss.artifacts import Artifact
from wsss.data.pairs import CamTrainSet, EpochSampler
from wsss.data.transforms import cam_train_transforms
from wsss.errors import WsssError
from wsss.methods import build_method
from wsss.models.backbones import build_backbone
from wsss.models.cam import CamNet
from wsss.params import Params, TrainCamParams, digest
from wsss.plots import plot_curves
from wsss.runtime import (
    all_reduce_gradients,
    autocast,
    broadcast_parameters,
    describe,
    finish_distributed,
    init_distributed,
    resolve_device,
    seed_everything,
)
from wsss.stages.prepare_data import load_index

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOG = "train_log.jsonl"


def build_model(meta: dict) -> CamNet:
    """The network a `cam_model` describes (weights not loaded)."""
    backbone = build_backbone(meta["backbone"], None, meta["toy_width"], meta["toy_norm"])
    return CamNet(backbone, meta["num_classes"])


def load_cam_model(artifact: Artifact, device: torch.device) -> tuple[CamNet, dict]:
    """The trained network of a `cam_model` artifact, in eval mode, and its metadata."""
    path = artifact.path / MODEL
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state_dict"]
        model = build_model(meta)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WsssError(f"{path}: not a loadable CAM checkpoint ({first})") from None
    return model.to(device).eval(), meta


def _poly_lr(p: TrainCamParams, step: int, total: int) -> float:
    horizon = p.poly_horizon_steps or total
    return p.lr * (1 - min(step, horizon - 1) / horizon) ** p.poly_power


def _batch_size(p: TrainCamParams, epoch: int) -> int:
    return p.warmup_batch_size if epoch < p.warmup_epochs else p.batch_size


def epoch_steps(p: TrainCamParams, images: int, world_size: int = 1) -> list[int]:
    """Optimizer steps per epoch: whole global batches only, warm-up epochs at their batch size."""
    return [images // (_batch_size(p, e) * world_size) for e in range(p.epochs)]


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.train_cam, params.runtime
    index = load_index(inputs["dataset"].path)
    if p.split not in index.splits:
        raise WsssError(f"params: train_cam.split: '{p.split}' is not a split of the dataset")
    if p.tau_bg >= p.tau_fg:
        raise WsssError("params: train_cam.tau_bg: must be below train_cam.tau_fg")
    device = resolve_device(rt.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device.type)
    seed_everything(rt.seed)

    backbone = build_backbone(p.backbone, p.weights, p.toy_width, p.toy_norm)
    model = CamNet(backbone, len(index.classes))
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    broadcast_parameters(model, dist.world_size)
    trainable = model.trainable_parameters()
    optimizer = torch.optim.SGD(
        trainable, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay
    )
    method = build_method(p)
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
    meta = {
        "backbone": p.backbone,
        "toy_width": p.toy_width,
        "toy_norm": p.toy_norm,
        "num_classes": len(index.classes),
        "classes": list(index.classes),
        "stride": model.backbone.stride,
        "method": p.method,
    }
    resume_key = digest({"train_cam": p.model_dump(mode="json"), "seed": rt.seed})
    state = {"step": 0, "history": []}
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["resume_key"] == resume_key and ckpt["world_size"] == dist.world_size:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["rng"])
            state = {"step": ckpt["step"], "history": ckpt["history"]}
            if dist.is_main:
                print(json.dumps({"event": "resume", "step": state["step"]}), flush=True)

    def checkpoint() -> None:
        if dist.is_main:
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "step": state["step"],
                    "history": state["history"],
                    "resume_key": resume_key,
                    "world_size": dist.world_size,
                },
                ckpt_path,
            )

    model.train()
    progress = tqdm(
        total=total, initial=state["step"], disable=None if dist.is_main else True, desc="train_cam"
    )
    window: dict[str, list[float]] = {}
    epoch_start = 0
    for epoch, sampler in enumerate(samplers):
        if state["step"] >= epoch_start + steps[epoch]:
            epoch_start += steps[epoch]
            continue
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, skip_batches=state["step"] - epoch_start)
        loader = DataLoader(
            dataset,
            batch_size=sampler.batch_size,
            sampler=sampler,
            num_workers=rt.num_workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "id"}
            if device.type == "cuda":
                for key in ("image", "pair_image"):
                    if key in batch:
                        batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
            lr = _poly_lr(p, state["step"], total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device):
                loss, parts = method.loss(model, batch, epoch)
            if not math.isfinite(parts["total"]):
                raise RuntimeError(f"train_cam: loss is {parts['total']} at step {state['step']}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            all_reduce_gradients(trainable, dist.world_size)
            optimizer.step()
            state["step"] += 1
            progress.update()
            for key, value in parts.items():
                window.setdefault(key, []).append(value)
            if state["step"] % rt.log_interval == 0 or state["step"] == total:
                line = {"step": state["step"], "epoch": epoch, "lr": lr}
                line |= {k: sum(v) / len(v) for k, v in window.items()}
                state["history"].append(line)
                window = {}
                if dist.is_main:
                    tqdm.write(json.dumps(line))
            if state["step"] % p.checkpoint_every == 0:
                checkpoint()
        epoch_start += steps[epoch]
    progress.close()

    if dist.is_main:
        _save_atomic({"meta": meta, "state_dict": model.state_dict()}, out / MODEL)
        with open(out / LOG, "w") as fh:
            fh.writelines(json.dumps(line) + "\n" for line in state["history"])
        plot_curves(state["history"], out / "loss_curve.png", "train_cam losses")
    ckpt_path.unlink(missing_ok=True)
    finish_distributed(dist)
    if not dist.is_main:  # the runner keeps rank 0's metrics only
        return {}, describe(device, dist.world_size)
    metrics = _train_metrics(model, dataset, device, rt.num_workers)
    last = state["history"][-1]
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
