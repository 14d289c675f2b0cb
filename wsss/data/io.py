"""Image and label-map files: reading and decoding that fail loudly, and palette PNG writing."""

import hashlib
import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.data.classes import voc_palette
from wsss.errors import WsssError

_PALETTE = voc_palette().flatten().tolist()


# The largest image wsss decodes (4096 x 4096): VOC and COCO images are below a megapixel, and
# multi-scale inference memory grows with the pixel count. It also stops decompression bombs
# (a small file that decodes to gigabytes) before they are decoded.
MAX_PIXELS = 4096 * 4096
# The smallest and the most elongated: a stage's smallest resize (a 0.25 inference scale, the
# shortest `long_side` of 8 px) must leave every side at least one pixel. VOC's and COCO's
# images are far inside both.
MIN_SIDE = 16
MAX_ASPECT = 8


def read_hashed(path: Path) -> tuple[bytes, tuple[str, int]]:
    """A file's bytes and its (sha256, size); an unreadable file is a WsssError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WsssError(f"{path}: cannot read ({exc.strerror})") from None
    return data, (hashlib.sha256(data).hexdigest(), len(data))


def _opened(path: Path, data: bytes | None, what: str) -> Image.Image:
    """The image's header (nothing decoded yet), refused above MAX_PIXELS."""
    try:
        img = Image.open(io.BytesIO(data) if data is not None else path)
    except FileNotFoundError:
        raise WsssError(f"{path}: {what} file not found") from None
    except Image.DecompressionBombError:
        raise WsssError(f"{path}: {what} too large (over {MAX_PIXELS} pixels)") from None
    except Image.UnidentifiedImageError:
        raise WsssError(f"{path}: unreadable {what} (not an image format Pillow reads)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise WsssError(f"{path}: unreadable {what} ({exc})") from None
    if img.width * img.height > MAX_PIXELS:
        raise WsssError(
            f"{path}: {what} of {img.width} x {img.height} pixels is over the limit of "
            f"{MAX_PIXELS} (4096 x 4096); resize it first"
        )
    short, long = sorted(img.size)
    if what == "image" and (short < MIN_SIDE or long > MAX_ASPECT * short):
        raise WsssError(
            f"{path}: {what} of {img.width} x {img.height} pixels; every stage needs a side of at "
            f"least {MIN_SIDE} and at most {MAX_ASPECT} times the other"
        )
    return img


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the header only, with open_image's checks."""
    with _opened(path, None, "image") as img:
        return img.size


def open_image(path: Path, data: bytes | None = None, what: str = "image") -> Image.Image:
    """A fully decoded Pillow image from PATH (or its bytes DATA); bad files are a WsssError."""
    img = _opened(path, data, what)
    try:
        img.load()  # decodes every byte: a truncated file raises here
        return img
    except (OSError, ValueError, SyntaxError) as exc:
        raise WsssError(f"{path}: unreadable or truncated {what} ({exc})") from None


def read_image(path: Path, data: bytes | None = None) -> np.ndarray:
    """An RGB uint8 array (H, W, 3) from PATH (or its bytes DATA)."""
    return np.array(open_image(path, data).convert("RGB"))


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


@contextmanager
def replaced_whole(target: Path) -> Iterator[Path]:
    """An empty directory beside TARGET that replaces it by one rename when the block ends: a
    reader sees the old TARGET or the new one, never half of it. On an error or a signal the
    directory goes and TARGET is left as it was."""
    staging, old = (target.with_name(f".{target.name}.{s}") for s in ("partial", "old"))
    for leftover in (staging, old):  # of a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
