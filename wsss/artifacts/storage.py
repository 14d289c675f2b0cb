"""Artifacts and dataset roots in S3-compatible object storage (MinIO, SeaweedFS, AWS) via minio.

The endpoint and credentials come from the environment only (`S3_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never from params, and no error or log line names
them. Every request is retried a bounded number of times (`WSSS_S3_RETRIES`, default 3) with
exponential backoff; then the operation fails with one WsssError line. Many objects move
concurrently (`WSSS_S3_WORKERS` threads, default 8: each request waits mostly on the network), the
first failure stops those not yet started. An artifact is uploaded manifest last (and its old
manifest removed first), so a reader never sees a half-written artifact as complete. Local copies
live under `WSSS_CACHE_DIR` (default ~/.cache/wsss): artifacts by manifest digest, dataset roots by
dataset digest, each put in place by one rename, so a pod fetches each once and the tasks of a run
may share one cache volume (a copy another task finished first is kept).
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from wsss.artifacts.manifest import (
    MANIFEST,
    RUN_RECORD,
    Manifest,
    RunRecord,
    is_wsss_manifest,
    no_manifest,
    parse_manifest,
    parse_run_record,
    require_files,
    sha256_file,
)
from wsss.errors import WsssError, file_problem
from wsss.safe_paths import relative_path

ENDPOINT_ENV = "S3_ENDPOINT_URL"
RETRIES_ENV = "WSSS_S3_RETRIES"
WORKERS_ENV = "WSSS_S3_WORKERS"
CACHE_ENV = "WSSS_CACHE_DIR"
COMPLETE = ".complete"  # marks a finished local copy in the cache
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's naming rules

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class S3Path:
    bucket: str
    key: str  # without leading or trailing "/"; "" is the bucket's top

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}".rstrip("/")

    def child(self, rel: str) -> "S3Path":
        return S3Path(self.bucket, f"{self.key}/{rel}".strip("/"))


# KFP's default pipeline root is minio://…: the same protocol on the same kind of endpoint.
SCHEMES = ("s3://", "minio://")


def is_s3(uri: object) -> bool:
    return str(uri).startswith(SCHEMES)


def parse_s3(uri: str) -> S3Path:
    if not is_s3(uri):
        raise WsssError(f"{uri}: expected an s3://bucket/prefix URI")
    bucket, _, key = uri.partition("://")[2].partition("/")
    if not bucket:
        raise WsssError(f"{uri}: the URI names no bucket")
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise WsssError(
            f"{uri}: '{bucket}' is not a valid bucket name (3-63 lowercase letters, digits, '.' "
            "and '-', starting and ending with a letter or digit)"
        )
    key = key.strip("/")
    if key and any(part in ("", ".", "..") for part in key.split("/")):
        # S3 keeps them literally, a local copy would not: the two would name different things
        raise WsssError(f"{uri}: an empty, '.' or '..' segment in the key")
    return S3Path(bucket, key)


def _inside(inner: S3Path, outer: S3Path) -> bool:
    """Whether INNER is OUTER or lies under it, segment-wise (r/a is not under r/ab)."""
    return inner.bucket == outer.bucket and (
        not outer.key or inner.key == outer.key or inner.key.startswith(f"{outer.key}/")
    )


def check_remote_out(out: str, inputs: dict[str, str]) -> None:
    """The local output rules for an s3:// OUT, checked before any work: not a bucket's top,
    not overlapping an s3:// input (INPUTS: name -> URI), and either empty or a wsss artifact."""
    where = parse_s3(out)
    if not where.key:
        raise WsssError(f"{out}: a bucket's top; name a prefix for the artifact (s3://bucket/p)")
    for name, uri in inputs.items():
        if is_s3(uri) and (_inside(where, parse_s3(uri)) or _inside(parse_s3(uri), where)):
            raise WsssError(
                f"{out}: the output would overlap the input '{name}' ({uri}); "
                "choose a prefix outside it"
            )
    s3 = store()
    s3.require_bucket(where)
    raw = s3.read(where.child(MANIFEST))
    if raw is not None:
        if not is_wsss_manifest(raw):
            raise WsssError(f"{out}/{MANIFEST}: not a wsss manifest; refusing to replace {out}")
    elif s3.any_object(where):
        raise WsssError(f"{out}: holds objects and is not an artifact; refusing to use it")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "wsss")


