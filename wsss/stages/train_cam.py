"""train_cam: train the CAM network (any CAM method) on a `dataset` -> `cam_model`.

The method (wsss.methods, by `train_cam.method`) gives the network, optimizer, schedule and loss;
the shared training loop (wsss.training: autocast, DDP gradients, checkpoint and resume,
logging) runs it.
"""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from wsss.config.params import Params
from wsss.data.pairs import CamTrainSet
from wsss.data.transforms import cam_train_transforms
from wsss.kinds.cam_model import build_cam_model
from wsss.kinds.dataset import load_index, require_splits
from wsss.methods.registry import build_method
from wsss.metrics import mean_average_precision
from wsss.runtime import autocast, describe
from wsss.training import fit, initial_weights, place_model, start


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.train_cam, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "train_cam", p, "split")
    job = start("train_cam", inputs, out, params)
    device, dist = job.device, job.dist

    method = build_method(p)
    meta = {"method": p.method, "num_classes": len(index.classes), "classes": list(index.classes)}
    meta |= method.network_meta()
    model = build_cam_model(meta, initial_weights("train_cam", method.network, p.weights))
    meta["stride"] = model.stride
    place_model(model, device, dist)
    dataset = CamTrainSet(
        index,
        p.split,
        cam_train_transforms(p.long_side, p.crop, p.hflip),
        rt.seed,
        method.needs_pairs,
    )
    history, total = fit(
        job,
        model=model,
        optimizer=method.optimizer(model),
        dataset=dataset,
        batch_sizes=method.batch_sizes(),
        lr_factor=method.lr_factor,
        loss_fn=lambda batch, epoch: method.loss(model, batch, epoch),
        meta=meta,
    )
    if not dist.is_main:  # the runner keeps rank 0's metrics only
        return {}, describe(device, dist.world_size)
    metrics = _train_metrics(model, dataset, device, rt.num_workers)
    last = history[-1]
    metrics |= {"train_loss": last["total"], "steps": float(total), "epochs": float(p.epochs)}
    return metrics, describe(device, dist.world_size)


@torch.no_grad()
def _train_metrics(model, dataset: CamTrainSet, device, workers: int) -> dict[str, float]:
    """Classification on the (augmented) training split: mAP over the classes, and the share of
    images whose label set is predicted exactly (logit > 0)."""
    model.eval()
    dataset.pairs, dataset.epoch = False, 10**6
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=32, num_workers=workers):
        with autocast(device):
            logits.append(model(batch["image"].to(device)).logits.float().cpu())
        labels.append(batch["labels"])
    scores, truth = torch.cat(logits).numpy(), torch.cat(labels).numpy()
    exact = ((scores > 0) == truth.astype(bool)).all(1).mean()
    return {"cls_map": mean_average_precision(scores, truth), "cls_exact": float(exact)}
