"""Image and label-map files: decoding that fails loudly, and palette PNG writing."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.data.classes import voc_palette
from wsss.errors import WsssError

_PALETTE = voc_palette().flatten().tolist()


def open_image(path: Path, data: bytes | None = None, what: str = "image") -> Image.Image:
    """A fully decoded Pillow image from PATH (or its bytes DATA); bad files are a WsssError."""
    try:
        img = Image.open(io.BytesIO(data) if data is not None else path)
        img.load()  # decodes every byte: a truncated file raises here
        return img
    except FileNotFoundError:
        raise WsssError(f"{path}: {what} file not found") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise WsssError(f"{path}: unreadable or truncated {what} ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 array (H, W, 3)."""
    return np.array(open_image(path).convert("RGB"))


def read_mask(path: Path, data: bytes | None = None) -> np.ndarray:
    """A label map (H, W) uint8 from a palette or grayscale PNG; colour PNGs are rejected."""
    img = open_image(path, data, "mask")
    if img.mode not in ("P", "L"):
        raise WsssError(f"{path}: expected a palette or grayscale label PNG, got mode {img.mode}")
    return np.array(img)


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Save a label map as a VOC-palette PNG (values are the class ids, 255 = ignore)."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    img = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    img.putpalette(_PALETTE)
    img.save(path)