class Store:
    """One S3 endpoint: the few operations artifacts and datasets need, each retried and wrapped."""

    def __init__(
        self, endpoint_url: str, access_key: str, secret_key: str, retries: int, workers: int
    ) -> None:
        try:
            parts = urlsplit(endpoint_url)
            parts.port  # noqa: B018 (raises on a port that is not a number in 0..65535)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise WsssError(f"{ENDPOINT_ENV}: expected http(s)://host[:port], got '{endpoint_url}'")
        if "@" in parts.netloc:  # never echo it: it may hold a password
            raise WsssError(
                f"{ENDPOINT_ENV}: credentials in the URL are not used; expected http(s)://host[:port]"
                " and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        if parts.path.strip("/") or parts.query:
            raise WsssError(f"{ENDPOINT_ENV}: expected http(s)://host[:port] without a path")
        self.endpoint = parts.netloc
        self.retries = retries
        self.workers = workers
        retry = urllib3.Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,  # PUTs too: every request we make is idempotent
        )
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120), retries=retry, maxsize=workers
        )
        self.client = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            http_client=http,
        )

    def _call(self, what: str, where: S3Path, fn: Callable[[], T], local: Path | None = None) -> T:
        """FN, its failures as one WsssError; one of LOCAL's disk (the cache) named as such."""
        try:
            return fn()
        except S3Error as exc:
            raise WsssError(f"{where.uri}: S3 {what} failed ({exc.code})") from None
        except OSError as exc:
            if problem := file_problem(exc, local):  # the local side: the cache's disk, not S3
                raise problem from None
            raise self._failed(what, where, exc) from None
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise self._failed(what, where, exc) from None

    def _failed(self, what: str, where: S3Path, exc: Exception) -> WsssError:
        return WsssError(
            f"{where.uri}: S3 {what} failed at {self.endpoint} after {self.retries + 1} "
            f"attempts ({type(exc).__name__})"
        )

    def _objects(self, prefix: S3Path) -> Iterator[tuple[str, int]]:
        """(relative key, size) of the objects under PREFIX, listed lazily, page by page."""
        start = f"{prefix.key}/" if prefix.key else ""
        for o in self.client.list_objects(prefix.bucket, prefix=start, recursive=True):
            if not o.is_dir:
                yield o.object_name[len(start) :], o.size or 0

    def list(self, prefix: S3Path) -> dict[str, int]:
        """Relative key -> size of every object under PREFIX."""
        return self._call("listing", prefix, lambda: dict(self._objects(prefix)))

    def any_object(self, prefix: S3Path) -> bool:
        """Whether any object lies under PREFIX (one listing page, not the whole listing)."""
        return self._call("listing", prefix, lambda: next(self._objects(prefix), None) is not None)

    def read(self, path: S3Path) -> bytes | None:
        """The object's bytes, or None when there is no such object."""

        def get() -> bytes | None:
            try:
                response = self.client.get_object(path.bucket, path.key)
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    return None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("download", path, get)

    def download(self, path: S3Path, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            "download", path, lambda: self.client.fget_object(path.bucket, path.key, local), local
        )

    def upload(self, local: Path, path: S3Path) -> None:
        self._call("upload", path, lambda: self.client.fput_object(path.bucket, path.key, local))

    def etag(self, path: S3Path) -> str:
        def stat() -> str:
            try:
                return self.client.stat_object(path.bucket, path.key).etag or ""
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    raise WsssError(f"{path.uri}: no such object") from None
                raise

        return self._call("stat", path, stat)

    def require_bucket(self, path: S3Path) -> None:
        if not self._call("bucket check", path, lambda: self.client.bucket_exists(path.bucket)):
            raise WsssError(f"{path.uri}: bucket '{path.bucket}' does not exist")

    def remove(self, path: S3Path) -> None:
        self._call("delete", path, lambda: self.client.remove_object(path.bucket, path.key))

    def each(self, fn: Callable[[T], R], items: Iterable[T]) -> "list[R]":  # (list: a method here)
        """FN of every item, on up to `workers` threads, in ITEMS' order. The first error (in
        that order) is raised once the running calls end; calls not yet started are dropped."""
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="s3") as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


@cache
def _store(endpoint: str, access_key: str, secret_key: str, retries: int, workers: int) -> Store:
    return Store(endpoint, access_key, secret_key, retries, workers)


