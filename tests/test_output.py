"""The output directory: nothing is lost. Stage then swap, refuse outputs that overlap an input
or are not wsss artifacts, keep an old artifact complete through a failed rerun, recover from a
kill at any point, follow a symlinked --out, and lock out a second run."""

import errno
import fcntl
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from wsss import runner
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.output import RESUME_FILES, begin, reading, staging_of
from wsss.checkpoint import resume_key
from wsss.config.train_cam import KtseParams
from wsss.stages import prepare_data


def _prepare(cli, root, out):
    return cli("run", "prepare_data", "--in", f"root={root}", "--out", out)


@pytest.fixture
def complete(cli, toy_root, tmp_path):
    out = tmp_path / "dataset"
    assert _prepare(cli, toy_root, out).code == 0
    return out


def _digest(out):
    return open_artifact(out).manifest_digest


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_an_output_overlapping_an_input_is_refused(cli, complete, where):
    out = {"same": complete, "inside": complete / "sub", "parent": complete.parent}[where]
    before = _digest(complete)
    result = cli("run", "train_cam", "--in", f"dataset={complete}", "--out", out)
    assert result.code == 2 and "overlap the input 'dataset'" in result.err, result.err
    assert _digest(complete) == before and not (complete / "sub").exists()


def test_prepare_data_cannot_write_into_its_root(cli, toy_copy):
    result = _prepare(cli, toy_copy, toy_copy / "artifact")
    assert result.code == 2 and "overlap the input 'root'" in result.err


def test_only_a_wsss_artifact_is_replaced(cli, toy_root, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / MANIFEST).write_text('{"name": "somebody else\'s"}')
    (foreign / "notes.txt").write_text("keep me")
    result = _prepare(cli, toy_root, foreign)
    assert result.code == 2 and "not a wsss manifest" in result.err
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert _prepare(cli, toy_root, "").code == 2
    assert "--out: empty" in _prepare(cli, toy_root, "").err
    (tmp_path / "file").write_text("x")
    result = _prepare(cli, toy_root, tmp_path / "file")
    assert result.code == 2 and "is not a directory" in result.err
    # an artifact an older wsss wrote (its manifest had created_at, code_revision, duration_s)
    older = tmp_path / "older"
    older.mkdir()
    core = {
        "kind": "dataset",
        "stage": "prepare_data",
        "wsss_version": "0.0.9",
        "params": {},
        "params_digest": "x",
        "inputs": {},
        "files": {},
        "created_at": "2026",
    }
    (older / MANIFEST).write_text(json.dumps(core))
    assert _prepare(cli, toy_root, older).code == 0
    assert open_artifact(older).manifest.wsss_version != "0.0.9"


def test_a_failed_rerun_keeps_the_old_artifact_complete(cli, complete, tmp_path):
    before = _digest(complete)
    (tmp_path / "not_voc").mkdir()
    result = _prepare(cli, tmp_path / "not_voc", complete)
    assert result.code == 2
    assert _digest(complete) == before  # still complete, still the old one


def test_a_kill_at_any_point_leaves_something_a_rerun_accepts(cli, toy_root, complete):
    staging = staging_of(complete)
    staging.mkdir()
    (staging / "half-written.npz").write_text("")  # killed while the stage wrote
    assert _prepare(cli, toy_root, complete).code == 0
    assert not staging.exists() and "half-written.npz" not in open_artifact(complete).manifest.files
    # killed in the middle of the swap: the old artifact moved aside, the new one not yet in place
    os.rename(complete, complete.with_name(f".{complete.name}.old"))
    assert _prepare(cli, toy_root, complete).code == 0
    assert open_artifact(complete).manifest.kind == "dataset"
    assert not complete.with_name(f".{complete.name}.old").exists()


