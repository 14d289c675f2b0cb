"""Artifacts and dataset roots in S3 storage, against a real S3 server (SeaweedFS, on 127.0.0.1):
stages read and write s3:// URIs, lineage walks over S3, an outage fails in bounded time with one
line and no manifest, and no credential reaches an output."""

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import s3_env
from tests.s3server import ACCESS_KEY, SECRET
from wsss.artifacts.manifest import MANIFEST, sha256_file
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.storage import Store, cache_dir, local_file, parse_s3
from wsss.artifacts.uri import relative_uri, resolve_uri
from wsss.errors import WsssError
from wsss.kinds.dataset import load_index

TINY_CAM = {
    "train_cam": {
        "method": "baseline",
        "epochs": 1,
        "warmup_epochs": 0,
        "batch_size": 4,
        "crop": 32,
        "long_side": [40, 56],
        "toy_width": 8,
        "checkpoint_every": 100,
    }
}


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and ACCESS_KEY not in text


def test_uris_resolve_relative_to_remote_artifacts(tmp_path):
    assert resolve_uri("s3://b/run/cams", "../dataset") == "s3://b/run/dataset"
    assert resolve_uri("s3://b/run/cams", "s3://c/x") == "s3://c/x"
    assert resolve_uri(tmp_path / "run" / "cams", "../dataset") == str(tmp_path / "run/dataset")
    assert relative_uri("s3://b/run/cams", str(tmp_path / "d")) == (tmp_path / "d").as_posix()
    assert parse_s3("s3://bkt/a/b/").key == "a/b"
    assert parse_s3("minio://mlpipeline/v2/artifacts") == parse_s3("s3://mlpipeline/v2/artifacts")


@pytest.mark.slow
def test_stages_read_and_write_s3(cli, s3, toy_root, dataset_artifact, tmp_path):
    root = s3.upload_tree(toy_root, "toyvoc")
    run = f"s3://{s3.bucket}/run"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_CAM))

    prep = cli("run", "prepare_data", "--in", f"root={root}", "--out", f"{run}/dataset")
    assert prep.code == 0, prep.err
    keys = s3.keys("run/dataset/")
    assert "run/dataset/manifest.json" in keys and "run/dataset/labels.json" in keys
    assert not any(k.startswith("run/dataset/JPEGImages") for k in keys)  # index, not images

    cam = cli(
        "run",
        "train_cam",
        "--in",
        f"dataset={run}/dataset",
        "--out",
        f"{run}/cam_model",
        "--params",
        params,
    )
    assert cam.code == 0, cam.err
    # the root was synced once into the cache, verified against the digest prepare_data recorded
    synced = list((cache_dir() / "datasets").glob("*/.complete"))
    assert len(synced) == 1

    local = open_artifact(f"{run}/cam_model", "cam_model")  # fetched and verified
    for rel, entry in local.manifest.files.items():
        assert sha256_file(local.path / rel) == entry.sha256
    index = load_index(open_artifact(f"{run}/dataset").path)
    assert index.splits == load_index(dataset_artifact).splits

    lineage = cli("lineage", f"{run}/cam_model", "--json")
    assert lineage.code == 0, lineage.err
    tree = json.loads(lineage.out)
    assert tree["kind"] == "cam_model" and tree["stage"] == "train_cam"
    dataset = tree["inputs"]["dataset"]
    assert dataset["uri"] == f"{run}/dataset" and dataset["kind"] == "dataset"
    assert dataset["inputs"]["root"] == {"uri": root, "kind": "root"}
    text = cli("lineage", f"{run}/cam_model".replace("s3://", "minio://"))  # KFP's default
    assert "cam_model <- train_cam" in text.out and "[dataset root]" in text.out
    _assert_no_secret(prep.out, prep.err, cam.out, cam.err, lineage.out, text.out)
    for key in s3.keys("run/"):
        if key.endswith(".json"):
            _assert_no_secret(s3.client.get_object(s3.bucket, key).read().decode())


