"""The KFP pipeline and the `wsss-pipeline` command (no ML code: it calls components)."""

DEFAULT_ROOT = "s3://datasets/VOC2012"  # the dataset root a compiled pipeline reads by default
