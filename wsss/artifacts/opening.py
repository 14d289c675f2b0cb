"""Opening an artifact for reading, local or on S3: the one place a reader checks that an
artifact is complete, of its kind, and unchanged since its stage wrote it."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

from wsss.artifacts.manifest import (
    MANIFEST,
    RUN_RECORD,
    Artifact,
    Manifest,
    no_manifest,
    parse_manifest,
    require_files,
    sha256_file,
)
from wsss.artifacts.storage import fetch_artifact, is_s3
from wsss.errors import WsssError


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _unlisted(directory: Path, manifest: Manifest) -> Iterator[str]:
    """The files under DIRECTORY that MANIFEST does not list (its own two files aside)."""
    for path in directory.rglob("*"):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and rel not in manifest.files and rel not in (MANIFEST, RUN_RECORD):
            yield rel


def open_artifact(uri: str | Path, kind: str | None = None, verify: bool = True) -> Artifact:
    """A complete artifact of the expected KIND, or a one-line WsssError saying what is wrong.

    An s3:// URI is fetched (once, verified) into the local cache and opened there. With VERIFY
    every listed file is hashed against the manifest (a model changed in place is refused, not
    used); without, only their sizes are checked (lineage, which reads no file).
    """
    path = fetch_artifact(str(uri)) if is_s3(uri) else Path(uri)
    if not path.is_dir():
        raise WsssError(f"{uri}: artifact directory not found")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise no_manifest(uri)
    raw = manifest_path.read_bytes()
    manifest = parse_manifest(raw, str(manifest_path))
    if kind is not None and manifest.kind != kind:
        raise WsssError(f"{uri}: expected an artifact of kind '{kind}', got '{manifest.kind}'")
    require_files(uri, manifest, lambda rel: _size(path / rel))
    for rel in _unlisted(path, manifest):
        # its stage lists every file it writes: an unlisted one was put there later, and a
        # reader would use it unverified
        raise WsssError(f"{uri}: {rel} is not listed in its manifest (added after its stage ran)")
    if verify:
        for rel, entry in manifest.files.items():
            if sha256_file(path / rel) != entry.sha256:
                raise WsssError(
                    f"{uri}: {rel} differs from its manifest (changed after its stage wrote it)"
                )
    return Artifact(path=path, manifest=manifest, manifest_digest=hashlib.sha256(raw).hexdigest())
