"""Dense CRF (Krähenbühl & Koltun) through pydensecrf2, for IR-label mining (docs/method.md
§5) and the optional test-time refinement of segmentation (docs/method.md §6)."""

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels

from wsss.config.crf import CrfParams


def _infer(unary: np.ndarray, image: np.ndarray, p: CrfParams) -> np.ndarray:
    n, (h, w) = unary.shape[0], image.shape[:2]
    crf = dcrf.DenseCRF2D(w, h, n)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(n, h * w), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=p.gaussian_sxy, compat=p.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=p.bilateral_sxy,
        srgb=p.bilateral_srgb,
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=p.bilateral_compat,
    )
    return np.asarray(crf.inference(p.iterations), dtype=np.float32).reshape(n, h, w)


def crf_labels(image: np.ndarray, labels: np.ndarray, n_labels: int, p: CrfParams) -> np.ndarray:
    """Refine a hard label map (H, W) with values < N_LABELS by the RGB uint8 IMAGE (H, W, 3)."""
    unary = unary_from_labels(labels, n_labels, gt_prob=p.gt_prob, zero_unsure=False)
    return _infer(unary.reshape(n_labels, *labels.shape), image, p).argmax(0)


def crf_probs(image: np.ndarray, probs: np.ndarray, p: CrfParams) -> np.ndarray:
    """Refine class probabilities (N, H, W) by the RGB uint8 IMAGE; returns the refined ones."""
    unary = -np.log(np.clip(probs, 1e-5, 1.0))
    return _infer(unary, image, p)
