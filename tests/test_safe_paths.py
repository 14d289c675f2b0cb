"""Nothing is written outside --out or the cache: every relative path that comes from data (S3
keys, manifest entries, image ids, split lists) is checked where it enters, exit 2 naming it."""

import json
import shutil

import pytest

from tests.helpers import seal
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.storage import Store
from wsss.errors import WsssError
from wsss.safe_paths import file_name, relative_path


@pytest.mark.parametrize("rel", ["a.png", "cams/x.npz", "a/b/c"])
def test_relative_paths_below_the_directory_pass(rel):
    assert relative_path(rel, "here") == rel


@pytest.mark.parametrize(
    "rel, problem",
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..'"),
        ("..", "'..'"),
        ("a//b", "empty segment"),
        ("a/./b", "'.'"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "backslash"),
        (None, "empty"),
    ],
)
def test_unsafe_relative_paths_are_one_line_errors(rel, problem):
    with pytest.raises(WsssError, match=problem) as info:
        relative_path(rel, "manifest.json: files")
    assert str(info.value).startswith("manifest.json: files: unsafe path")
    assert "\n" not in str(info.value)


def test_a_file_name_is_one_segment():
    assert file_name("2007_000032", "id") == "2007_000032"
    with pytest.raises(WsssError, match="contains '/'"):
        file_name("x/ID", "id")


@pytest.mark.parametrize("entry", ["/abs/path/victim.txt", "../victim.txt", "a//b"])
def test_a_manifest_listing_a_path_outside_its_artifact_is_refused(cli, tmp_path, entry):
    art = tmp_path / "art"
    art.mkdir()
    (art / "a.txt").write_text("x")
    seal(art, "cams", "extract_seeds", {})
    manifest = json.loads((art / MANIFEST).read_text())
    manifest["files"][entry] = manifest["files"].pop("a.txt")
    (art / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(WsssError, match="unsafe path"):
        open_artifact(art)
    result = cli("lineage", art)
    assert result.code == 2 and "unsafe path" in result.err and result.err.count("\n") == 1


def _resealed_with_id(dataset_artifact, tmp_path, bad_id: str):
    """A copy of the dataset artifact whose first image id is BAD_ID, its manifest resealed."""
    art = tmp_path / "dataset"
    shutil.copytree(dataset_artifact, art)
    samples = json.loads((art / "samples.json").read_text())
    labels = json.loads((art / "labels.json").read_text())
    old = next(iter(samples))
    samples[bad_id], labels[bad_id] = samples.pop(old), labels.pop(old)
    (art / "samples.json").write_text(json.dumps(samples))
    (art / "labels.json").write_text(json.dumps(labels))
    for split in (art / "splits").glob("*.txt"):
        ids = [bad_id if i == old else i for i in split.read_text().split()]
        split.write_text("".join(f"{i}\n" for i in ids))
    (art / MANIFEST).unlink()
    source = json.loads((art / "source.json").read_text())
    source["root"] = str((dataset_artifact / source["root"]).resolve())
    (art / "source.json").write_text(json.dumps(source))
    seal(art, "dataset", "prepare_data", {})
    return art


@pytest.mark.parametrize("bad_id", ["../../../../x/ID", "..", "a/b"])
def test_an_image_id_cannot_name_a_file_outside_out(cli, dataset_artifact, tmp_path, bad_id):
    art = _resealed_with_id(dataset_artifact, tmp_path, bad_id)
    out = tmp_path / "deep" / "er" / "out"
    result = cli("run", "train_cam", "--in", f"dataset={art}", "--out", out)
    assert result.code == 2 and "samples.json: id: unsafe" in result.err, result.err
    assert repr(bad_id) in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (out / MANIFEST).exists()


def test_a_split_naming_an_unknown_image_is_refused(cli, dataset_artifact, tmp_path):
    art = tmp_path / "dataset"
    shutil.copytree(dataset_artifact, art)
    (art / "splits" / "train.txt").write_text("nope_000001\n")
    (art / MANIFEST).unlink()
    seal(art, "dataset", "prepare_data", {})
    result = cli("run", "train_cam", "--in", f"dataset={art}", "--out", tmp_path / "o")
    assert result.code == 2 and "'nope_000001' is not in the dataset" in result.err


@pytest.mark.parametrize(
    "content, message", [(b"..\n", "unsafe path '..'"), (b"2007_00\xff0001\n", "not UTF-8")]
)
def test_bad_split_list_lines(cli, toy_copy, tmp_path, content, message):
    (toy_copy / "ImageSets" / "Segmentation" / "val.txt").write_bytes(content)
    result = cli("run", "prepare_data", "--in", f"root={toy_copy}", "--out", tmp_path / "o")
    assert result.code == 2 and message in result.err and "val.txt" in result.err, result.err
    assert result.err.count("\n") == 1


@pytest.mark.slow
def test_an_s3_key_cannot_write_outside_the_cache(cli, s3, toy_root, tmp_path, monkeypatch):
    """An object key 'roots/toy//tmp/…/victim.txt' names an absolute path below the root. AWS
    keeps such keys; SeaweedFS normalizes the '//' away, so the test adds it to the listing."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    root = s3.upload_tree(toy_root, "roots/toy")
    real_list = Store.list
    monkeypatch.setattr(
        Store, "list", lambda self, where: real_list(self, where) | {str(victim): 1}
    )
    result = cli("run", "prepare_data", "--in", f"root={root}", "--out", tmp_path / "o")
    assert result.code == 2 and "object key: unsafe path" in result.err, result.err
    assert victim.read_text() == "keep me"
