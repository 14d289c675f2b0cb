"""URIs inside manifests: local paths are stored relative to the artifact that names them, so a
whole tree of artifacts (a clone, a copied `artifacts/`, a tree synced to a bucket) keeps its
lineage when moved; s3:// URIs are stored as they are."""

import os
import posixpath
from pathlib import Path


def is_remote(uri: str | Path) -> bool:
    return "://" in str(uri)


def relative_uri(artifact_dir: str | Path, uri: str) -> str:
    """URI as the artifact at ARTIFACT_DIR records it: relative to it when both are local paths,
    absolute when only URI is local, unchanged when remote."""
    if is_remote(uri):
        return uri
    if is_remote(artifact_dir):
        return Path(uri).resolve().as_posix()
    return Path(os.path.relpath(Path(uri).resolve(), Path(artifact_dir).resolve())).as_posix()


def resolve_uri(artifact_uri: str | Path, uri: str) -> str:
    """The inverse of relative_uri: a usable local path or remote URI."""
    if is_remote(uri) or Path(uri).is_absolute():
        return uri
    base = str(artifact_uri)
    if is_remote(base):
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, uri))}"
    return os.path.normpath(Path(base) / uri)
