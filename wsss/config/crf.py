"""The dense CRF's settings (wsss.refine.crf runs it): IR-label mining and evaluate's optional
test-time refinement share them."""

from pydantic import Field

from wsss.config.fields import Section


class CrfParams(Section):
    """One fully connected CRF: a Gaussian (smoothness) and a bilateral (appearance) kernel."""

    iterations: int = Field(default=10, ge=1, le=100)
    gt_prob: float = Field(default=0.7, gt=0, lt=1)  # unary confidence of a hard label
    gaussian_sxy: float = Field(default=3, gt=0)
    gaussian_compat: float = Field(default=3, ge=0)
    bilateral_sxy: float = Field(default=50, gt=0)
    bilateral_srgb: float = Field(default=5, gt=0)
    bilateral_compat: float = Field(default=10, ge=0)