@pytest.mark.slow
def test_a_root_changed_after_indexing_is_refused(cli, s3, toy_root, tmp_path, monkeypatch):
    root = s3.upload_tree(toy_root, "toyvoc")
    dataset = f"s3://{s3.bucket}/run/dataset"
    assert cli("run", "prepare_data", "--in", f"root={root}", "--out", dataset).code == 0
    image = next(p for p in sorted((toy_root / "JPEGImages").iterdir()))
    other = sorted((toy_root / "JPEGImages").iterdir())[1]
    s3.client.fput_object(s3.bucket, f"toyvoc/JPEGImages/{image.name}", str(other))

    monkeypatch.setenv("WSSS_CACHE_DIR", str(tmp_path / "another-pod"))
    result = cli("run", "train_cam", "--in", f"dataset={dataset}", "--out", tmp_path / "cam")
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert f"JPEGImages/{image.name} changed since prepare_data" in result.err
    assert not (tmp_path / "cam" / MANIFEST).exists()


@pytest.mark.slow
def test_incomplete_and_missing_remote_artifacts(cli, s3, dataset_artifact):
    uri = s3.upload_tree(dataset_artifact, "copy")
    assert cli("lineage", uri).code == 0
    s3.client.remove_object(s3.bucket, "copy/labels.json")
    result = cli("lineage", uri)
    assert result.code == 2 and "labels.json is missing" in result.err
    s3.client.remove_object(s3.bucket, "copy/manifest.json")
    result = cli("lineage", uri)
    assert result.code == 2 and "no manifest.json (not a wsss artifact" in result.err
    result = cli("run", "train_cam", "--in", f"dataset={uri}", "--out", "s3://nobucket-x/out")
    assert result.code == 2 and result.err.count("\n") == 1


