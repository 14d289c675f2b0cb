"""Where and how a stage computes: device choice, seeding, torchrun/DDP set-up, bf16 autocast.

Device-agnostic by construction: CUDA gets bf16 autocast, channels_last and pinned memory; CPU
runs in float32 and is deterministic for a seed.
"""

import contextlib
import platform
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from wsss.errors import WsssError
from wsss.launcher import Launch, launch


def init_distributed(device_kind: str) -> Launch:
    """Join the torchrun process group if launched by torchrun (NCCL on CUDA, gloo on CPU)."""
    place = launch()
    if place.world_size == 1:
        return Launch()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Launch(dist.get_rank(), dist.get_world_size(), place.local_rank)


def finish_distributed(d: Launch) -> None:
    if d.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise WsssError("params: runtime.device: cuda requested but no CUDA device is available")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what `platform` knows, or '')."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def describe(device: torch.device, world_size: int = 1) -> str:
    """For manifests: 'cpu:AVX512 (Intel(R) Xeon(R) Processor)' or 'cuda:NVIDIA H100 80GB HBM3';
    xN under torchrun. A CPU is named by the instruction set torch's kernels use and its model: both
    decide the float rounding (two AVX512 CPUs of different makers trained different models
    from the same seed), so CPU results are reproducible bytes only on the same kind."""
    if device.type == "cpu":
        model = cpu_model()
        name = f"cpu:{torch.backends.cpu.get_cpu_capability()}" + (f" ({model})" if model else "")
    else:
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{name} x{world_size}" if world_size > 1 else name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on CPU (float32 keeps CPU runs exact and reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def all_reduce_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average gradients over processes. Done by hand rather than with the DDP wrapper because a
    KTSE step runs the network several times (anchor, pair, erased, simulated) per backward."""
    if world_size == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.flatten() for p in params])  # one collective, not one per tensor
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def broadcast_parameters(module: torch.nn.Module, world_size: int) -> None:
    if world_size > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)
