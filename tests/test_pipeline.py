"""The README's `make run` on a copy of this checkout: pinned data, dvc repro, a no-op rerun."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wsss.artifacts.opening import open_artifact
from wsss.config.params import parse_params
from wsss.config.train_cam import switch_method
from wsss.stages import PIPELINE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STAGES = tuple(s.name for s in PIPELINE)  # in order, and their outputs' kinds
KINDS = tuple(s.kind for s in PIPELINE)


def _sh(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _copy(dest: Path, **overlay: dict) -> Path:
    """The project's files (tracked or not ignored) in a fresh git repo at DEST, sharing this venv
    (make runs with -o install, so the shared venv is never reinstalled from the copy), with
    OVERLAY's sections merged into params.yaml."""
    files = _sh(REPO, "git", "ls-files", "--cached", "--others", "--exclude-standard").stdout
    for rel in files.split():
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / ".venv").symlink_to(REPO / ".venv")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overlay.items():
        params[section] |= values
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _sh(dest, "git", "init", "-q").returncode == 0
    return dest


# CI's budget: every stage, on the pinned ToyVOC, trained briefly
BRIEF = {
    "train_cam": {"epochs": 2, "warmup_epochs": 1},
    "extract_seeds": {"scales": [1.0]},
    "train_irn": {"epochs": 1},
    "train_deeplab": {"epochs": 1},
    "evaluate": {"scales": [1.0]},
}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """A copy whose `make run` is the README's on the whole pinned ToyVOC, trained briefly."""
    return _copy(tmp_path_factory.mktemp("whole") / "wsss", **BRIEF)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy for what DVC does between runs (reruns, experiments, remotes, methods): the same
    pipeline as a smoke run of a few images per split, so that each run takes seconds."""
    small = BRIEF | {"smoke": {"images": 4}}
    return _copy(tmp_path_factory.mktemp("clone") / "wsss", **small)


def test_make_run_regenerates_the_pinned_data_and_a_second_run_is_a_no_op(whole):
    first = _sh(whole, "make", "-o", "install", "run")
    assert first.returncode == 0, first.stderr
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    for kind in KINDS:
        assert (whole / "artifacts" / kind / "manifest.json").is_file()
    assert (whole / "artifacts" / "evaluation" / "report.html").is_file()
    lineage = _sh(whole, ".venv/bin/wsss", "lineage", "artifacts/evaluation").stdout
    for kind, stage in zip(KINDS[::-1], STAGES[::-1], strict=True):
        assert f"{kind} <- {stage}" in lineage  # every stage, back to prepare_data
    assert lineage.count("params ") >= len(STAGES)  # each with its params digest
    second = _sh(whole, "make", "-o", "install", "run")
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout
    status = _sh(whole, ".venv/bin/dvc", "status")
    assert "up to date" in status.stdout, status.stdout


def _commit(repo: Path, message: str) -> None:
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty"]
    for cmd in (["git", "add", "-A"], [*commit, "-m", message]):
        assert _sh(repo, *cmd).returncode == 0


def test_a_fresh_clone_reproduces_the_committed_lock_byte_for_byte(checkout, tmp_path):
    """Outputs are reproducible bytes (when and how long a stage ran is in run.json, which
    .dvcignore keeps out of DVC's hashes): `make run` on a fresh clone of a committed run
    leaves git status clean, and `dvc metrics diff` reads the committed metrics (in git)."""
    assert _sh(checkout, "make", "-o", "install", "run").returncode == 0
    _commit(checkout, "a run")
    clone = tmp_path / "clone"
    assert _sh(tmp_path, "git", "clone", "-q", str(checkout), str(clone)).returncode == 0
    (clone / ".venv").symlink_to(REPO / ".venv")
    rerun = _sh(clone, "make", "-o", "install", "run")
    assert rerun.returncode == 0, rerun.stderr
    assert all(f"Running stage '{stage}'" in rerun.stdout for stage in STAGES)
    assert _sh(clone, "git", "status", "--porcelain").stdout == ""
    assert (clone / "artifacts" / "evaluation" / "run.json").is_file()  # kept, but not hashed
    diff = _sh(clone, ".venv/bin/dvc", "metrics", "diff", "HEAD", "--json")
    assert diff.returncode == 0 and json.loads(diff.stdout) == {}, diff.stdout + diff.stderr
    shown = json.loads(_sh(clone, ".venv/bin/dvc", "metrics", "show", "--json").stdout)
    assert "miou" in json.dumps(shown) and "train_cam.json" in json.dumps(shown)
    plots = json.loads(_sh(clone, ".venv/bin/dvc", "plots", "show", "--json").stdout)
    assert "errors" not in plots and plots["data"]["train_cam loss"], plots.get("errors")


def test_changed_data_is_caught_against_the_pin(checkout):
    assert _sh(checkout, "make", "-o", "install", "data").returncode == 0
    jpg = next((checkout / "data" / "toyvoc" / "JPEGImages").glob("*.jpg"))
    original = jpg.read_bytes()
    pinned = (checkout / "data.dvc").read_text()
    jpg.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        result = _sh(checkout, "make", "-o", "install", "data")
        assert result.returncode != 0
        assert "differs from the bytes pinned in data.dvc" in result.stderr
        assert (checkout / "data.dvc").read_text() == pinned  # the pin is left as it was
    finally:
        jpg.write_bytes(original)


def _set_param(checkout: Path, section: str, key: str, value) -> str:
    """Change one value of the copy's params.yaml; returns the original text."""
    path = checkout / "params.yaml"
    original = path.read_text()
    changed = yaml.safe_load(original)
    changed[section][key] = value
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    return original


def test_a_changed_seed_threshold_leaves_the_stages_upstream_alone(checkout):
    original = _set_param(checkout, "extract_seeds", "threshold", 0.25)
    try:
        dry = _sh(checkout, ".venv/bin/dvc", "repro", "--dry").stdout
        assert "Running stage 'extract_seeds'" in dry
        assert "Running stage 'train_cam'" not in dry and "Running stage 'prepare_data'" not in dry
    finally:
        (checkout / "params.yaml").write_text(original)


def test_runtime_settings_that_do_not_change_results_rerun_nothing(checkout):
    assert _sh(checkout, "make", "-o", "install", "run").returncode == 0
    original = (checkout / "params.yaml").read_text()
    try:
        _set_param(checkout, "runtime", "log_interval", 7)
        _set_param(checkout, "runtime", "num_workers", 1)
        dry = _sh(checkout, ".venv/bin/dvc", "repro", "--dry").stdout
        assert "Running stage" not in dry, dry
        _set_param(checkout, "runtime", "seed", 1)
        assert (
            "Running stage 'prepare_data'"
            in _sh(checkout, ".venv/bin/dvc", "repro", "--dry").stdout
        )
    finally:
        (checkout / "params.yaml").write_text(original)


def test_a_changed_deeplab_param_reruns_only_train_deeplab_and_evaluate(checkout):
    original = _set_param(checkout, "train_deeplab", "lr", 0.02)
    try:
        rerun = _sh(checkout, "make", "-o", "install", "run")
        assert rerun.returncode == 0, rerun.stderr
        ran = {stage for stage in STAGES if f"Running stage '{stage}'" in rerun.stdout}
        assert ran == {"train_deeplab", "evaluate"}
    finally:
        (checkout / "params.yaml").write_text(original)


def test_dvc_experiments_set_queue_and_run_all(checkout):
    """`dvc exp run -S` rewrites params.yaml as YAML 1.2 (a bare `confidence: off`, which a
    YAML 1.1 reader takes for False): wsss reads what DVC writes. A queued pair of experiments
    runs too, each rerunning only train_deeplab and evaluate. `dvc exp save -n baseline` after
    `make run` (the README's first experiment step) is what an experiment is compared with on
    this machine: metrics and plots."""
    assert _sh(checkout, "make", "-o", "install", "run").returncode == 0
    original = (checkout / "params.yaml").read_text()
    _commit(checkout, "base")  # experiments branch from a commit
    try:
        saved = _sh(checkout, ".venv/bin/dvc", "exp", "save", "-f", "-n", "baseline")
        assert saved.returncode == 0, saved.stderr
        one = _sh(checkout, ".venv/bin/dvc", "exp", "run", "-S", "train_deeplab.lr=0.02")
        assert one.returncode == 0, one.stderr
        name = re.search(r"Ran experiment\(s\): (\S+)", one.stdout).group(1)
        against = _sh(checkout, ".venv/bin/dvc", "metrics", "diff", "baseline", name, "--json")
        assert "metrics/train_deeplab.json" in json.loads(against.stdout), against.stderr
        plotted = _sh(checkout, ".venv/bin/dvc", "plots", "diff", "baseline", name, "--json")
        assert "errors" not in json.loads(plotted.stdout), plotted.stdout[-2000:]
        assert "confidence: off" in (checkout / "params.yaml").read_text()  # as DVC wrote it
        ran = {stage for stage in STAGES if f"Running stage '{stage}'" in one.stdout}
        # lr 0.02 ran before (another test): its seg_model is the same bytes again, so DVC's run
        # cache may restore evaluate instead of running it
        restored = {stage for stage in STAGES if f"Stage '{stage}' is cached" in one.stdout}
        assert "train_deeplab" in ran and ran | restored == {"train_deeplab", "evaluate"}
        for lr in ("0.03", "0.04"):
            queued = _sh(
                checkout, ".venv/bin/dvc", "exp", "run", "--queue", "-S", f"train_deeplab.lr={lr}"
            )
            assert queued.returncode == 0, queued.stderr
        run_all = _sh(checkout, ".venv/bin/dvc", "exp", "run", "--run-all")
        assert run_all.returncode == 0, run_all.stderr + run_all.stdout
        shown = json.loads(_sh(checkout, ".venv/bin/dvc", "exp", "show", "--json").stdout)
        experiments = [e for row in shown for e in row.get("experiments") or []]
        assert len(experiments) == 4, shown  # the baseline, one run, two queued
        names = _sh(checkout, ".venv/bin/dvc", "exp", "list", "--name-only").stdout.split()
        first, second = [n for n in names if n not in ("baseline", name)][:2]
        metrics = _sh(checkout, ".venv/bin/dvc", "metrics", "diff", first, second, "--json")
        assert metrics.returncode == 0, metrics.stderr
        assert "metrics/train_deeplab.json" in json.loads(metrics.stdout)  # lr changed its loss
        # the plot data live outside the cached artifacts, in git: DVC overlays the two runs
        plots = _sh(checkout, ".venv/bin/dvc", "plots", "diff", first, second, "--json")
        assert plots.returncode == 0, plots.stderr
        overlaid = json.loads(plots.stdout)
        assert "errors" not in overlaid, overlaid.get("errors")
        loss = overlaid["data"]["train_deeplab loss"][0]
        assert sorted(loss["revisions"]) == sorted([first, second])
        assert {row["rev"] for row in loss["content"]["data"]["values"]} == {first, second}
    finally:
        (checkout / "params.yaml").write_text(original)


def test_dvc_remote_on_s3_pushes_and_pulls_the_pipeline_outputs(checkout, s3):
    """README's S3 remote (endpointurl) against a real S3-protocol server on 127.0.0.1: push
    everything, lose the workspace's outputs and the cache, pull, and the pipeline is up to date."""
    assert _sh(checkout, "make", "-o", "install", "run").returncode == 0
    dvc = ".venv/bin/dvc"
    for args in (
        ["remote", "add", "--local", "-f", "-d", "store", f"s3://{s3.bucket}/dvc"],
        ["remote", "modify", "--local", "store", "endpointurl", s3.endpoint],
    ):
        assert _sh(checkout, dvc, *args).returncode == 0
    manifests = {k: (checkout / "artifacts" / k / "manifest.json").read_bytes() for k in KINDS}
    push = _sh(checkout, dvc, "push")
    assert push.returncode == 0, push.stderr
    assert any(key.startswith("dvc/files/md5/") for key in s3.keys("dvc/"))

    shutil.rmtree(checkout / "artifacts")
    shutil.rmtree(checkout / ".dvc" / "cache")
    pull = _sh(checkout, dvc, "pull")
    assert pull.returncode == 0, pull.stderr
    for kind, manifest in manifests.items():
        assert (checkout / "artifacts" / kind / "manifest.json").read_bytes() == manifest
    status = _sh(checkout, dvc, "status")
    assert "up to date" in status.stdout, status.stdout


@pytest.mark.parametrize("method", ["destruction", "fsr"])
def test_make_run_with_another_cam_method(checkout, method):
    """Selecting a CAM method in params.yaml retrains from train_cam on and the rest of the
    pipeline runs on its CAMs unchanged."""
    original = (checkout / "params.yaml").read_text()
    params = yaml.safe_load(original)
    section = switch_method(parse_params(params, "params.yaml").train_cam, method)
    params["train_cam"] = section.model_dump(mode="json")  # another method has other keys
    (checkout / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        rerun = _sh(checkout, "make", "-o", "install", "run")
        assert rerun.returncode == 0, rerun.stderr
        ran = {stage for stage in STAGES if f"Running stage '{stage}'" in rerun.stdout}
        assert ran == set(STAGES) - {"prepare_data"}
        lineage = _sh(checkout, ".venv/bin/wsss", "lineage", "artifacts/evaluation", "--json")
        tree = json.loads(lineage.stdout)
        cams = tree["inputs"]["seg_model"]["inputs"]["pseudo_masks"]["inputs"]["cams"]
        cam_model = open_artifact(checkout / "artifacts" / "cam_model").manifest
        assert cam_model.params["train_cam"]["method"] == method
        assert cams["inputs"]["cam_model"]["params_digest"] == cam_model.params_digest
    finally:
        (checkout / "params.yaml").write_text(original)


def test_a_dvc_smoke_experiment_runs_every_stage_as_a_smoke_run(checkout):
    """`dvc exp run -S smoke.images=2` (the README's try-it-small step) reruns every stage on 2
    images per split, and every artifact says it is a smoke run's of 2 images. Last in this file:
    it leaves the copy's artifacts at 2 images."""
    assert _sh(checkout, "make", "-o", "install", "run").returncode == 0
    original = (checkout / "params.yaml").read_text()
    _commit(checkout, "before the smoke run")
    try:
        smoke = _sh(checkout, ".venv/bin/dvc", "exp", "run", "-S", "smoke.images=2")
        assert smoke.returncode == 0, smoke.stderr
        assert {stage for stage in STAGES if f"Running stage '{stage}'" in smoke.stdout} == set(
            STAGES
        )
        for kind in KINDS:
            assert open_artifact(checkout / "artifacts" / kind, kind).manifest.smoke == 2
        shown = json.loads((checkout / "metrics" / "evaluate.json").read_text())
        assert shown["images"] == 2
    finally:
        (checkout / "params.yaml").write_text(original)