@pytest.mark.slow
def test_outage_mid_upload_fails_bounded_without_manifest(
    cli, toy_root, own_s3_server, monkeypatch, tmp_path
):
    """The server dies after two uploads: retries are bounded, the error is one line, exit 2,
    and the bucket holds no manifest (the artifact does not look complete)."""
    server = own_s3_server
    s3 = s3_env(server.endpoint, monkeypatch, tmp_path)
    root = s3.upload_tree(toy_root, "toyvoc")
    toy_files = len(s3.keys("toyvoc/"))
    uploads = 0
    real_upload = Store.upload

    def upload_then_die(self, local, path):
        nonlocal uploads
        uploads += 1
        if uploads == 3:
            server.stop()
        real_upload(self, local, path)

    monkeypatch.setattr(Store, "upload", upload_then_die)
    start = time.monotonic()
    result = cli("run", "prepare_data", "--in", f"root={root}", "--out", f"s3://{s3.bucket}/ds")
    elapsed = time.monotonic() - start
    assert result.code == 2
    assert result.err.startswith("error: s3://") and result.err.count("\n") == 1
    assert "after 3 attempts" in result.err
    assert elapsed < 60
    _assert_no_secret(result.out, result.err)

    server.start()  # the same directory: the buckets come back
    deadline = time.monotonic() + 30
    while len(s3.keys("toyvoc/")) < toy_files and time.monotonic() < deadline:
        time.sleep(0.2)  # S3 answers before the filer has loaded its store
    assert len(s3.keys("toyvoc/")) == toy_files  # the listing below is not vacuous
    assert "ds/manifest.json" not in s3.keys("ds/")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"S3_ENDPOINT_URL": ""}, "S3_ENDPOINT_URL is not set"),
        ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL: expected http(s)://host[:port]"),
        ({"WSSS_S3_RETRIES": "many"}, "WSSS_S3_RETRIES: expected a whole number"),
        ({"WSSS_S3_WORKERS": "eight"}, "WSSS_S3_WORKERS: expected a whole number"),
        ({"S3_ENDPOINT_URL": "http://admin:hunter2@127.0.0.1:9"}, "credentials in the URL"),
        ({"S3_ENDPOINT_URL": "http://127.0.0.1:9/bucket"}, "without a path"),
        ({"S3_ENDPOINT_URL": "http://[::1"}, "expected http(s)://host[:port]"),
        ({"S3_ENDPOINT_URL": "http://127.0.0.1:99999"}, "expected http(s)://host[:port]"),
    ],
)
@pytest.mark.slow
def test_bad_storage_environment(cli, s3, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = cli("lineage", f"s3://{s3.bucket}/x")
    assert result.code == 2 and message in result.err and "hunter2" not in result.err


def test_transfers_run_concurrently_in_order_and_stop_at_the_first_error():
    s3 = Store("http://127.0.0.1:9", "key", "secret", retries=0, workers=4)  # no request made
    assert s3.each(lambda n: n * n, range(40)) == [n * n for n in range(40)]
    started = []

    def transfer(n: int) -> None:
        started.append(n)
        time.sleep(0.01)
        if n == 3:
            raise WsssError(f"object {n}: S3 download failed")

    with pytest.raises(WsssError, match="object 3"):
        s3.each(transfer, range(200))
    assert len(started) < 100  # those not started when 3 failed were dropped


@pytest.mark.parametrize("key", ["a/../b", "./a", "a//b", "a/."])
def test_a_dot_segment_in_an_s3_key_is_refused_before_any_work(cli, toy_root, key):
    result = cli("run", "prepare_data", "--in", f"root={toy_root}", "--out", f"s3://data/{key}")
    assert result.code == 2 and "'.' or '..' segment" in result.err, result.err


@pytest.mark.slow
def test_an_s3_output_gets_the_local_rules(cli, s3, toy_root):
    """Refused, before any work: a bucket's top, an output equal to, inside or above an input,
    and a prefix that holds objects but no wsss artifact (nothing there is changed)."""
    root = s3.upload_tree(toy_root, "toy")
    ds = f"s3://{s3.bucket}/runs/dataset"
    assert cli("run", "prepare_data", "--in", f"root={root}", "--out", ds).code == 0
    foreign = s3.upload_tree(toy_root / "ImageSets", "foreign")
    before = s3.keys("")
    cases = {
        f"s3://{s3.bucket}": "a bucket's top",
        ds: "overlap the input 'dataset'",
        f"{ds}/sub": "overlap the input 'dataset'",
        f"s3://{s3.bucket}/runs": "overlap the input 'dataset'",
        foreign: "not an artifact",
    }
    for out, message in cases.items():
        result = cli("run", "train_cam", "--in", f"dataset={ds}", "--out", out)
        assert result.code == 2 and message in result.err, (out, result.err)
        assert result.err.count("\n") == 1
    result = cli("run", "prepare_data", "--in", f"root={root}", "--out", f"{root}/ds")
    assert result.code == 2 and "overlap the input 'root'" in result.err
    assert s3.keys("") == before
    assert cli("run", "prepare_data", "--in", f"root={root}", "--out", f"{root}2").code == 0


@pytest.mark.parametrize("bucket", ["Upper_Case", "ab", "-dash", "a..b", "x" * 64])
@pytest.mark.slow
def test_an_invalid_bucket_name_is_one_line(cli, s3, bucket):
    result = cli("lineage", f"s3://{bucket}/runs/x")
    assert result.code == 2 and "not a valid bucket name" in result.err
    assert result.err.count("\n") == 1


@pytest.mark.slow
def test_weights_by_s3_uri_are_downloaded_once(s3, tmp_path, monkeypatch):
    weights = tmp_path / "resnet.pth"
    weights.write_bytes(b"pretend state dict" * 100)
    s3.client.fput_object(s3.bucket, "pretrained/resnet.pth", str(weights))
    uri = f"s3://{s3.bucket}/pretrained/resnet.pth"
    local = local_file(uri)
    assert local.name == "resnet.pth" and local.read_bytes() == weights.read_bytes()
    downloads = []
    monkeypatch.setattr(Store, "download", lambda *args: downloads.append(args))
    assert local_file(uri) == local and downloads == []  # cached by URI and ETag
    assert local_file("pretrained/x.pth") == Path("pretrained/x.pth") and local_file(None) is None
    with pytest.raises(WsssError, match=r"pretrained/nope.pth: no such object$"):
        local_file(f"s3://{s3.bucket}/pretrained/nope.pth")
