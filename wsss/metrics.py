"""The scores: mIoU, the one implementation every stage, benchmark and `wsss score` uses, and
the CAM classifier's multi-label mAP.

GT pixels equal to 255 are ignored. A prediction outside 0..N-1 (e.g. 255, "no decision") on a
valid GT pixel counts as a miss for the GT class and as nobody's false positive, so abstaining
never raises a score. mIoU averages over the classes whose union (GT or prediction) is non-empty.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsss.data.classes import IGNORE
from wsss.data.io import read_mask
from wsss.errors import WsssError


@dataclass
class ConfusionMatrix:
    """Rows: GT class; columns: predicted class, plus a last column for "no valid prediction"."""

    num_classes: int
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != GT shape {gt.shape}")
        gt = gt.astype(np.int64).ravel()
        pred = pred.astype(np.int64).ravel()
        valid = (gt != IGNORE) & (gt >= 0) & (gt < self.num_classes)
        gt, pred = gt[valid], pred[valid]
        pred = np.where((pred >= 0) & (pred < self.num_classes), pred, self.num_classes)
        n = self.num_classes + 1
        self.counts += np.bincount(gt * n + pred, minlength=self.num_classes * n).reshape(
            self.num_classes, n
        )

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN where the class appears in neither GT nor prediction."""
        tp = np.diag(self.counts[:, : self.num_classes]).astype(np.float64)
        union = self.counts.sum(axis=1) + self.counts[:, : self.num_classes].sum(axis=0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return (
            float(np.trace(self.counts[:, : self.num_classes]) / total) if total else float("nan")
        )

    def summary(self) -> dict:
        """JSON-ready: miou, per-class iou (null where the union is empty), pixel_acc."""
        return {
            "miou": self.miou(),
            "iou": [None if np.isnan(v) else float(v) for v in self.iou()],
            "pixel_acc": self.pixel_accuracy(),
        }


def spread_by_score(scores: dict[str, float], count: int) -> list[str]:
    """COUNT ids from best to worst score, evenly spaced over the ranking (best, median and
    worst among them): examples that show the range, not the first ids."""
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    if count >= len(ranked):
        return ranked
    if count <= 1:
        return ranked[:count]
    step = (len(ranked) - 1) / (count - 1)
    return [ranked[round(i * step)] for i in range(count)]


def images_to_show(ids: list[str], scores: dict[str, float], count: int) -> list[tuple[str, str]]:
    """COUNT (id, row label) pairs for a figure: spread over the per-image mIoU ranking where
    images were scored (labelled with their mIoU), else the first of IDS."""
    if not scores:
        return [(i, i) for i in ids[:count]]
    return [(i, f"{i}\nmIoU {100 * scores[i]:.0f}") for i in spread_by_score(scores, count)]


def image_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """One image's mIoU (the classes its prediction or GT holds)."""
    one = ConfusionMatrix(num_classes)
    one.update(pred, gt)
    return one.miou()


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Multi-label classification: the mean over classes with a positive of each class's average
    precision (scores ranked high to low; precision at each positive's rank, averaged). Unlike
    per-label accuracy it is not flattered by the many absent labels (VOC: 1.5 of 20 present)."""
    aps = []
    for score, truth in zip(scores.T, labels.T.astype(bool), strict=True):
        if not truth.any():
            continue
        hits = truth[np.argsort(-score, kind="stable")]
        ranks = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
    return float(np.mean(aps)) if aps else float("nan")


def score_directories(
    pred_dir: Path, gt_dir: Path, num_classes: int, ids: list[str] | None = None
) -> dict:
    """Score PNG label maps in PRED_DIR against the same names in GT_DIR (default: all GT PNGs)."""
    if not gt_dir.is_dir():
        raise WsssError(f"{gt_dir}: GT directory not found")
    if not pred_dir.is_dir():
        raise WsssError(f"{pred_dir}: prediction directory not found")
    if ids is None:
        ids = sorted(p.stem for p in gt_dir.glob("*.png"))
    if not ids:
        raise WsssError(f"{gt_dir}: no GT masks (*.png) to score")
    matrix = ConfusionMatrix(num_classes)
    for image_id in ids:
        pred_path, gt_path = pred_dir / f"{image_id}.png", gt_dir / f"{image_id}.png"
        if not pred_path.is_file():
            raise WsssError(f"{pred_path}: prediction missing for '{image_id}'")
        pred, gt = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != gt.shape:
            raise WsssError(
                f"{pred_path}: size {pred.shape[::-1]} differs from GT {gt.shape[::-1]}"
            )
        if (unknown := gt[(gt != IGNORE) & (gt >= num_classes)]).size:
            raise WsssError(
                f"{gt_path}: GT value {int(unknown[0])} is not a class of 0..{num_classes - 1} "
                "or 255 (--num-classes)"
            )
        matrix.update(pred, gt)
    return matrix.summary() | {"images": len(ids)}
