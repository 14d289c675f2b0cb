"""The KFP pipeline and the `wsss-pipeline` command (no ML code: it calls components)."""
