"""The `pseudo_masks` artifact: per image `masks/<id>.png` (class ids, the pseudo-label) and
`confidence/<id>.png` (255 where the label is confident, 0 elsewhere), written by export_masks
and read by train_deeplab."""

from pathlib import Path

MASKS = "masks"
CONFIDENCE = "confidence"


def mask_file(artifact: Path, image_id: str) -> Path:
    return artifact / MASKS / f"{image_id}.png"


def confidence_file(artifact: Path, image_id: str) -> Path:
    return artifact / CONFIDENCE / f"{image_id}.png"
