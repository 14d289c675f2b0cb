"""IR labels: confident foreground, confident background and "unknown" from CAMs
(docs/method.md §5).

fg = CRF(argmax[fg_threshold; CAMs]); bg = the same with bg_threshold (lower, so more pixels
count as foreground and fewer as background). A pixel is its fg class where fg says a class,
background where both say background, 255 (unknown, no IRN pair uses it) elsewhere.
"""

import numpy as np
import torch

from wsss.config.crf import CrfParams
from wsss.data.classes import IGNORE
from wsss.refine.crf import crf_labels


def threshold_labels(cam: np.ndarray, threshold: float) -> np.ndarray:
    """argmax over [threshold; CAM] for a (K, H, W) CAM: 0 background, k + 1 the k-th channel."""
    bg = np.full((1, *cam.shape[1:]), threshold, dtype=np.float32)
    return np.concatenate([bg, cam.astype(np.float32)]).argmax(0)


def ir_label(
    image: np.ndarray,
    cam: np.ndarray,
    keys: np.ndarray,
    fg_threshold: float,
    bg_threshold: float,
    crf: CrfParams | None,
) -> np.ndarray:
    """(H, W) uint8 IR label of one image: class ids c + 1 of KEYS (dataset class c), 0, 255.

    IMAGE (H, W, 3) uint8; CAM (K, H, W) in [0, 1]; CRF None: the thresholded maps as they are.
    """
    ids = np.concatenate([[0], np.asarray(keys) + 1]).astype(np.uint8)

    def mined(threshold: float) -> np.ndarray:
        labels = threshold_labels(cam, threshold)
        if crf is not None:
            labels = crf_labels(image, labels, len(ids), crf)
        return ids[labels]

    fg, bg = mined(fg_threshold), mined(bg_threshold)
    label = fg.copy()
    label[fg == 0] = IGNORE
    label[(fg == 0) & (bg == 0)] = 0
    return label


def confidence_mask(scores: torch.Tensor) -> torch.Tensor:
    """(K+1, H, W) scores -> bool (H, W): per predicted class (background included) the
    floor(n/2) pixels of its n with the largest top-1 - top-2 margin (docs/method.md §5,
    gen_mask)."""
    if scores.shape[0] > 1:
        top = scores.topk(2, dim=0).values
        margin = top[0] - top[1]
    else:
        margin = scores[0]
    pred = scores.argmax(0)
    keep = torch.zeros_like(pred, dtype=torch.bool)
    for c in pred.unique():
        where = (pred == c).flatten().nonzero().flatten()
        k = len(where) // 2
        if k:
            best = margin.flatten()[where].topk(k).indices
            keep.view(-1)[where[best]] = True
    return keep
