"""The README's `make run` on a copy of this checkout: pinned data, dvc repro, a no-op rerun."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _sh(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The project's files (tracked or not ignored) in a fresh git repo, sharing this venv
    (make runs with -o install, so the shared venv is never reinstalled from the copy)."""
    files = _sh(REPO, "git", "ls-files", "--cached", "--others", "--exclude-standard").stdout
    dest = tmp_path_factory.mktemp("clone") / "wsss"
    for rel in files.split():
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / ".venv").symlink_to(REPO / ".venv")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["train_cam"] |= {"epochs": 2, "warmup_epochs": 1}  # CI's budget: same stages, short
    params["extract_seeds"] |= {"scales": [1.0]}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _sh(dest, "git", "init", "-q").returncode == 0
    return dest


def test_make_run_regenerates_the_pinned_data_and_a_second_run_is_a_no_op(checkout):
    first = _sh(checkout, "make", "-o", "install", "run")
    assert first.returncode == 0, first.stderr
    for stage in ("prepare_data", "train_cam", "extract_seeds"):
        assert f"Running stage '{stage}'" in first.stdout
    for kind in ("dataset", "cam_model", "cams"):
        assert (checkout / "artifacts" / kind / "manifest.json").is_file()
    lineage = _sh(checkout, ".venv/bin/wsss", "lineage", "artifacts/cams")
    assert (
        "cam_model <- train_cam" in lineage.stdout and "dataset <- prepare_data" in lineage.stdout
    )
    second = _sh(checkout, "make", "-o", "install", "run")
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout
    status = _sh(checkout, ".venv/bin/dvc", "status")
    assert "up to date" in status.stdout, status.stdout


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


def test_a_params_change_reruns_its_stage_and_those_downstream(checkout):
    params = checkout / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("\n  threshold: 0.2\n", "\n  threshold: 0.25\n"))
    try:
        dry = _sh(checkout, ".venv/bin/dvc", "repro", "--dry")
        assert "Running stage 'extract_seeds'" in dry.stdout
        assert "Running stage 'train_cam'" not in dry.stdout
    finally:
        params.write_text(original)
