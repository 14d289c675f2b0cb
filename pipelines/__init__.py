"""The KFP pipeline and the `wsss-pipeline` command (no ML code: it calls components)."""

DEFAULT_ROOT = "s3://datasets/VOC2012"  # the dataset root a compiled pipeline reads by default
# A task's cache holds its input artifacts and its output before the upload: VOC's largest
# (export_masks: the dataset, 16 GB of CAMs, the masks) needs ~20 GB (wsss estimate).
CACHE_SIZE = "64Gi"
