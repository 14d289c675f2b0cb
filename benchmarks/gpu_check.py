"""GPU readiness of the VOC preset, in one short run on one GPU (about 10 minutes on an H100):

1. the VOC smoke run (benchmarks.real_preset: real-size images, the preset's networks, crops,
   batch sizes 16/32/16, four scales + flip, CRF; random weights) on CUDA, where the training
   loop runs bf16 autocast and channels_last: each stage's peak memory against the card's, its
   throughput, and `wsss estimate`'s full-run projection;
2. bf16 vs fp32: each trained network's outputs on one real-size image, the largest difference
   relative to the fp32 output's largest magnitude;
3. torchrun with NCCL at world size 1: a process group, an all-reduce, a barrier.

    python -m benchmarks.gpu_check [--images 4] [--cpu-budget]

On the lent device machine (Python 3.12, torch preinstalled, no pydantic): carry the wheels of
what requirements.lock pins beyond torch (docs: the cluster guide) and run this module. On a
machine without CUDA it runs on CPU (a check of the script, not of a GPU). Writes
benchmarks/results/gpu_check.json.
"""

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from benchmarks.common import run_benchmark, write_json
from benchmarks.real_preset import smoke_run
from wsss.artifacts.opening import open_artifact
from wsss.data.transforms import eval_transforms
from wsss.kinds.cam_model import load_cam_model
from wsss.kinds.irn_model import load_irn_model
from wsss.kinds.seg_model import load_seg_model

LOADERS = {"cam_model": load_cam_model, "irn_model": load_irn_model, "seg_model": load_seg_model}


def _tensors(output: Any) -> list[torch.Tensor]:
    """Every floating tensor in a network's output (a tensor, a tuple, a dataclass)."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if dataclasses.is_dataclass(output):
        output = [getattr(output, f.name) for f in dataclasses.fields(output)]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, list | tuple):
        return [t for item in output for t in _tensors(item)]
    return []


@torch.no_grad()
def precision_agreement(artifacts: Path, device: torch.device) -> dict[str, float]:
    """Per trained network: max |bf16 - fp32| / max |fp32| over its outputs, one 500x375 image
    (on CPU a 64x48 one: bf16 convolutions without hardware support take many minutes there)."""
    size = (375, 500) if device.type == "cuda" else (48, 64)
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    image = eval_transforms()(tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1)))
    image = image[None].to(device)
    if device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
    agreement = {}
    for kind, load in LOADERS.items():
        model, _ = load(open_artifact(artifacts / kind, kind), device)
        exact = _tensors(model(image))
        with torch.autocast(device.type, dtype=torch.bfloat16):  # the training loop's on CUDA
            low = _tensors(model(image))
        scale = max(t.abs().max().item() for t in exact) or 1.0
        worst = max(
            (a.float() - b.float()).abs().max().item() for a, b in zip(exact, low, strict=True)
        )
        agreement[kind] = worst / scale
    return agreement


def nccl_probe() -> None:
    """Run under torchrun: NCCL (gloo without CUDA) process group, all-reduce, barrier."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else None
    torch.distributed.init_process_group(backend, device_id=device)
    value = torch.ones(1, device=device or "cpu")
    torch.distributed.all_reduce(value)
    torch.distributed.barrier()
    world = torch.distributed.get_world_size()
    torch.distributed.destroy_process_group()
    assert value.item() == world
    print(f"{backend} ok: world size {world}, all-reduce {value.item():.0f}")


def torchrun_check() -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "benchmarks.gpu_check",
        "--nccl-probe",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return {"exit": done.returncode, "output": (done.stdout + done.stderr).strip()[-500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images per split of the smoke")
    parser.add_argument("--cpu-budget", action="store_true", help="see benchmarks.real_preset")
    parser.add_argument("--nccl-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nccl_probe:
        nccl_probe()
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_properties(0) if device.type == "cuda" else None
    result: dict[str, Any] = {
        "device": card.name if card else "cpu",
        "card_bytes": card.total_memory if card else None,
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["smoke"] = smoke_run(
            Path(tmp), "voc", args.images, args.cpu_budget, device=device.type
        )
        result["bf16_vs_fp32"] = precision_agreement(Path(tmp) / "artifacts", device)
    result["torchrun"] = torchrun_check()
    for stage, record in result["smoke"]["stages"].items():
        peak = record["peak_memory"].get("cuda", record["peak_memory"]["cpu_rss"])
        share = f" ({peak / card.total_memory:.0%} of the card)" if card else ""
        rates = ", ".join(f"{p['seconds_per_unit']:.3f} s/{p['unit']}" for p in record["phases"])
        print(f"{stage:<14} peak {peak / 1e9:.1f} GB{share}  {rates}")
    for kind, error in result["bf16_vs_fp32"].items():
        print(f"bf16 vs fp32 {kind}: {error:.2e}")
    print(f"torchrun: exit {result['torchrun']['exit']}: {result['torchrun']['output']}")
    name = "gpu_check" if card else "gpu_check_cpu"  # a CPU run checks the script, not a GPU
    print(f"written {write_json(name, result)}")


if __name__ == "__main__":
    run_benchmark(main)
