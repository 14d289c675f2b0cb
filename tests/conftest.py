"""Shared fixtures: a tiny ToyVOC, its `dataset` artifact, and a CLI runner."""

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio

from tests.s3server import ACCESS_KEY, SECRET, SeaweedS3
from wsss.cli import main
from wsss.config.params import Params
from wsss.data.toy import ToyConfig, generate
from wsss.runner import run_stage

TINY = ToyConfig(seed=3, train=16, val=6, size=48)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `wsss ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own exits
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A tiny ToyVOC, generated once; tests that modify it take `toy_copy`."""
    root = tmp_path_factory.mktemp("toy") / "toyvoc"
    generate(root, TINY)
    return root


@pytest.fixture
def toy_copy(toy_root, tmp_path) -> Path:
    root = tmp_path / "toyvoc"
    shutil.copytree(toy_root, root)
    return root


@pytest.fixture(scope="session")
def dataset_artifact(toy_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "dataset"
    run_stage("prepare_data", {"root": str(toy_root)}, out, Params())
    return out


@dataclass
class S3Env:
    endpoint: str
    bucket: str
    client: Minio

    def upload_tree(self, local: Path, prefix: str) -> str:
        """Every file under LOCAL to s3://bucket/PREFIX/; returns that URI."""
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            self.client.fput_object(self.bucket, key, str(path))
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        objects = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(o.object_name for o in objects)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The session's S3 server: SeaweedFS on loopback (tests/s3server.py)."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def own_s3_server(tmp_path):
    """An S3 server of the test's own, to stop and start again."""
    server = SeaweedS3(tmp_path / "seaweedfs").start()
    yield server
    server.stop()


def s3_env(endpoint: str, monkeypatch, tmp_path: Path) -> S3Env:
    """Point wsss at ENDPOINT (credentials, a fresh cache, few retries) and make a bucket."""
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("WSSS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WSSS_S3_RETRIES", "2")
    client = Minio(
        endpoint.removeprefix("http://"), ACCESS_KEY, SECRET, secure=False, region="us-east-1"
    )
    bucket = f"wsss-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    return S3Env(endpoint, bucket, client)


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path) -> Iterator[S3Env]:
    """A fresh bucket on the session's S3 server, with wsss's environment pointing at it."""
    yield s3_env(s3_server.endpoint, monkeypatch, tmp_path)
    print(s3_server.health())  # shown only when the test failed
