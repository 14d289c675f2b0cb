"""The images built and run for real: a private dockerd (tests/dockerd.py), the CPU image built from
docker/Dockerfile.cpu on a local Debian base, one stage in it writing to SeaweedFS, the whole tiny
pipeline in containers under kfp.local's DockerRunner, and the CUDA Dockerfile built on the same
base (a machine without a GPU cannot run it, but a broken Dockerfile fails here).

They need root, Docker (Debian's docker.io) and debootstrap, which `.ci/run` installs; where they
are missing the tests skip and say so, unless WSSS_TEST_DOCKER=required (as in CI) makes it a
failure."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wsss
from tests.conftest import s3_env
from tests.dockerd import (
    DockerDaemon,
    LocalIndexes,
    claim_cache,
    import_base_image,
    missing_tools,
)
from tests.helpers import tiny_params
from tests.s3server import ACCESS_KEY, SECRET
from wsss.artifacts.opening import open_artifact

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CPU_IMAGE = "wsss:test-cpu"


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    missing = missing_tools() + ([] if os.geteuid() == 0 else ["root"])
    if missing:
        why = f"needs {', '.join(missing)} (Debian: apt-get install docker.io debootstrap)"
        if os.environ.get("WSSS_TEST_DOCKER") == "required":
            pytest.fail(why)
        pytest.skip(why)
    # images and layers persist outside the clone: a code change rebuilds only the last layers
    cache, lock = claim_cache(tmp_path_factory.mktemp("docker-cache"))
    daemon = DockerDaemon(cache, tmp_path_factory.mktemp("dockerd"))
    yield daemon.start()
    daemon.stop()
    if lock is not None:
        os.close(lock)
    else:  # this session's own layers (~14 GiB): nobody reuses them
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def build(daemon):
    """build(dockerfile, tag, **build_args): that image on the local base, timed into `built`."""
    base = import_base_image(daemon)
    indexes = LocalIndexes()
    revision = (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )

    def run(dockerfile: str, tag: str, **build_args: str) -> float:
        build_args = {"BASE": base, "WSSS_CODE_REVISION": revision, **build_args}
        if indexes.urls:
            build_args["PIP_EXTRA_INDEX_URL"] = " ".join(indexes.urls)
        args = ["build", "--network=host", f"--file={dockerfile}", f"--tag={tag}"]
        args += [f"--build-arg={name}={value}" for name, value in build_args.items()]
        started = time.monotonic()
        try:
            daemon.run(*args, ".", cwd=REPO, timeout=3600)
        except RuntimeError as failed:  # an image is ~7 GiB: a full disk is the usual cause
            free = shutil.disk_usage(daemon.cache).free / 2**30
            raise RuntimeError(f"{failed}\n{free:.1f} GiB free under {daemon.cache}") from None
        seconds = time.monotonic() - started
        print(f"built {tag} from {dockerfile} in {seconds:.0f} s")
        return seconds

    # the layers an earlier build left (its images retagged since), also where that session
    # was killed before its own prune: the shared cache holds one set of layers, not one a run
    daemon.run("image", "prune", "--force", check=False)
    yield run
    indexes.close()
    daemon.run("image", "prune", "--force", check=False)


@pytest.fixture(scope="session")
def cpu_image(build) -> str:
    build("docker/Dockerfile.cpu", CPU_IMAGE)
    return CPU_IMAGE


def _lock() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return dict(line.lower().split("==") for line in lines if "==" in line)


def test_the_cpu_image_holds_the_lock_and_runs_as_a_user(daemon, cpu_image):
    version = daemon.run("run", "--rm", cpu_image, "--version").stdout
    assert version.split() == ["wsss", wsss.__version__]
    assert daemon.run("run", "--rm", "--entrypoint=id", cpu_image, "-u").stdout.strip() == "1000"
    frozen = daemon.run(
        "run", "--rm", "--entrypoint=pip", cpu_image, "list", "--format=freeze"
    ).stdout
    installed = dict(line.lower().split("==") for line in frozen.splitlines() if "==" in line)
    lock = _lock()
    assert installed["wsss"] == wsss.__version__
    differing = {n: (v, installed.get(n)) for n, v in lock.items() if installed.get(n) != v}
    assert not {n for n in differing if not n.startswith(("nvidia-", "cuda-", "triton"))}
    revision = daemon.run("image", "inspect", "--format={{.Config.Env}}", cpu_image).stdout
    assert "WSSS_CODE_REVISION=unknown" not in revision


def test_a_stage_in_the_image_reads_and_writes_s3(daemon, cpu_image, s3, toy_root, cli):
    """prepare_data in a container: its dataset root and its artifact in the bucket, lineage
    read back from there; a bad input is one `error:` line and exit 2 there too."""
    root = s3.upload_tree(toy_root, "toyvoc")
    env = ["--env=S3_ENDPOINT_URL", "--env=AWS_ACCESS_KEY_ID", "--env=AWS_SECRET_ACCESS_KEY"]
    container = ["run", "--rm", "--network=host", *env, cpu_image]
    out = f"s3://{s3.bucket}/dataset"
    daemon.run(*container, "run", "prepare_data", "--in", f"root={root}", "--out", out)
    result = cli("lineage", out)
    assert result.code == 0 and f"root: {root}" in result.out, result.out
    assert "dataset <- prepare_data" in result.out
    bad = daemon.run(
        *container,
        "run",
        "prepare_data",
        "--in",
        f"root={root}-nope",
        "--out",
        f"{out}-2",
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    assert SECRET not in bad.stderr + bad.stdout


def test_the_tiny_pipeline_runs_in_containers(
    daemon, cpu_image, s3_server, toy_root, tmp_path, monkeypatch
):
    """`wsss-pipeline run-local --docker`: every task in the image (kfp.local's DockerRunner),
    the dataset root in SeaweedFS; the lineage of the final artifact leads back to the bucket."""
    s3 = s3_env(s3_server.endpoint, monkeypatch, tmp_path)
    root = s3.upload_tree(toy_root, "toyvoc")
    params = tiny_params(tmp_path / "params.yaml")
    env = daemon.env | {
        "S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    cmd = [
        str(BIN / "wsss-pipeline"),
        "run-local",
        "--docker",
        "--params",
        str(params),
        "--root",
        root,
        "--image",
        cpu_image,
        "--cpu-image",
        cpu_image,
        "--pipeline-root",
        str(tmp_path / "runs"),
    ]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    print(f"the tiny pipeline in containers: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Found image 'wsss:test-cpu'") == 7  # every task in the image
    final = Path(result.stdout.strip().splitlines()[-1].removeprefix("final artifact: "))
    evaluation = open_artifact(final, "evaluation")
    assert 0.0 <= evaluation.manifest.metrics["miou"] <= 1.0
    assert f"root: {root}" in result.stdout  # the lineage printed at the end
    assert all(p.stat().st_uid == os.getuid() for p in final.rglob("*"))  # this user's files


def test_run_local_docker_refuses_a_local_root(tmp_path, toy_root):
    result = subprocess.run(
        [
            str(BIN / "wsss-pipeline"),
            "run-local",
            "--docker",
            "--root",
            str(toy_root),
            "--pipeline-root",
            str(tmp_path / "runs"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "with --docker the dataset root is an s3:// URI" in result.stderr


def test_the_cuda_dockerfile_builds_on_the_local_base(build, daemon):
    """Both stages of docker/Dockerfile.cuda, with the local base for PyTorch's CUDA images: the
    lock (its CUDA torch from the index), wsss, the user; `wsss --version` runs (on the CPU)."""
    build("docker/Dockerfile.cuda", "wsss:test-cuda", BUILD_BASE="local/debian-python:bookworm")
    version = daemon.run("run", "--rm", "wsss:test-cuda", "--version").stdout
    assert version.split() == ["wsss", wsss.__version__]
