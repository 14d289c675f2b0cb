"""Helpers for tests that hand-make artifacts (no fixtures here: plain functions)."""

from pathlib import Path

from wsss.artifacts import open_artifact
from wsss.artifacts.manifest import InputRef, Manifest, hash_tree, write_manifest
from wsss.artifacts.uri import relative_uri
from wsss.params import digest


def seal(out: Path, kind: str, stage: str, inputs: dict[str, Path]) -> None:
    """Write OUT's manifest as a stage would: OUT becomes a complete artifact of KIND."""
    refs = {}
    for name, path in inputs.items():
        upstream = open_artifact(path)
        refs[name] = InputRef(
            uri=relative_uri(out, str(path)),
            kind=upstream.manifest.kind,
            manifest_digest=upstream.manifest_digest,
        )
    write_manifest(
        out,
        Manifest(
            kind=kind, stage=stage, wsss_version="0", code_revision="test",
            created_at="2026-01-01T00:00:00+00:00", params={"x": 1}, params_digest=digest({"x": 1}),
            inputs=refs, files=hash_tree(out), metrics={"loss": 0.5}, device="cpu", duration_s=1.0,
        ),
    )  # fmt: skip
