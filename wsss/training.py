"""The loop every training stage shares (train_cam, train_irn, train_deeplab).

A plain torchvision-references-style loop: per-step poly learning rate, bf16 autocast on CUDA,
gradients averaged across torchrun processes, a checkpoint every `checkpoint_every` steps that a
rerun resumes from (after a kill -9 too), the random draws of every step (dropout, jigsaws,
masks, views) seeded by (seed, rank, step) alone, so that a resumed run draws what an
uninterrupted one does on CPU and CUDA alike, tqdm progress and one JSON log line per `log_interval`
steps. `fit` is the whole of a stage's training: a stage supplies its model, optimizer groups,
dataset, batch sizes, schedule and loss.
"""

import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from wsss.artifacts.output import CHECKPOINT
from wsss.artifacts.storage import local_file
from wsss.checkpoint import MODEL, read_checkpoint, resume_key, save_atomic, write_checkpoint
from wsss.config.params import Params
from wsss.data.pairs import EpochSampler
from wsss.errors import Diverged, WsssError
from wsss.launcher import Launch, launch
from wsss.plots import plot_curves
from wsss.progress import Progress
from wsss.runtime import (
    all_reduce_gradients,
    autocast,
    broadcast_parameters,
    finish_distributed,
    init_distributed,
    resolve_device,
    seed_everything,
)

LOG = "train_log.jsonl"

LossFn = Callable[[dict, int], tuple[torch.Tensor, dict[str, float]]]  # (batch, epoch)
LoaderFn = Callable[[int, int], Iterable[dict]]  # (epoch, batches to skip) -> batches


def _images(batch: dict) -> int:
    """How many images a batch holds: the length of its first tensor."""
    first = next((v for v in batch.values() if isinstance(v, torch.Tensor) and v.dim()), None)
    return 0 if first is None else len(first)


