"""What a training stage keeps on disk: the model file a later stage loads (`model.pt`) and the
checkpoint a rerun resumes from, with the key that says which run made it. Loading a model needs
only this module, not the training loop."""

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel

from wsss.artifacts.manifest import Artifact
from wsss.config.params import SmokeParams, digest
from wsss.errors import WsssError, load_problem
from wsss.launcher import Launch

MODEL = "model.pt"  # what a training stage saves: its network's metadata and state dict


def resume_key(
    section: str, p: BaseModel, seed: int, inputs: dict, smoke: SmokeParams | None = None
) -> str:
    """What a checkpoint must have been made with to be resumed: the stage's params, the seed,
    the exact input artifacts (their manifest digests) and a smoke run's settings."""
    digests = {n: a.manifest_digest for n, a in inputs.items() if isinstance(a, Artifact)}
    key = {section: p.model_dump(mode="json"), "seed": seed, "inputs": digests}
    return digest(key | ({"smoke": smoke.model_dump()} if smoke and smoke.on else {}))


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_model_file(
    path: Path, build: Callable[[dict], torch.nn.Module], what: str, device: torch.device
) -> tuple[torch.nn.Module, dict]:
    """A stage's `{"meta", "state_dict"}` model file -> (network in eval mode on DEVICE,
    channels_last on CUDA; meta). Loaded with weights_only=True: a model file never runs pickled
    code. Anything unloadable is one line."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state_dict"]
        model = build(meta)
        model.load_state_dict(state)
    except WsssError:
        raise
    except Exception as exc:  # empty, torn, foreign, pickled code: any error is one line
        raise WsssError(f"{path}: not a loadable {what} checkpoint ({load_problem(exc)})") from None
    model = model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model, meta


def read_checkpoint(path: Path, key: str, dist: Launch) -> dict | None:
    """The checkpoint at PATH if this run can resume it: made with KEY by as many processes.
    An unreadable one (torn, foreign) is a warning and a start from scratch."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        matches = ckpt["resume_key"] == key and ckpt["world_size"] == dist.world_size
    except Exception as exc:  # a torn or foreign file: any error of any unpickler
        if dist.is_main:
            print(
                f"warning: {path}: unreadable checkpoint ({type(exc).__name__}); "
                "training from the start",
                file=sys.stderr,
                flush=True,
            )
        return None
    return ckpt if matches else None


def write_checkpoint(
    path: Path, state: dict, step: int, history: list[dict], key: str, dist: Launch
) -> None:
    """STATE (the model's and optimizer's state dicts) after STEP steps, resumable by KEY."""
    extra = {"step": step, "history": history, "resume_key": key, "world_size": dist.world_size}
    save_atomic(state | extra, path)
