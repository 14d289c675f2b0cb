"""The `cams` artifact: per image `cams/<id>.npz` with the present classes' CAMs in the recipes
of CAM_ARRAYS and `keys`, their class ids (written by extract_seeds, whose docstring says how each
recipe is made)."""

from pathlib import Path

import numpy as np

from wsss.errors import WsssError

CAM_ARRAYS = ("cam", "irn_high_res", "irn_stride4")
CAMS = "cams"  # the folder of per-image files


def cam_file(artifact: Path, image_id: str) -> Path:
    return artifact / CAMS / f"{image_id}.npz"


def strided_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """The grid of a stride-STRIDE map of an image of SIZE: ceil(H / stride) x ceil(W / stride)."""
    return (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1


def read_cam(
    cams: Path, image_id: str, labels: tuple[int, ...], size: tuple[int, int], array: str = "cam"
):
    """(CAM (K, ., .) float32, keys (K,)) of one image from a `cams` artifact directory: ARRAY is
    one of CAM_ARRAYS. Checked against the image's labels and size (H, W); a mismatch is a
    one-line WsssError."""
    path = cam_file(cams, image_id)
    try:
        with np.load(path) as npz:
            cam, keys = npz[array].astype(np.float32), npz["keys"]
    except FileNotFoundError:
        raise WsssError(f"{path}: no CAM for image '{image_id}'") from None
    except (OSError, KeyError, ValueError) as exc:
        raise WsssError(f"{path}: not a CAM array file with '{array}' ({exc})") from None
    if sorted(keys.tolist()) != sorted(labels):
        raise WsssError(
            f"{path}: CAM classes {keys.tolist()} disagree with the image labels {sorted(labels)}"
        )
    grid = strided_size(size, 4) if array == "irn_stride4" else size
    if cam.shape != (len(keys), *grid):
        raise WsssError(
            f"{path}: {array} shape {cam.shape}, expected ({len(keys)}, {grid[0]}, {grid[1]})"
        )
    return cam, keys
