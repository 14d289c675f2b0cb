"""URIs inside manifests: local paths are stored relative to the artifact that names them, so a
whole tree of artifacts (a clone, a copied `artifacts/`) keeps its lineage when moved."""

import os
from pathlib import Path


def is_remote(uri: str) -> bool:
    return "://" in uri


def relative_uri(artifact_dir: Path, uri: str) -> str:
    """URI as seen from ARTIFACT_DIR: a relative POSIX path for local paths, unchanged otherwise."""
    if is_remote(uri):
        return uri
    return Path(os.path.relpath(Path(uri).resolve(), artifact_dir.resolve())).as_posix()


def resolve_uri(artifact_dir: Path, uri: str) -> str:
    """The inverse of relative_uri: a usable local path (or the remote URI)."""
    if is_remote(uri) or Path(uri).is_absolute():
        return uri
    return os.path.normpath(artifact_dir / uri)
