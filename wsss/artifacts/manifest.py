"""Artifacts: directories whose manifest.json, written last and atomically, marks them complete.

An artifact without a valid manifest is incomplete and every reader refuses it. The manifest
records what produced the directory (stage, params, code digest, inputs by URI and manifest
digest) and what is in it (file sizes and hashes), so lineage can be walked back to the dataset.
It holds only what determines the result: the same stage on the same code, params and inputs
writes the same bytes, so DVC's hashes and the manifest digests stay put across reruns and
fresh clones. When, how long and from which git commit it ran are in run.json beside it, which
no digest covers (and .dvcignore keeps out of DVC's hash).
"""

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import wsss
from wsss.config.params import digest
from wsss.errors import WsssError
from wsss.safe_paths import relative_path

MANIFEST = "manifest.json"
RUN_RECORD = "run.json"


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str  # relative to the artifact's own directory when both are local
    kind: str | None  # None: a raw dataset root, not an artifact
    manifest_digest: str | None


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    size: int


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    stage: str
    wsss_version: str
    code_digest: str  # sha256 of the wsss sources the stage ran (wsss.provenance)
    params: dict[str, Any]
    params_digest: str
    inputs: dict[str, InputRef]
    files: dict[str, FileEntry]
    metrics: dict[str, float]
    device: str

    @property
    def smoke(self) -> int | None:
        """A smoke run's images per split; None for a full run (its params have no smoke)."""
        section = self.params.get("smoke")
        return section.get("images") if isinstance(section, dict) else None


class PhaseCost(BaseModel):
    """One phase of a stage's run (wsss.progress): what `wsss estimate` scales."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    phase: str
    unit: Literal["step", "image"]
    done: int = Field(ge=0)
    seconds: float = Field(ge=0)
    seconds_per_unit: float = Field(ge=0)
    full: int = Field(ge=0)
    full_seconds: float | None = Field(default=None, ge=0)  # a training phase's own projection


class RunRecord(BaseModel):
    """The facts of one run that differ between two runs of the same work (run.json)."""

    model_config = ConfigDict(extra="forbid")

    created_at: str
    duration_s: float
    code_revision: str  # the git commit of the sources (-dirty), if known
    # What the run cost, for `wsss estimate`: each phase's unit (step, image), units done,
    # seconds per unit and the units of a full run (wsss.progress); the peak memory in bytes
    # ("cuda": torch's max_memory_allocated, "cpu_rss": the process's peak resident set).
    phases: list[PhaseCost] = []
    peak_memory: dict[str, int] = {}


class Artifact(BaseModel):
    """A complete artifact: where it is and what its manifest says."""

    path: Path
    manifest: Manifest
    manifest_digest: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(directory: Path) -> dict[str, FileEntry]:
    """Every file under DIRECTORY except the manifest and the run record, by POSIX relative
    path."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel not in (MANIFEST, RUN_RECORD):
            files[rel] = FileEntry(sha256=sha256_file(path), size=path.stat().st_size)
    return files


@cache
def code_revision() -> str:
    """The git commit of the wsss source (with -dirty), else WSSS_CODE_REVISION, else unknown."""
    if rev := os.environ.get("WSSS_CODE_REVISION"):
        return rev
    src = Path(wsss.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "wsss"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_text_atomic(path: Path, text: str) -> None:
    """PATH holds TEXT or what it held before, never a part (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # a failed write leaves nothing beside PATH
            tmp.unlink()


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """The last write of a stage: temp file, fsync, rename; readers see all of it or nothing."""
    write_text_atomic(directory / MANIFEST, manifest.model_dump_json(indent=1) + "\n")


def write_run_record(directory: Path, record: RunRecord) -> None:
    write_text_atomic(directory / RUN_RECORD, record.model_dump_json(indent=1) + "\n")


def parse_run_record(raw: bytes | None) -> RunRecord | None:
    """run.json's facts; None when absent or unreadable (DVC does not restore it, and no
    digest vouches for it: it informs, it never decides)."""
    if raw is None:
        return None
    try:
        return RunRecord.model_validate_json(raw)
    except ValidationError:
        return None


def read_run_record(directory: Path) -> RunRecord | None:
    path = directory / RUN_RECORD
    return parse_run_record(path.read_bytes() if path.is_file() else None)


def no_manifest(uri: str | Path) -> WsssError:
    return WsssError(f"{uri}: no {MANIFEST} (not a wsss artifact, or its stage did not finish)")


def require_files(uri: str | Path, manifest: Manifest, size_of: Callable[[str], int | None]):
    """Every file the manifest lists must be present at its size (SIZE_OF: None when absent)."""
    for rel, entry in manifest.files.items():
        if size_of(rel) != entry.size:
            raise WsssError(f"{uri}: incomplete artifact ({rel} is missing or has the wrong size)")


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """A manifest whose listed files all lie inside its artifact, or a one-line WsssError."""
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise WsssError(
            f"{where}: invalid manifest ({loc + ': ' if loc else ''}{err['msg']})"
        ) from None
    for rel in manifest.files:
        relative_path(rel, f"{where}: files")
    if digest(manifest.params) != manifest.params_digest:
        # the lineage would name params that did not make this artifact
        raise WsssError(f"{where}: params do not match params_digest (edited after it was written)")
    return manifest


# What every version's manifest holds: an artifact an older wsss wrote may be replaced.
MANIFEST_CORE = frozenset({"kind", "stage", "wsss_version", "params_digest", "inputs", "files"})


def is_wsss_manifest(raw: bytes) -> bool:
    """Whether RAW is a manifest wsss wrote, of this version or an older one."""
    try:
        found = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(found, dict) and found.keys() >= MANIFEST_CORE
