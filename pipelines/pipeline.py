"""The wsss KFP v2 pipeline: the stages as components, GPU-scheduled on the cluster
(docs/design.md §4).

Every params.yaml section is a pipeline parameter (the section as JSON: exact numbers, and nulls,
which KFP's dict parameters refuse) whose default is the params file's section, so the compiled
YAML is self-contained. The training stages ask for `accelerator` x `gpus` (one process per GPU),
the inference stages for one (they run one process); each GPU stage asks for CPU and memory with
equal limits (the Guaranteed class: it keeps what it asked for), tolerations and a node selector,
all pipeline parameters too. Every task gets the S3 credentials from a Kubernetes Secret, a
dataset cache (`WSSS_CACHE_DIR`, set in the image: an emptyDir of at most `cache_size` per task,
or one PersistentVolumeClaim that the run's tasks and later runs share, so the dataset is
downloaded once) and retries; GPU tasks also get /dev/shm as a memory emptyDir for data-loader
workers. `start` + `imported` rerun the pipeline from one stage on artifacts
given by URI.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Model

import components
from pipelines import CACHE_SIZE, DEFAULT_ROOT
from wsss.config.params import Params
from wsss.errors import WsssError
from wsss.stages import PIPELINE

SECTIONS = (*(s.section for s in PIPELINE), "runtime", "smoke")
ARTIFACT_CLASSES = {
    "dataset": Dataset,
    "cam_model": Model,
    "cams": Artifact,
    "irn_model": Model,
    "pseudo_masks": Dataset,
    "seg_model": Model,
}
# The Secret's keys (k8s/base/s3-secret.yaml) -> the env wsss reads (wsss/artifacts/storage.py)
SECRET_KEYS = {
    "endpoint": "S3_ENDPOINT_URL",
    "access_key": "AWS_ACCESS_KEY_ID",
    "secret_key": "AWS_SECRET_ACCESS_KEY",
}
CACHE_MOUNT = "/cache"  # WSSS_CACHE_DIR in docker/Dockerfile.*
SHM_SIZE = "8Gi"  # data-loader workers' batches in shared memory (counts against the pod)
CPU_TASK = {"cpu": "2", "memory": "4Gi"}  # prepare_data: indexing and checking files
CLUSTER_DEFAULTS: dict[str, Any] = {
    "accelerator": "nvidia.com/gpu",
    "gpus": 1,
    "cpu_request": "8",
    "memory_request": "32Gi",
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "node_selector": {},
    "s3_secret": "wsss-s3",
}
# The knobs people change per run, as typed parameters (`<section>_<key>`) beside each training
# section's JSON; their default, empty or 0, means "as in the JSON", and a value overrides it.
KNOBS: dict[str, dict[str, type]] = {
    "train_cam": {"method": str, "epochs": int, "batch_size": int, "lr": float},
    "train_irn": {"epochs": int, "batch_size": int, "lr": float},
    "train_deeplab": {"epochs": int, "batch_size": int, "lr": float},
}
KNOB_DEFAULTS = {
    f"{section}_{key}": kind() for section, knobs in KNOBS.items() for key, kind in knobs.items()
}


def pipeline_arguments(params: Params, root: str = DEFAULT_ROOT) -> dict[str, Any]:
    """Every pipeline parameter: the params sections, the dataset root, the typed knobs (unset),
    the cluster settings."""
    sections = {s: getattr(params, s).model_dump_json() for s in SECTIONS}
    return {"root": root, **sections, **KNOB_DEFAULTS, **CLUSTER_DEFAULTS}


def upstream_kinds(start: str) -> list[str]:
    """The artifacts a run from stage START needs by URI: made before it, read from it on."""
    names = [s.name for s in PIPELINE]
    if start not in names:
        raise WsssError(f"--from: unknown stage '{start}' (expected one of: {', '.join(names)})")
    before = PIPELINE[: names.index(start)]
    made_before = [s.kind for s in before]
    read_later = {n for s in PIPELINE[names.index(start) :] for n in s.inputs}
    return [kind for kind in made_before if kind in read_later]


def build_pipeline(
    gpu_image: str,
    cpu_image: str,
    start: str | None = None,
    imported: dict[str, str] | None = None,
    cache_pvc: str | None = None,
    cache_size: str = CACHE_SIZE,
    caching: bool = True,
) -> Callable:
    """The pipeline function; with START, earlier stages are replaced by IMPORTED artifacts.
    CACHE_PVC names a ReadWriteMany claim mounted as every task's cache (default: emptyDirs of
    CACHE_SIZE); CACHING lets KFP reuse a task's outputs from an earlier identical run."""
    imported = dict(imported or {})
    stages = PIPELINE
    if start is not None:
        needed = upstream_kinds(start)
        for kind in needed:
            if kind not in imported:
                raise WsssError(f"--from {start}: needs --artifact {kind}=URI")
        for kind in imported:
            if kind not in needed:
                raise WsssError(
                    f"--artifact {kind}: not read when starting from {start} "
                    f"(it needs: {', '.join(needed) or 'nothing'})"
                )
        stages = stages[[s.name for s in stages].index(start) :]
    elif imported:
        raise WsssError("--artifact is only meaningful with --from STAGE")
    built = components.build(gpu_image, cpu_image)

    @dsl.pipeline(name="wsss", description="KTSE weakly supervised semantic segmentation")
    def wsss(
        root: str,
        dataset: str,
        train_cam: str,
        extract_seeds: str,
        train_irn: str,
        export_masks: str,
        train_deeplab: str,
        evaluate: str,
        runtime: str,
        smoke: str,
        train_cam_method: str,
        train_cam_epochs: int,
        train_cam_batch_size: int,
        train_cam_lr: float,
        train_irn_epochs: int,
        train_irn_batch_size: int,
        train_irn_lr: float,
        train_deeplab_epochs: int,
        train_deeplab_batch_size: int,
        train_deeplab_lr: float,
        accelerator: str,
        gpus: int,
        cpu_request: str,
        memory_request: str,
        tolerations: list,
        node_selector: dict,
        s3_secret: str,
    ) -> Artifact:
        sections = {
            "dataset": dataset,
            "train_cam": train_cam,
            "extract_seeds": extract_seeds,
            "train_irn": train_irn,
            "export_masks": export_masks,
            "train_deeplab": train_deeplab,
            "evaluate": evaluate,
        }
        given = locals()  # the knobs' parameters, by their `<section>_<key>` names
        knobs = {
            section: {key: given[f"{section}_{key}"] for key in keys}
            for section, keys in KNOBS.items()
        }
        produced = {}
        for kind, uri in imported.items():
            importer = dsl.importer(
                artifact_uri=uri, artifact_class=ARTIFACT_CLASSES[kind], reimport=False
            )
            produced[kind] = importer.set_display_name(f"import {kind}").output
        for stage in stages:
            args = {"root": root} if stage.name == "prepare_data" else {}
            args |= {name: produced[name] for name in stage.inputs if name in produced}
            args |= knobs.get(stage.section, {})
            task = built[stage.name](
                params=sections[stage.section], runtime=runtime, smoke=smoke, **args
            )
            task.set_display_name(stage.name)
            task.set_caching_options(caching)
            # Retries are for lost pods (preemption, node failure: the new pod waits for a node
            # anyway, so the backoff adds little there). KFP cannot skip them for an exit code,
            # and a bad input (exit 2) fails each attempt: short waits keep that to seconds.
            task.set_retry(num_retries=2, backoff_duration="5s", backoff_factor=2)
            kubernetes.use_secret_as_env(task, s3_secret, SECRET_KEYS)
            if cache_pvc:
                kubernetes.mount_pvc(task, pvc_name=cache_pvc, mount_path=CACHE_MOUNT)
            else:
                kubernetes.empty_dir_mount(task, "wsss-cache", CACHE_MOUNT, size_limit=cache_size)
            if stage.name in components.CPU_STAGES:
                task.set_cpu_request(CPU_TASK["cpu"]).set_cpu_limit(CPU_TASK["cpu"])
                task.set_memory_request(CPU_TASK["memory"]).set_memory_limit(CPU_TASK["memory"])
            else:
                task.set_accelerator_type(accelerator)
                task.set_accelerator_limit(gpus if stage.training else 1)
                task.set_cpu_request(cpu_request).set_cpu_limit(cpu_request)
                task.set_memory_request(memory_request).set_memory_limit(memory_request)
                kubernetes.add_toleration_json(task, tolerations)
                kubernetes.add_node_selector_json(task, node_selector)
                kubernetes.empty_dir_mount(
                    task, "dshm", "/dev/shm", medium="Memory", size_limit=SHM_SIZE
                )
            produced[stage.kind] = task.outputs[stage.kind]
        return produced[stages[-1].kind]

    return wsss
