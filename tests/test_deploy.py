"""Deployment files read statically: the images agree with the lock file and the pipeline, and the
k8s manifests validate strictly, offline (no cluster here). tests/test_images.py builds and runs
the images."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from minio import Minio

from pipelines.pipeline import CACHE_MOUNT, CLUSTER_DEFAULTS, SECRET_KEYS
from tests.s3server import ACCESS_KEY, SECRET, _weed

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))
K8S = REPO / "k8s"


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def _arg(dockerfile: str, name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", dockerfile, re.M).group(1)


def test_cuda_image_base_matches_the_lock():
    text = (REPO / "docker" / "Dockerfile.cuda").read_text()
    lock = _lock()
    assert _arg(text, "TORCH") == lock["torch"]
    cuda_major = lock["nvidia-cuda-runtime"].split(".")[0]
    assert _arg(text, "CUDA").split(".")[0] == cuda_major
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BUILD_BASE}", "${BASE}"]
    assert _arg(text, "BUILD_BASE") == "pytorch/pytorch:${TORCH}-cuda${CUDA}-cudnn${CUDNN}-devel"
    assert _arg(text, "BASE") == "pytorch/pytorch:${TORCH}-cuda${CUDA}-cudnn${CUDNN}-runtime"


def test_cpu_image_python_and_filtered_lock():
    text = (REPO / "docker" / "Dockerfile.cpu").read_text()
    header = (REPO / "requirements.lock").read_text().splitlines()[0]
    python = re.search(r"python (\d+\.\d+)", header).group(1)
    assert re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", _arg(text, "BASE")).group(1) == python
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]
    pattern = re.search(r"grep -vE '([^']+)' requirements.lock", text).group(1)
    kept = [name for name in _lock() if not re.match(pattern, f"{name}==")]
    dropped = set(_lock()) - set(kept)
    assert {"torch", "torchvision", "kfp", "minio"} <= set(kept)
    assert dropped and all(n.startswith(("nvidia-", "cuda-", "triton")) for n in dropped)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_the_lock_and_run_as_a_user(dockerfile):
    text = dockerfile.read_text()
    assert "requirements.lock" in text and "pip install --no-deps /dist/wsss-" in text
    assert "grep '^pydensecrf2==' requirements.lock" in text  # built at the locked version
    assert "pydensecrf2==" in (REPO / "requirements.lock").read_text()
    for package in ("wsss", "pipelines", "components"):
        assert f"COPY {package} {package}" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'HEALTHCHECK --interval=5m --timeout=30s CMD ["wsss", "--help"]' in text
    assert 'ENTRYPOINT ["wsss"]' in text
    assert f"WSSS_CACHE_DIR={CACHE_MOUNT}" in text  # the pipeline mounts its emptyDir there
    for root in ("/gcs", "/minio", "/s3", CACHE_MOUNT):  # KFP's launcher writes under these
        assert root in re.search(r"mkdir -p ([^\n\\&]+)", text).group(1).split()


def test_docker_context_holds_what_the_images_copy():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:6] == [
        "!requirements.lock",
        "!pyproject.toml",
        "!README.md",
        "!wsss/",
        "!pipelines/",
        "!components/",
    ]


def test_the_healthcheck_command_works():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "wsss"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: wsss" in result.stdout


# --- k8s ---------------------------------------------------------------------------------------


BASE = K8S / "base"
VARIANTS = {"standalone": "kubeflow", "multi-user": "kubeflow-user-example-com"}


def _resources() -> list[tuple[str, dict]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [(name, d) for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return docs


def test_the_base_lists_every_manifest_and_each_variant_builds_on_it():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert "namespace" not in kustomization  # each variant names its own
    assert {p.name for p in K8S.iterdir()} == {"base", *VARIANTS}
    for variant, namespace in VARIANTS.items():
        overlay = yaml.safe_load((K8S / variant / "kustomization.yaml").read_text())
        assert overlay["resources"] == ["../base"] and overlay["namespace"] == namespace


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r[0]}:{r[1]['kind']}")
def test_manifest_validates_strictly(resource):
    _, doc = resource
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_strict_validation_catches_a_typo():
    deployment = next(d for _, d in _resources() if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_renders_into_the_namespace_where_kfp_runs_its_pods(variant):
    """kubectl's kustomize renders the variant: every object in the namespace where that KFP
    runs a pipeline's pods (so its launcher finds the ConfigMap and its tasks the Secret), none
    of them that namespace itself (KFP's or the Profile's: never created, never deleted by
    `kubectl delete -k`), each valid; the container defaults only where they cannot reach KFP's
    own pods; SeaweedFS and its Job outside Istio's mesh (multi-user Kubeflow injects sidecars)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("needs kubectl (its built-in kustomize renders the variants)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S / variant)], capture_output=True, text=True, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    assert "Namespace" not in {d["kind"] for d in docs}
    assert {d["metadata"]["namespace"] for d in docs} == {VARIANTS[variant]}
    assert {d["kind"] for d in docs} >= {"Secret", "ConfigMap", "Deployment", "Service", "Job"}
    assert ("LimitRange" in {d["kind"] for d in docs}) == (variant != "standalone")
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            annotations = doc["spec"]["template"]["metadata"]["annotations"]
            assert annotations["sidecar.istio.io/inject"] == "false"


