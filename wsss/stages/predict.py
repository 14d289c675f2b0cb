"""predict (`wsss predict`): a `seg_model` applied to a folder of new images -> `predictions`.

For every decodable image in the folder (sorted by name, not recursive): `masks/<stem>.png`, the
label map in the VOC palette, and with `predict.overlays` `overlays/<stem>.png`, the image blended
with its predicted colours (one folder per kind: no image name can make two outputs collide).
Inference is evaluate's (scales, flip, merge, CRF). A file that is not a
decodable image is skipped with one `warning:` line on stderr; a folder without any image is an
error.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from wsss.config.params import Params
from wsss.data.classes import voc_palette
from wsss.data.io import read_image, write_mask
from wsss.data.transforms import eval_transforms
from wsss.errors import WsssError
from wsss.inference import predict_batch
from wsss.kinds.seg_model import load_seg_model
from wsss.progress import track
from wsss.runtime import describe, resolve_device


def _images(folder: Path) -> list[tuple[Path, np.ndarray]]:
    if not folder.is_dir():
        raise WsssError(f"{folder}: not a directory of images")
    found = []
    for path in sorted(f for f in folder.iterdir() if f.is_file()):
        try:
            found.append((path, read_image(path)))
        except WsssError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
    if not found:
        raise WsssError(f"{folder}: no decodable image in the folder")
    stems = [p.stem for p, _ in found]
    if len(set(stems)) != len(stems):
        raise WsssError(f"{folder}: two images share a name stem; outputs would collide")
    return found


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    device = resolve_device(params.runtime.device)
    model, _ = load_seg_model(inputs["seg_model"], device)
    to_tensor = eval_transforms()
    palette = voc_palette()
    images = _images(Path(inputs["images"]))[: params.smoke.images]
    for sub in ("masks", "overlays") if params.predict.overlays else ("masks",):
        (out / sub).mkdir()
    for [(path, rgb)] in track(([image] for image in images), len(images), "predict"):
        tensor = to_tensor(tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1)))
        pred = predict_batch(model, tensor[None].to(device), [rgb], params.evaluate)[0]
        write_mask(out / "masks" / f"{path.stem}.png", pred)
        if params.predict.overlays:
            blend = (0.5 * rgb + 0.5 * palette[pred]).astype(np.uint8)
            Image.fromarray(blend).save(out / "overlays" / f"{path.stem}.png")
    return {"images": float(len(images))}, describe(device)
