"""wsss: weakly supervised semantic segmentation from image-level labels (KTSE, end to end)."""

__version__ = "0.1.0"