def _whole_number(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        raise WsssError(f"{name}: expected a whole number") from None


def store() -> Store:
    """The Store the environment describes (one client per process and settings)."""
    endpoint = os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        raise WsssError(f"{ENDPOINT_ENV} is not set: it names the S3 endpoint of s3:// URIs")
    return _store(
        endpoint,
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
        os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        max(_whole_number(RETRIES_ENV, 3), 0),
        max(_whole_number(WORKERS_ENV, 8), 1),
    )


# -- artifacts ---------------------------------------------------------------------------------


def read_remote_manifest(uri: str) -> tuple[Manifest, bytes]:
    """The manifest of the artifact at URI and its raw bytes; its files must all be present."""
    s3 = store()
    where = parse_s3(uri)
    raw = s3.read(where.child(MANIFEST))
    if raw is None:
        raise no_manifest(uri)
    manifest = parse_manifest(raw, f"{uri}/{MANIFEST}")
    require_files(uri, manifest, s3.list(where).get)
    return manifest, raw


def fetch_artifact(uri: str) -> Path:
    """A verified local copy of the artifact at URI, kept in the cache by manifest digest."""
    manifest, raw = read_remote_manifest(uri)
    local = cache_dir() / "artifacts" / hashlib.sha256(raw).hexdigest()[:32]
    if (local / MANIFEST).is_file():
        return local
    expected = {rel: entry.sha256 for rel, entry in manifest.files.items()}
    with _staging(local) as tmp:
        if rel := _download_checked(parse_s3(uri), expected, tmp):
            raise WsssError(f"{uri}: {rel} does not match its manifest (changed while read?)")
        (tmp / MANIFEST).write_bytes(raw)  # last: the copy is complete from here on
    return local


def push_artifact(local: Path, uri: str, files: list[str]) -> None:
    """Upload the artifact directory LOCAL (its FILES and run record, then its manifest) to
    URI."""
    s3 = store()
    where = parse_s3(uri)
    s3.remove(where.child(MANIFEST))  # an old manifest must not vouch for new files
    rels = [*files, *([RUN_RECORD] if (local / RUN_RECORD).is_file() else [])]
    s3.each(lambda rel: s3.upload(local / rel, where.child(rel)), rels)
    s3.upload(local / MANIFEST, where.child(MANIFEST))  # only once every file is there


def read_remote_run_record(uri: str) -> RunRecord | None:
    return parse_run_record(store().read(parse_s3(uri).child(RUN_RECORD)))


def local_file(uri: str | None) -> Path | None:
    """A file named by a local path or an s3:// URI (weights), as a local path; s3:// objects are
    downloaded once per machine into the cache, keyed by URI and ETag."""
    if uri is None or not is_s3(uri):
        return None if uri is None else Path(uri)
    where = parse_s3(uri)
    key = hashlib.sha256(f"{uri}\n{store().etag(where)}".encode()).hexdigest()[:32]
    local = cache_dir() / "files" / key
    if not local.is_dir():
        with _staging(local) as tmp:
            store().download(where, tmp / Path(where.key).name)
    return local / Path(where.key).name


# -- dataset roots -----------------------------------------------------------------------------


def sync_root(uri: str) -> Path:
    """A fresh local copy of every object under the dataset root URI (prepare_data reads it)."""
    s3, where = store(), parse_s3(uri)
    objects = s3.list(where)
    if not objects:
        raise WsssError(f"{uri}: no objects under this dataset root")
    for rel in objects:
        relative_path(rel, f"{uri}: object key")
    target = cache_dir() / "roots" / hashlib.sha256(uri.encode()).hexdigest()[:32]
    shutil.rmtree(target, ignore_errors=True)
    with _staging(target) as tmp:
        s3.each(lambda rel: s3.download(where.child(rel), tmp / rel), objects)
    return target


def cached_root(uri: str, root_files: dict[str, dict], root_digest: str) -> Path:
    """The dataset root URI synced once per machine into the cache, verified file by file against
    the digests prepare_data recorded (a root changed since then is an error, not a silent mix)."""
    local = cache_dir() / "datasets" / root_digest[:32]
    if (local / COMPLETE).is_file():
        return local
    expected = {rel: entry["sha256"] for rel, entry in root_files.items()}
    with _staging(local) as tmp:
        if rel := _download_checked(parse_s3(uri), expected, tmp):
            raise WsssError(
                f"{uri}: {rel} changed since prepare_data indexed it (rerun prepare_data)"
            )
        (tmp / COMPLETE).write_text(json.dumps({"uri": uri, "digest": root_digest}) + "\n")
    return local


def _download_checked(where: S3Path, expected: dict[str, str], dest: Path) -> str | None:
    """Download each file of EXPECTED (relative key -> sha256) under WHERE into DEST; the first
    whose bytes differ from its sha256, or None."""
    s3 = store()
    for rel in expected:
        relative_path(rel, f"{where.uri}: listed file")

    def fetch(rel: str) -> bool:
        s3.download(where.child(rel), dest / rel)
        return sha256_file(dest / rel) == expected[rel]

    matches = s3.each(fetch, expected)
    return next((rel for rel, ok in zip(expected, matches, strict=True) if not ok), None)


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary sibling of TARGET that becomes TARGET only when the block succeeds, by one
    rename. A TARGET that another process (a task sharing the cache) put in place meanwhile is
    kept: entries are named by their content, so it holds the same files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, target)
    except OSError:  # ENOTEMPTY/EEXIST: it is there
        shutil.rmtree(tmp, ignore_errors=True)
