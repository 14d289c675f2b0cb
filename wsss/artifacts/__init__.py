"""Artifact directories, their manifests and lineage (docs/design.md §2)."""

from wsss.artifacts.manifest import (
    MANIFEST,
    Artifact,
    FileEntry,
    InputRef,
    Manifest,
    open_artifact,
    write_manifest,
)
from wsss.artifacts.uri import relative_uri, resolve_uri

__all__ = [
    "MANIFEST",
    "Artifact",
    "FileEntry",
    "InputRef",
    "Manifest",
    "open_artifact",
    "relative_uri",
    "resolve_uri",
    "write_manifest",
]
