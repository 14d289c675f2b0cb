"""The KFP pipeline and the `wsss-pipeline` command (no ML code: it calls components)."""

DEFAULT_ROOT = "s3://datasets/VOC2012"  # the dataset root a compiled pipeline reads by default
# A task's cache holds its input artifacts and its output before the upload: VOC's largest
# (export_masks: the dataset, 16 GB of CAMs, the masks) needs ~20 GB (wsss estimate).
CACHE_SIZE = "64Gi"

# The Kubernetes settings the compiled YAML uses (kfp-kubernetes fields, as they appear in its
# platform spec) and the first KFP backend release whose kubernetes_executor_config.proto has
# each (kubeflow/pipelines' tags): an older backend's driver fails every task with `unknown field`
# (kubeflow/pipelines#12495). A test compiles the pipeline and finds every field it uses here.
PLATFORM_FIELDS_SINCE = {
    "pvcMount.constant": (2, 0, 0),
    "pvcMount.mountPath": (2, 0, 0),
    "secretAsEnv.keyToEnv": (2, 0, 0),
    "emptyDirMounts": (2, 3, 0),
    "nodeSelector.nodeSelectorJson": (2, 5, 0),
    "tolerations.tolerationJson": (2, 5, 0),
    "secretAsEnv.secretNameParameter": (2, 5, 0),
    "pvcMount.pvcNameParameter": (2, 5, 0),
    "secretAsEnv.optional": (2, 15, 0),
}
MIN_KFP_BACKEND = ".".join(map(str, max(PLATFORM_FIELDS_SINCE.values())))
