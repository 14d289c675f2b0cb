"""The KFP pipeline: what the compiled YAML asks of the cluster, the whole pipeline under
kfp.local on a tiny ToyVOC with its lineage, a rerun from one stage with imported artifacts,
submission through kfp.Client, and bad input to the command and the components."""

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from pipelines import MIN_KFP_BACKEND, PLATFORM_FIELDS_SINCE
from pipelines import cli as pipeline_cli
from pipelines.pipeline import CLUSTER_DEFAULTS, KNOBS, SECTIONS
from tests.helpers import TINY_CAM, tiny_params
from wsss.artifacts.opening import open_artifact
from wsss.component import run_component
from wsss.config.params import load_params
from wsss.stages import PIPELINE

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
GPU_STAGES = [s.name for s in PIPELINE if s.name != "prepare_data"]


def _pipeline(*args: str | Path) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "wsss-pipeline"), *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


IMAGES = ("--image", "reg/wsss:cuda", "--cpu-image", "reg/wsss:cpu")


def _voc_on_s3(tmp_path: Path) -> Path:
    """params/voc.yaml with its weights uploaded, as the cluster guide says to make it."""
    params = yaml.safe_load((REPO / "params" / "voc.yaml").read_text())
    for section in ("train_cam", "train_irn", "train_deeplab"):
        params[section]["weights"] = f"s3://wsss/{params[section]['weights']}"
    path = tmp_path / "voc_s3.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _compile(tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    out = tmp_path / "pipeline.yaml"
    result = _pipeline(
        "compile", "--out", out, "--params", REPO / "params.yaml", *IMAGES, "--allow-toy", *extra
    )
    assert result.returncode == 0, result.stderr
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compiled_pipeline_asks_for_gpus_secrets_and_caching(tmp_path):
    spec, k8s = _compile(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    assert sorted(tasks) == sorted(s.name.replace("_", "-") for s in PIPELINE)
    for stage in PIPELINE:
        name = stage.name.replace("_", "-")
        task, container = tasks[name], executors[f"exec-{name}"]["container"]
        assert task["cachingOptions"] == {"enableCache": True}
        assert task["retryPolicy"]["maxRetryCount"] == 2
        knobs = KNOBS.get(stage.section, {})
        given = task["inputs"]["parameters"]
        for key in knobs:  # each typed knob reaches its stage from the run's parameter
            assert given[key] == {"componentInputParameter": f"{stage.section}_{key}"}
        assert "kfp.dsl.executor_main" in container["command"][2]
        assert "pip install" not in container["command"][2]  # kfp comes with our image
        assert "wsss.component" in container["command"][3]  # the stage's one call
        platform = k8s[f"exec-{name}"]
        secret = platform["secretAsEnv"][0]
        assert secret["secretNameParameter"] == {"componentInputParameter": "s3_secret"}
        assert {e["envVar"] for e in secret["keyToEnv"]} == {
            "S3_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        }
        mounts = {m["mountPath"]: m for m in platform["emptyDirMounts"]}
        gpu = stage.name in GPU_STAGES
        assert container["image"] == ("reg/wsss:cuda" if gpu else "reg/wsss:cpu")
        assert ("accelerator" in container["resources"]) == gpu
        assert ("tolerations" in platform) == gpu and ("nodeSelector" in platform) == gpu
        assert ("/dev/shm" in mounts) == gpu and "/cache" in mounts
        resources = container["resources"]
        for what in ("Cpu", "Memory"):  # limits beside requests: the Guaranteed class
            assert resources[f"resource{what}Limit"] == resources[f"resource{what}Request"]
        assert mounts["/cache"]["sizeLimit"] == "64Gi"
        if gpu:
            accel = resources["accelerator"]
            # a training stage runs a process per GPU, an inference stage one process
            gpus = "pipelinechannel--gpus" if stage.training else "1"
            assert gpus in accel["resourceCount"]
            assert "pipelinechannel--accelerator" in accel["resourceType"]
            assert mounts["/dev/shm"]["medium"] == "Memory" and mounts["/dev/shm"]["sizeLimit"]
            assert platform["tolerations"] == [
                {"tolerationJson": {"componentInputParameter": "tolerations"}}
            ]
    # every params section is a parameter whose default is the params file's section
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    params = load_params(REPO / "params.yaml")
    for section in SECTIONS:
        default = json.loads(inputs[section]["defaultValue"])
        assert default == getattr(params, section).model_dump(mode="json")
    assert inputs["tolerations"]["defaultValue"] == CLUSTER_DEFAULTS["tolerations"]
    assert inputs["root"]["defaultValue"] == "s3://datasets/VOC2012"


def test_no_cache_and_cache_size_reach_every_task(tmp_path):
    spec, k8s = _compile(tmp_path, "--no-cache", "--cache-size", "500Gi")
    for stage in PIPELINE:
        name = stage.name.replace("_", "-")
        assert spec["root"]["dag"]["tasks"][name]["cachingOptions"] == {}  # caching off
        mounts = {m["mountPath"]: m for m in k8s[f"exec-{name}"]["emptyDirMounts"]}
        assert mounts["/cache"]["sizeLimit"] == "500Gi"
    bad = _pipeline("compile", "--out", tmp_path / "p.yaml", "--cache-size", "lots")
    assert bad.returncode == 2 and "expected a Kubernetes quantity" in bad.stderr


def test_one_params_file_compiles_to_the_same_bytes_every_time(tmp_path):
    """Three processes (protobuf's map order differs between them: the header's `tolerations`
    default came out in three orders in four compiles before the header was sorted)."""
    params = _voc_on_s3(tmp_path)
    outputs = []
    for run in range(3):
        out = tmp_path / f"pipeline-{run}.yaml"
        result = _pipeline("compile", "--out", out, "--params", params, *IMAGES)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    header = outputs[0].decode().split("\npipelineInfo", 1)[0]
    assert "#    tolerations: list [Default: [{'effect': 'NoSchedule', 'key'" in header


def test_local_weights_with_an_s3_root_are_refused(tmp_path):
    out = tmp_path / "p.yaml"
    refused = _pipeline("compile", "--out", out, "--params", REPO / "params" / "voc.yaml", *IMAGES)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert (
        "train_cam.weights pretrained/ilsvrc" in refused.stderr and "no pod has" in refused.stderr
    )
    assert not out.exists()


def test_a_cache_pvc_replaces_every_tasks_cache_emptydir(tmp_path):
    _, k8s = _compile(tmp_path, "--cache-pvc", "wsss-cache")
    for stage in PIPELINE:
        platform = k8s[f"exec-{stage.name.replace('_', '-')}"]
        (pvc,) = platform["pvcMount"]
        assert pvc["mountPath"] == "/cache" and pvc["pvcNameParameter"]["runtimeValue"] == {
            "constant": "wsss-cache"
        }
        assert "/cache" not in {m["mountPath"] for m in platform.get("emptyDirMounts", [])}


def test_compile_smoke_sets_the_smoke_parameter_and_every_task_takes_it(tmp_path):
    spec, _ = _compile(tmp_path, "--smoke", "3")
    default = spec["root"]["inputDefinitions"]["parameters"]["smoke"]["defaultValue"]
    assert json.loads(default) == {"images": 3, "steps": 2}
    for name, task in spec["root"]["dag"]["tasks"].items():
        given = task["inputs"]["parameters"]["smoke"]["componentInputParameter"]
        assert given == "smoke", name


def test_compile_from_a_stage_imports_its_upstream_artifacts(tmp_path):
    spec, _ = _compile(
        tmp_path,
        "--from",
        "train_irn",
        "--artifact",
        "dataset=s3://bkt/run/dataset",
        "--artifact",
        "cams=s3://bkt/run/cams",
        "--no-artifact-check",
    )
    tasks = spec["root"]["dag"]["tasks"]
    ran = sorted(t for t in tasks if not t.startswith("importer"))
    assert ran == ["evaluate", "export-masks", "train-deeplab", "train-irn"]
    uris = {
        spec["deploymentSpec"]["executors"][f"exec-{t}"]["importer"]["artifactUri"]["constant"]
        for t in tasks
        if t.startswith("importer")
    }
    assert uris == {"s3://bkt/run/dataset", "s3://bkt/run/cams"}


def test_a_from_artifact_of_the_wrong_kind_is_refused_before_the_run(dataset_artifact, tmp_path):
    out = tmp_path / "p.yaml"
    args = ["--from", "train_irn", "--artifact", f"dataset={dataset_artifact}"]
    wrong = _pipeline("compile", "--out", out, *args, "--artifact", f"cams={dataset_artifact}")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "--artifact cams=" in wrong.stderr and "of kind 'dataset'" in wrong.stderr
    missing = _pipeline("compile", "--out", out, *args, "--artifact", f"cams={tmp_path}")
    assert missing.returncode == 2 and "no manifest.json" in missing.stderr
    assert "--no-artifact-check" in missing.stderr and not out.exists()


def test_toy_params_with_a_real_dataset_root_are_refused_and_bare_images_warned(tmp_path):
    out = tmp_path / "p.yaml"
    refused = _pipeline("compile", "--out", out, "--params", REPO / "params.yaml")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert (
        "train_cam.backbone, train_irn.backbone, train_deeplab.backbone is a toy network"
        in refused.stderr
    )
    assert not out.exists()
    allowed = _pipeline("compile", "--out", out, "--params", REPO / "params.yaml", "--allow-toy")
    assert allowed.returncode == 0 and out.exists(), allowed.stderr
    assert "warning: --image wsss:" in allowed.stderr and "warning: --cpu-image" in allowed.stderr
    voc = _pipeline("compile", "--out", out, "--params", _voc_on_s3(tmp_path), *IMAGES)
    assert voc.returncode == 0 and "warning" not in voc.stderr, voc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "train_irn", "--artifact", "dataset=s3://bkt/d"], "needs --artifact cams=URI"),
        (["--from", "nope"], "--from: unknown stage 'nope'"),
        (["--artifact", "cams=s3://bkt/c"], "only meaningful with --from"),
        (
            [
                "--from",
                "evaluate",
                "--artifact",
                "dataset=s3://bkt/d",
                "--artifact",
                "seg_model=s3://bkt/s",
                "--artifact",
                "cams=s3://bkt/c",
            ],
            "--artifact cams: not read when starting from evaluate",
        ),
        (["--params", "missing.yaml"], "missing.yaml: params file not found"),
    ],
)
def test_bad_pipeline_arguments(tmp_path, args, message):
    result = _pipeline("compile", "--out", tmp_path / "p.yaml", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.slow
def test_a_bad_input_inside_a_task_ends_run_local_with_its_error_line(toy_root, tmp_path):
    """prepare_data finds no `nope` split list: each attempt exits 2 (KFP retries regardless of
    the exit code) and run-local's last line is the task's own error, without colour codes."""
    params = tiny_params(
        tmp_path / "p.yaml", dataset={"splits": ["train_aug", "train", "val", "nope"]}
    )
    started = time.monotonic()
    result = _pipeline(
        "run-local", "--params", params, "--root", toy_root, "--pipeline-root", tmp_path / "runs"
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run-local: prepare_data: ") and "nope" in last, last
    assert "\x1b" not in last
    attempts = (result.stdout + result.stderr).count("split list not found")
    assert attempts == 4, attempts  # the task's error in each of its 3 attempts, then the summary
    assert elapsed < 120, elapsed  # 5 s + 10 s of backoff, not minutes


@pytest.fixture(scope="module")
def local_run(toy_root, tmp_path_factory) -> tuple[Path, Path]:
    """The whole pipeline under kfp.local on the tiny ToyVOC: (final artifact, work dir)."""
    work = tmp_path_factory.mktemp("kfp")
    params = tiny_params(work / "params.yaml")
    result = _pipeline(
        "run-local", "--params", params, "--root", toy_root, "--pipeline-root", work / "runs"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (work / "run-local.out").write_text(result.stdout)
    final = Path(result.stdout.strip().splitlines()[-1].removeprefix("final artifact: "))
    return final, work


@pytest.mark.slow
def test_local_run_of_the_whole_pipeline(local_run):
    final, work = local_run
    shown = (work / "run-local.out").read_text().splitlines()
    for stage in PIPELINE:  # each task's start and end, not its executor's JSON (--verbose)
        task = stage.name.replace("_", "-")
        assert sum(f"'{task}'" in line for line in shown) == 2, shown
    assert not any("executor" in line.lower() or '"' in line for line in shown), shown
    evaluation = open_artifact(final, "evaluation")
    assert 0.0 <= evaluation.manifest.metrics["miou"] <= 1.0
    task_dir = final.parent  # kfp.local: <run>/<task>/<output>
    assert (task_dir / "report").is_file() and b"<html" in (task_dir / "report").read_bytes()
    logged = json.loads((task_dir / "executor_output.json").read_text())
    metrics = logged["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["miou"] == pytest.approx(evaluation.manifest.metrics["miou"])
    assert "iou_background" in metrics  # per class, for the run's comparison view
    matrix = logged["artifacts"]["confusion"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert len(matrix["annotationSpecs"]) == len(matrix["rows"]) == 21
    for training in ("train-cam", "train-irn", "train-deeplab"):
        page = (task_dir.parent / training / "summary").read_text()
        assert "data:image/png;base64," in page and "steps" in page  # metrics and loss curve
    lineage = subprocess.run(
        [str(BIN / "wsss"), "lineage", str(final)], capture_output=True, text=True
    ).stdout
    for stage in PIPELINE:
        assert f"{stage.kind} <- {stage.name}" in lineage


@pytest.mark.slow
def test_a_smoke_run_under_kfp_local_marks_what_it_makes(local_run):
    """run-local --smoke 2 (from train_deeplab, on the first run's artifacts): the smoke
    parameter reaches each task and each artifact says it is a smoke run's."""
    final, work = local_run
    made = final.parent.parent
    imported = {
        "dataset": made / "prepare-data" / "dataset",
        "pseudo_masks": made / "export-masks" / "pseudo_masks",
    }
    result = _pipeline(
        "run-local",
        "--params",
        tiny_params(work / "smoke.yaml"),
        "--smoke",
        "2",
        "--pipeline-root",
        work / "smoke",
        "--from",
        "train_deeplab",
        *(a for kind, uri in imported.items() for a in ("--artifact", f"{kind}={uri}")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = Path(result.stdout.strip().splitlines()[-1].removeprefix("final artifact: "))
    assert open_artifact(evaluation).manifest.smoke == 2
    assert open_artifact(evaluation).manifest.metrics["images"] == 2
    seg_model = open_artifact(evaluation.parent.parent / "train-deeplab" / "seg_model")
    assert seg_model.manifest.smoke == 2 and seg_model.manifest.metrics["steps"] == 2 * 2


@pytest.mark.slow
def test_local_rerun_from_one_stage(local_run):
    """--from train_deeplab reruns train_deeplab and evaluate on the first run's artifacts."""
    final, work = local_run
    first = open_artifact(final).manifest
    seg_model = open_artifact(final.parent.parent / "train-deeplab" / "seg_model").manifest
    pseudo_masks = final.parent.parent / "export-masks" / "pseudo_masks"
    dataset = final.parent.parent / "prepare-data" / "dataset"
    params = tiny_params(work / "rerun.yaml", train_deeplab={"lr": 0.02})
    result = _pipeline(
        "run-local",
        "--params",
        params,
        "--pipeline-root",
        work / "reruns",
        "--from",
        "train_deeplab",
        "--artifact",
        f"dataset={dataset}",
        "--artifact",
        f"pseudo_masks={pseudo_masks}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rerun = Path(result.stdout.strip().splitlines()[-1].removeprefix("final artifact: "))
    ran = sorted(p.name for p in rerun.parent.parent.iterdir() if p.is_dir())
    assert ran == ["evaluate", "train-deeplab"]  # nothing upstream ran again
    new_seg = open_artifact(rerun.parent.parent / "train-deeplab" / "seg_model").manifest
    assert new_seg.params_digest != seg_model.params_digest
    assert (
        new_seg.inputs["pseudo_masks"].manifest_digest
        == open_artifact(pseudo_masks).manifest_digest
    )  # the very artifact imported by URI
    digest = open_artifact(rerun).manifest.inputs["dataset"].manifest_digest
    assert digest == first.inputs["dataset"].manifest_digest


def _fields(executors: dict) -> set[str]:
    """Every leaf path of the Kubernetes settings of the compiled tasks."""

    def leaves(value: object, path: str) -> set[str]:
        if isinstance(value, dict):
            return set().union(*(leaves(v, f"{path}.{k}".strip(".")) for k, v in value.items()))
        if isinstance(value, list):
            return set().union(set(), *(leaves(v, path) for v in value))
        return {path}

    return set().union(*(leaves(config, "") for config in executors.values()))


def test_every_kubernetes_field_the_pipeline_uses_has_its_first_backend_on_record(tmp_path):
    """The minimum KFP backend (README, compile's message, submit's check) is the newest of the
    fields the compiled YAML uses; a field not on record fails here until it is looked up."""
    voc = _voc_on_s3(tmp_path)
    used = set()
    for extra in ([], ["--cache-pvc", "wsss-cache"]):
        out = tmp_path / "voc.yaml"
        result = _pipeline("compile", "--out", out, "--params", voc, *IMAGES, *extra)
        assert result.returncode == 0, result.stderr
        assert f"for Kubeflow Pipelines {MIN_KFP_BACKEND} or newer" in result.stdout
        platform = list(yaml.safe_load_all(out.read_text()))[1]
        used |= _fields(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"])
    for field in used:
        assert any(f"{field}.".startswith(f"{known}.") for known in PLATFORM_FIELDS_SINCE), field
    newest = max(PLATFORM_FIELDS_SINCE.values())
    assert ".".join(map(str, newest)) == MIN_KFP_BACKEND
    assert f"Kubeflow Pipelines {MIN_KFP_BACKEND} or newer" in (REPO / "README.md").read_text()


@contextmanager
def _kfp_api(release: str, status: int = 200) -> Iterator[str]:
    """A KFP API on loopback whose healthz names RELEASE (or answers STATUS); yields its URL."""

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"tag_name": release, "multi_user": False}).encode()
            found = self.path == "/apis/v1beta1/healthz" and status == 200
            self.send_response(200 if found else status if status != 200 else 404)
            self.end_headers()
            self.wfile.write(body if found else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_submit_refuses_a_backend_older_than_the_fields_it_uses(monkeypatch, capsys):
    monkeypatch.setattr("kfp.Client", lambda *a, **k: pytest.fail("submitted anyway"))
    common = ["--params", str(REPO / "params.yaml"), "--allow-toy", *IMAGES]
    with _kfp_api("2.5.0") as host:
        code = pipeline_cli.main(["submit", "--host", host, *common])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"KFP 2.5.0, and the pipeline needs {MIN_KFP_BACKEND} or newer" in err
    assert "secretAsEnv.optional" in err and "emptyDirMounts" not in err  # 2.3.0's: there


def test_submit_compiles_and_creates_a_run(monkeypatch, tmp_path, capsys):
    calls = {}

    class FakeClient:
        def __init__(self, host, namespace=None):
            calls["host"] = host

        def create_run_from_pipeline_package(self, path, **kwargs):
            calls["spec"] = next(yaml.safe_load_all(Path(path).read_text()))
            calls.update(kwargs)
            return SimpleNamespace(run_id="run-123")

    monkeypatch.setattr("kfp.Client", FakeClient)
    with _kfp_api(MIN_KFP_BACKEND) as host:
        code = pipeline_cli.main(
            [
                "submit",
                "--host",
                host,
                "--experiment",
                "ablation",
                "--params",
                str(REPO / "params.yaml"),
                "--allow-toy",
                "--root",
                "s3://data/VOC2012",
                "--no-cache",
            ]
        )
    assert code == 0
    assert calls["host"] == host and calls["experiment_name"] == "ablation"
    assert calls["enable_caching"] is False  # --no-cache
    root = calls["spec"]["root"]["inputDefinitions"]["parameters"]["root"]
    assert root["defaultValue"] == "s3://data/VOC2012"
    assert "run-123" in capsys.readouterr().out


def test_submit_names_why_it_failed_within_seconds(monkeypatch, capsys):
    """A closed port is named by one TCP connection, before the KFP client's 30 s of retries;
    an HTTP error by its status."""
    common = ["--params", str(REPO / "params.yaml"), "--allow-toy", *IMAGES]
    closed = socket.create_server(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    started = time.monotonic()
    code = pipeline_cli.main(["submit", "--host", f"http://127.0.0.1:{dead}", *common])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: --host http://127.0.0.1:{dead}: connection refused\n"
    assert time.monotonic() - started < 30

    class Unauthorized(Exception):
        status, reason = 401, "Unauthorized"

    def refuse(*args, **kwargs):
        raise Unauthorized

    monkeypatch.setattr("kfp.Client", refuse)
    with _kfp_api("", status=401) as host:  # a multi-user KFP: its healthz wants a session too
        code = pipeline_cli.main(["submit", "--host", host, *common])
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: ") and "no release from its healthz" in warning
    assert code == 2 and "submitting failed (HTTP 401, not authenticated" in error, error


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{not json", "pipeline parameter train_cam: not valid JSON"),
        ('{"epochs": 0}', "pipeline parameters: train_cam.epochs:"),
        ('{"epoch": 3}', "pipeline parameters: train_cam.epoch: unknown key"),
    ],
)
def test_component_refuses_bad_params(dataset_artifact, tmp_path, capsys, params, message):
    dataset = SimpleNamespace(path=str(dataset_artifact), uri="s3://bkt/dataset", metadata={})
    out = SimpleNamespace(path=str(tmp_path / "cam_model"), uri="s3://bkt/cam_model", metadata={})
    with pytest.raises(SystemExit) as exit_info:
        run_component("train_cam", {"dataset": dataset}, out, params, "{}", smoke="{}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "cam_model").exists()


@pytest.mark.slow
def test_typed_knobs_override_the_section_and_another_method_takes_its_keys(
    dataset_artifact, tmp_path
):
    dataset = SimpleNamespace(path=str(dataset_artifact), uri="s3://bkt/dataset", metadata={})
    out = SimpleNamespace(path=str(tmp_path / "cam_model"), uri="s3://bkt/cam_model", metadata={})
    ktse = json.dumps(TINY_CAM["ktse"] | {"method": "ktse"})  # KTSE's keys, as the JSON holds
    knobs = {"method": "destruction", "epochs": 1, "batch_size": 0, "lr": 0.05}
    run_component(
        "train_cam",
        {"dataset": dataset},
        out,
        ktse,
        json.dumps({"device": "cpu"}),
        overrides=knobs,
        smoke="{}",
    )
    used = open_artifact(tmp_path / "cam_model", "cam_model").manifest.params["train_cam"]
    assert used["method"] == "destruction" and "ldm_grid" in used and "sie" not in used
    assert used["epochs"] == 1 and used["lr"] == 0.05
    assert used["batch_size"] == TINY_CAM["ktse"]["batch_size"]  # 0: as in the JSON
    with pytest.raises(SystemExit):
        run_component(
            "train_cam",
            {"dataset": dataset},
            out,
            ktse,
            json.dumps({"device": "cpu"}),
            overrides={"method": "nope"},
            smoke="{}",
        )


@pytest.mark.slow
def test_component_runs_a_training_stage_under_torchrun(dataset_artifact, tmp_path, monkeypatch):
    """Several processes per pod (here WSSS_NPROC=2 on CPU, gloo): one artifact, from rank 0."""
    monkeypatch.setenv("WSSS_NPROC", "2")
    dataset = SimpleNamespace(path=str(dataset_artifact), uri="s3://bkt/dataset", metadata={})
    out = SimpleNamespace(path=str(tmp_path / "cam_model"), uri="s3://bkt/cam_model", metadata={})
    logged = {}
    metrics = SimpleNamespace(log_metric=logged.__setitem__)
    cam = TINY_CAM["baseline"] | {
        "method": "baseline",
        "toy_norm": "group",
        "epochs": 1,
        "warmup_epochs": 0,
    }
    run_component(
        "train_cam",
        {"dataset": dataset},
        out,
        json.dumps(cam),
        json.dumps({"device": "cpu"}),
        metrics,
        smoke="{}",
    )
    manifest = open_artifact(tmp_path / "cam_model", "cam_model").manifest
    assert manifest.device.startswith("cpu:") and manifest.device.endswith(" x2")  # cpu:AVX2 x2
    assert manifest.inputs["dataset"].uri == "s3://bkt/dataset"  # the URI, not the local copy
    assert out.metadata["params_digest"] == manifest.params_digest
    assert logged == manifest.metrics