def test_a_symlinked_out_is_written_through(cli, toy_root, complete, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(complete)
    assert _prepare(cli, toy_root, link).code == 0
    assert link.is_symlink() and link.resolve() == complete.resolve()
    assert json.loads((complete / MANIFEST).read_text())["kind"] == "dataset"


def test_a_second_run_on_one_out_is_refused(cli, toy_root, complete):
    lock = complete.with_name(f".{complete.name}.lock")
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = _prepare(cli, toy_root, complete)
    assert result.code == 2 and "another run is writing it" in result.err
    assert open_artifact(complete).manifest.kind == "dataset"
    shutil.rmtree(complete)
    assert _prepare(cli, toy_root, complete).code == 0  # the lock went with the first run


def test_a_checkpoint_resumes_only_with_the_same_inputs(complete, tmp_path):
    params = KtseParams()
    same = resume_key("train_cam", params, 0, {"dataset": open_artifact(complete)})
    assert same == resume_key("train_cam", params, 0, {"dataset": open_artifact(complete)})
    other = tmp_path / "other"
    shutil.copytree(complete, other)
    manifest = json.loads((other / MANIFEST).read_text())
    manifest["metrics"]["images"] += 1  # another dataset artifact
    (other / MANIFEST).write_text(json.dumps(manifest))
    assert same != resume_key("train_cam", params, 0, {"dataset": open_artifact(other)})
    assert same != resume_key("train_cam", params, 1, {"dataset": open_artifact(complete)})


def test_a_file_changed_in_place_is_refused_as_input(cli, complete, tmp_path):
    labels = complete / "labels.json"
    text = labels.read_text()
    labels.write_text(text.replace("a", "b", 1) if "a" in text else text + " ")
    assert labels.stat().st_size == len(text.encode())  # same size: a size check cannot see it
    result = cli("run", "train_cam", "--in", f"dataset={complete}", "--out", tmp_path / "o")
    assert result.code == 2 and "labels.json differs from its manifest" in result.err
    assert cli("lineage", complete).code == 0  # lineage reads manifests only


def test_a_rerun_keeps_only_the_checkpoints_of_the_last_run(tmp_path):
    out = tmp_path / "irn_model"
    staging = staging_of(out)
    (staging / "ir_labels").mkdir(parents=True)
    (staging / "ir_labels" / "stale.png").write_bytes(b"from a run with another split")
    (staging / "checkpoint.pt").write_bytes(b"resume me")
    (staging / "notes.txt").write_text("stale")
    assert begin(out, RESUME_FILES) == staging
    assert sorted(p.name for p in staging.iterdir()) == ["checkpoint.pt"]
    assert begin(out) == staging and not any(staging.iterdir())


@pytest.mark.parametrize("when", ["in the stage", "sealing the artifact"])
@pytest.mark.parametrize("errno_", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_is_one_line_and_keeps_the_old_artifact(
    cli, toy_root, complete, monkeypatch, when, errno_
):
    before = _digest(complete)

    def fail(*args, **kwargs):
        raise OSError(errno_, os.strerror(errno_), str(complete / "x"))

    if when == "in the stage":
        monkeypatch.setattr(prepare_data, "run", fail)
    else:
        monkeypatch.setattr(runner, "write_manifest", fail)
    result = _prepare(cli, toy_root, complete)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {complete / 'x'}: {os.strerror(errno_)}")
    assert _digest(complete) == before


@pytest.mark.parametrize("entry", ["staging", "old", "lock"])
def test_wsss_own_siblings_are_never_followed(cli, toy_root, complete, tmp_path, entry):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    sibling = complete.with_name(f".{complete.name}.{entry}")
    sibling.unlink(missing_ok=True)  # the first run's lock
    sibling.symlink_to(victim / "created" if entry == "lock" else victim)
    result = _prepare(cli, toy_root, complete)
    assert result.code == 2 and result.err.count("\n") == 1 and "symlink" in result.err, result.err
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    assert not complete.is_symlink() and open_artifact(complete).manifest.kind == "dataset"


@contextmanager
def _undeletable(directory):
    """DIRECTORY holding a file no one can delete: a read-only tmpfs for root (who may remove
    anything else), a read-only directory for a user."""
    directory.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", directory], check=True)
        (directory / "f").write_text("x")
        subprocess.run(["mount", "-o", "remount,ro", directory], check=True)
    else:
        (directory / "f").write_text("x")
        directory.chmod(0o500)
    try:
        yield
    finally:  # wherever a rename has taken it since
        if os.geteuid() == 0:
            for line in Path("/proc/self/mounts").read_text().splitlines():
                point = line.split()[1]
                if point.startswith(str(directory.parent.parent)):
                    subprocess.run(["umount", point], check=True)
        else:
            for f in directory.parent.parent.rglob("f"):
                f.parent.chmod(0o700)


def test_leftovers_wsss_cannot_remove_are_one_line(cli, toy_root, complete):
    old = complete.with_name(f".{complete.name}.old")
    old.write_text("a file where wsss keeps a directory")
    result = _prepare(cli, toy_root, complete)
    assert result.code == 2 and "a file where wsss keeps its own entry" in result.err
    old.unlink()
    stuck = complete / "stuck"
    with _undeletable(stuck):
        assert _prepare(cli, toy_root, complete).code == 0  # the new artifact is in place
        assert open_artifact(complete).manifest.kind == "dataset" and old.exists()
        result = _prepare(cli, toy_root, complete)  # the next run says what to remove
        assert result.code == 2 and result.err.count("\n") == 1, result.err
        assert "cannot be removed" in result.err and str(old) in result.err
        assert open_artifact(complete).manifest.kind == "dataset"


def test_an_out_in_a_symlink_loop_is_one_line(cli, toy_root, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = _prepare(cli, toy_root, tmp_path / "a")
    assert result.code == 2 and "symlink loop" in result.err and result.err.count("\n") == 1


def test_an_input_being_read_cannot_be_replaced(cli, toy_root, complete, tmp_path):
    """A stage holds a shared lock on each input while it runs; a writer is refused."""
    lock = complete.with_name(f".{complete.name}.lock")
    with open(lock, "a") as reader:
        fcntl.flock(reader, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as a running stage holds it
        before = _digest(complete)
        result = _prepare(cli, toy_root, complete)
        assert result.code == 2 and "a running stage reads it" in result.err
        assert f"pid {os.getpid()}" in result.err  # names the reader (Linux: /proc/locks)
        assert _digest(complete) == before
        # a second reader is welcome
        with reading([complete]):
            pass
    with open(lock, "a") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running writer holds it
        result = cli("run", "train_cam", "--in", f"dataset={complete}", "--out", tmp_path / "o")
    assert result.code == 2 and "another run is writing it" in result.err
    assert not (tmp_path / "o").exists()