def test_secret_launcher_and_pipeline_agree():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _resources()}
    secret = docs[("Secret", CLUSTER_DEFAULTS["s3_secret"])]
    assert set(secret["stringData"]) == set(SECRET_KEYS)  # what tasks read as env
    launcher = docs[("ConfigMap", "kfp-launcher")]["data"]
    assert launcher["defaultPipelineRoot"].startswith("s3://")
    s3 = yaml.safe_load(launcher["providers"])["s3"]["default"]
    ref = s3["credentials"]["secretRef"]
    assert ref["secretName"] == CLUSTER_DEFAULTS["s3_secret"]
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(secret["stringData"])
    service = docs[("Service", "seaweedfs")]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "s3")
    host = f"seaweedfs:{port}"  # the Service in the pods' own namespace, whichever it is
    assert s3["endpoint"] == host and secret["stringData"]["endpoint"] == f"http://{host}"


def _seaweedfs_docs() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((BASE / "seaweedfs.yaml").read_text())}


def test_the_seaweedfs_identity_script_writes_the_secrets_keys(tmp_path):
    """The init container's script, run here: valid JSON holding the Secret's two keys."""
    init = _seaweedfs_docs()["Deployment"]["spec"]["template"]["spec"]["initContainers"][0]
    script = init["args"][0].replace("/config/", f"{tmp_path}/")
    env = os.environ | {"ACCESS_KEY": "key-1_a", "SECRET_KEY": "secret-2_b"}
    subprocess.run(["sh", "-ec", script], env=env, check=True)
    config = json.loads((tmp_path / "s3.json").read_text())
    assert config["identities"][0]["credentials"] == [
        {"accessKey": "key-1_a", "secretKey": "secret-2_b"}
    ]


@pytest.mark.slow
def test_the_bucket_job_makes_both_buckets_and_a_rerun_keeps_them(own_s3_server, tmp_path):
    """The Job's script against a real SeaweedFS (loopback): `weed shell` creates the buckets;
    run again (a retried Job), it succeeds and changes nothing."""
    job = _seaweedfs_docs()["Job"]["spec"]["template"]["spec"]["containers"][0]
    ports = own_s3_server.ports
    master = f"127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}"
    script = job["args"][0].replace("seaweedfs:9333", master)
    env = os.environ | {"PATH": f"{Path(_weed()).parent}:{os.environ['PATH']}"}
    for _ in range(2):
        done = subprocess.run(
            ["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    client = Minio(
        own_s3_server.endpoint.removeprefix("http://"),
        ACCESS_KEY,
        SECRET,
        secure=False,
        region="us-east-1",
    )
    assert {b.name for b in client.list_buckets()} == {"wsss", "datasets"}