def _readable(line: dict) -> dict:
    """Floats to 4 significant digits (the history file keeps them exact)."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in line.items()}


def initial_weights(section: str, network: str, weights: str | None) -> Path | None:
    """The ImageNet weights file NETWORK starts from (an s3:// URI is fetched once). Without one
    a real network starts from random weights, which the method never does: a warning says so,
    before a run that would diverge or learn little and blame the learning rate."""
    if weights is None and not network.endswith("toy"):
        print(
            f"warning: {section}: {network} with weights: null starts from random weights (the "
            f"method fine-tunes ImageNet weights: give {section}.weights)",
            file=sys.stderr,
        )
    return local_file(weights)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of one training step of one process: independent of everything before."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


@dataclass
class Loop:
    """One training run. Every optimizer param group needs a `base_lr`: the lr of step s is
    base_lr * lr_factor(s)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    dist: Launch
    out: Path
    steps: list[int]  # optimizer steps of each epoch
    lr_factor: Callable[[int], float]
    resume_key: str  # a checkpoint is resumed only if made with the same key (`resume_key`)
    seed: int
    checkpoint_every: int
    log_interval: int
    name: str
    full_steps: list[int]  # each epoch's steps in a full run (a smoke run does `steps`)
    batch_sizes: list[int]  # each epoch's

    def run(
        self,
        loader: LoaderFn,
        loss_fn: LossFn,
        on_epoch_end: Callable[[int, str], None] | None = None,
    ) -> list[dict]:
        """Train (resuming a matching checkpoint); returns the logged history. ON_EPOCH_END(e,
        resume key) runs after each epoch finished in this run (before that epoch's checkpoint);
        a file it keeps across epochs carries the key, so only this very run's counts."""
        step, history = self._resume()
        total = sum(self.steps)
        progress = tqdm(
            total=total, initial=step, disable=None if self.dist.is_main else True, desc=self.name
        )
        window: dict[str, list[float]] = {}
        epoch_start = 0
        clock = Progress(total, step, self.name, "step", sum(self.full_steps))
        last_step_s: dict[int, float] = {}  # epoch -> its last step's seconds (steady state)
        self.model.train()
        # the processes average the gradients of what the optimizer trains
        trained = [p for group in self.optimizer.param_groups for p in group["params"]]
        for epoch, epoch_steps in enumerate(self.steps):
            if step >= epoch_start + epoch_steps:
                epoch_start += epoch_steps
                continue
            started = time.monotonic()  # a step's time includes loading its batch
            for batch in loader(epoch, step - epoch_start):
                batch = {k: self._to_device(v) for k, v in batch.items()}
                factor = self.lr_factor(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                torch.manual_seed(step_seed(self.seed, self.dist.rank, step))
                with autocast(self.device):
                    loss, parts = loss_fn(batch, epoch)
                if not math.isfinite(parts["total"]):
                    raise Diverged(self.name, step, parts)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                all_reduce_gradients(trained, self.dist.world_size)
                self.optimizer.step()
                step += 1
                last_step_s[epoch], started = time.monotonic() - started, time.monotonic()
                progress.update()
                clock.update(1, _images(batch) * self.dist.world_size)
                for key, value in parts.items():
                    window.setdefault(key, []).append(value)
                if step % self.log_interval == 0 or step == total:
                    lr = self.optimizer.param_groups[0]["lr"]
                    line = {"step": step, "epoch": epoch, "lr": lr}
                    line |= {k: sum(v) / len(v) for k, v in window.items()}
                    history.append(line)
                    window = {}
                    if self.dist.is_main:  # the log (not the history) also tells time
                        tqdm.write(json.dumps(_readable(line) | clock.facts()))
                if step % self.checkpoint_every == 0:
                    self._checkpoint(step, history)
            epoch_start += epoch_steps
            if on_epoch_end is not None:
                on_epoch_end(epoch, self.resume_key)
        progress.close()
        clock.full_seconds = full_run_seconds(self.full_steps, self.batch_sizes, last_step_s)
        return history

    def finish(self, history: list[dict], model_file: dict, model_name: str) -> None:
        """Write the model, the JSON log and the loss curve (rank 0); drop the checkpoint."""
        if self.dist.is_main:
            save_atomic(model_file, self.out / model_name)
            with open(self.out / LOG, "w") as fh:
                fh.writelines(json.dumps(line) + "\n" for line in history)
            plot_curves(history, self.out / "loss_curve.png", f"{self.name} losses")
        (self.out / CHECKPOINT).unlink(missing_ok=True)

    def _to_device(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        value = value.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        return value

    def _resume(self) -> tuple[int, list[dict]]:
        ckpt = read_checkpoint(self.out / CHECKPOINT, self.resume_key, self.dist)
        if ckpt is None:
            return 0, []
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.dist.is_main:
            print(json.dumps({"event": "resume", "step": ckpt["step"]}), flush=True)
        return ckpt["step"], ckpt["history"]

    def _checkpoint(self, step: int, history: list[dict]) -> None:
        if self.dist.is_main:
            state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
            write_checkpoint(
                self.out / CHECKPOINT, state, step, history, self.resume_key, self.dist
            )


@dataclass(frozen=True)
class Job:
    """One training stage's run: its params section, inputs and output, and where it runs. What
    `fit` needs besides the network and the recipe (optimizer, data, schedule, loss)."""

    stage: str
    params: Params
    inputs: dict
    out: Path
    device: torch.device
    dist: Launch

    @property
    def section(self) -> BaseModel:
        return getattr(self.params, self.stage)

    @property
    def seed(self) -> int:
        return self.params.runtime.seed

    @property
    def workers(self) -> int:
        return self.params.runtime.num_workers


def start(stage: str, inputs: dict, out: Path, params: Params) -> Job:
    """A training process's job: its device (its LOCAL_RANK's GPU under torchrun), its place in
    the process group, and the seeded RNGs."""
    rt = params.runtime
    device = resolve_device(rt.device, launch().local_rank)
    dist = init_distributed(device.type)
    seed_everything(rt.seed)
    return Job(stage, params, inputs, out, device, dist)


def place_model(model: torch.nn.Module, device: torch.device, dist: Launch) -> None:
    """Move MODEL to DEVICE (channels_last on CUDA) and give every process rank 0's weights."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    broadcast_parameters(model, dist.world_size)


def epoch_steps(
    images: int, batch_sizes: list[int], world_size: int = 1, key: str = "batch_size"
) -> list[int]:
    """Optimizer steps of each epoch: whole global batches at that epoch's batch size; an epoch
    without one is a params error (KEY names the setting)."""
    steps = [images // (size * world_size) for size in batch_sizes]
    if min(steps) == 0:
        raise WsssError(
            f"params: {key}: {images} training images are fewer than one batch per process"
        )
    return steps


def full_run_seconds(
    full_steps: list[int], batch_sizes: list[int], measured: dict[int, float]
) -> float | None:
    """A full run's training time from the step times of the epochs this run measured: each
    epoch costs what the nearest measured epoch at its batch size cost per step (a smoke run
    measures the first and the last epoch: a warm-up and the full method, usually at their own
    batch sizes). None without a measured step."""
    if not measured:
        return None
    total = 0.0
    for epoch, steps in enumerate(full_steps):
        alike = [e for e in measured if batch_sizes[e] == batch_sizes[epoch]] or list(measured)
        total += steps * measured[min(alike, key=lambda e: abs(e - epoch))]
    return total


def smoke_steps(epochs: int, steps: int) -> list[int]:
    """A smoke run's steps of each epoch: STEPS in the first and in the last epoch (where the
    methods switch on what they add after a warm-up), none between."""
    return [steps if e in (0, epochs - 1) else 0 for e in range(epochs)]


def fit(
    job: Job,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset,
    batch_sizes: list[int],
    lr_factor: Callable[[int, int], float],
    loss_fn: LossFn,
    meta: dict,
    on_epoch_end: Callable[[int, str], None] | None = None,
    before_save: Callable[[], None] | None = None,
) -> tuple[list[dict], int]:
    """The training every training stage runs: seeded per-epoch samplers at BATCH_SIZES (one
    per epoch), the Loop with its checkpoints and a resume keyed on the job's section, seed and
    inputs, LR_FACTOR(step, total steps) scaling each group's base_lr; then MODEL (META, which
    rebuilds the network, and the state dict), the log and the loss curve, saved after
    BEFORE_SAVE; a smoke run does `smoke_steps`. Returns the logged history and the total step
    count."""
    dist, smoke, seed = job.dist, job.params.smoke, job.seed
    full = epoch_steps(dataset.full_size, batch_sizes, dist.world_size, f"{job.stage}.batch_size")
    steps = smoke_steps(len(batch_sizes), smoke.steps) if smoke.on else full
    total = sum(steps)
    loop = Loop(
        model=model,
        optimizer=optimizer,
        device=job.device,
        dist=dist,
        out=job.out,
        steps=steps,
        lr_factor=lambda step: lr_factor(step, total),
        resume_key=resume_key(job.stage, job.section, seed, job.inputs, smoke),
        seed=seed,
        checkpoint_every=job.section.checkpoint_every,
        log_interval=job.params.runtime.log_interval,
        name=job.stage,
        full_steps=full,
        batch_sizes=batch_sizes,
    )

    def sampler(epoch: int) -> EpochSampler:
        size = batch_sizes[epoch]
        return EpochSampler(len(dataset), size, seed, dist.rank, dist.world_size, steps[epoch])

    loader = epoch_loader(dataset, sampler, job.workers, job.device)
    history = loop.run(loader, loss_fn, on_epoch_end)
    if before_save is not None:
        before_save()
    loop.finish(history, {"meta": meta, "state_dict": model.state_dict()}, MODEL)
    finish_distributed(dist)
    return history, total


def epoch_loader(
    dataset, sampler_for: Callable[[int], EpochSampler], workers: int, device: torch.device
) -> LoaderFn:
    """The Loop's loader: epoch E's DataLoader over DATASET with sampler_for(E), skipping the
    batches a resumed run already did."""

    def loader(epoch: int, skip_batches: int) -> DataLoader:
        dataset.set_epoch(epoch)
        sampler = sampler_for(epoch)
        sampler.set_epoch(epoch, skip_batches)
        return DataLoader(
            dataset,
            batch_size=sampler.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )

    return loader
