"""Lineage: follow an artifact's inputs back to the dataset root.

Answers "which CAM checkpoint and which params produced these masks?": every node shows its
stage, kind, key params (method, backbone, epochs, ...), params and code digests, device and
metrics (and, from its run record
when there is one, when it ran, for how long and from which commit), and is flagged when the
upstream artifact found at the recorded URI is not the one that was used.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsss.artifacts.manifest import Manifest, RunRecord, read_run_record
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.storage import parse_s3, read_remote_manifest, read_remote_run_record, store
from wsss.artifacts.uri import is_remote, resolve_uri
from wsss.errors import WsssError


def read_run(uri: str) -> RunRecord | None:
    if is_remote(uri):
        return read_remote_run_record(uri)
    return read_run_record(Path(uri))


def read_manifest(uri: str) -> tuple[Manifest, str]:
    """An artifact's manifest and its digest; over S3 without downloading the artifact's files."""
    if is_remote(uri):
        manifest, raw = read_remote_manifest(uri)
        return manifest, hashlib.sha256(raw).hexdigest()
    artifact = open_artifact(uri, verify=False)
    return artifact.manifest, artifact.manifest_digest


def read_json(uri: str, rel: str) -> Any | None:
    """The JSON file REL of the artifact at URI (over S3: one small GET), or None if absent."""
    if is_remote(uri):
        raw = store().read(parse_s3(uri).child(rel))
    else:
        path = Path(uri) / rel
        raw = path.read_bytes() if path.is_file() else None
    return None if raw is None else json.loads(raw)


def find(tree: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The first node of KIND in a lineage tree (depth first), or None."""
    if tree.get("kind") == kind:
        return tree
    found = (find(child, kind) for child in tree.get("inputs", {}).values())
    return next((node for node in found if node is not None), None)


# A pipeline is seven stages deep; a chain far longer is a loop of reruns or a forged manifest.
MAX_DEPTH = 100


@dataclass
class _Seen:
    """What one lineage walk has met: manifests read (or why not), run records read,
    artifacts expanded."""

    read: dict[str, tuple[Manifest, str] | WsssError] = field(default_factory=dict)
    runs: dict[str, RunRecord | None] = field(default_factory=dict)
    expanded: set[str] = field(default_factory=set)


def walk(
    uri: str,
    expected_digest: str | None = None,
    seen: _Seen | None = None,
    path: tuple[str, ...] = (),
    runs: bool = True,
) -> dict[str, Any]:
    """A JSON-ready tree: this artifact's facts and, under "inputs", its inputs' trees. Each
    manifest is read once and each artifact's inputs are given once: a later occurrence is
    marked "repeated" without them, so the tree grows with the artifacts, not with the paths
    between them. An artifact that is its own ancestor (PATH: the URIs above) ends the branch
    as an error. RUNS: with each artifact's run record, when it has one."""
    seen = _Seen() if seen is None else seen
    if uri in path:
        return {"uri": uri, "error": "a cycle: this artifact is among its own inputs"}
    if len(path) >= MAX_DEPTH:  # the tree, its JSON and its text stay within Python's recursion
        return {"uri": uri, "error": f"over {MAX_DEPTH} levels deep; run wsss lineage on it"}
    if uri not in seen.read:
        try:
            seen.read[uri] = read_manifest(uri)
        except WsssError as exc:
            seen.read[uri] = exc
    found = seen.read[uri]
    if isinstance(found, WsssError):
        return {"uri": uri, "error": str(found)}
    m, manifest_digest = found
    node: dict[str, Any] = {
        "uri": uri,
        "kind": m.kind,
        "stage": m.stage,
        "key_params": key_params(m.params),
        "params": m.params,
        "params_digest": m.params_digest,
        "code_digest": m.code_digest,
        "metrics": m.metrics,
        "device": m.device,
        "smoke": m.smoke,
        "inputs": {},
    }
    if runs and uri not in seen.runs:
        seen.runs[uri] = read_run(uri)
    if runs and (run := seen.runs[uri]) is not None:
        node["run"] = run.model_dump()
    if expected_digest is not None and expected_digest != manifest_digest:
        node["changed"] = True  # rewritten since the downstream artifact used it
    if uri in seen.expanded:
        return node | {"repeated": True}
    seen.expanded.add(uri)
    for name, ref in m.inputs.items():
        where = resolve_uri(uri, ref.uri)
        node["inputs"][name] = (
            {"uri": where, "kind": "root"}
            if ref.kind is None
            else walk(where, ref.manifest_digest, seen, (*path, uri), runs)
        )
    return node


# The params a reader asks about first ("which method, which backbone, how long?"); the digest
# stands for the rest (every value is in the manifest and in `wsss lineage --json`)
KEY_PARAMS = ("method", "backbone", "encoder", "weights", "epochs", "batch_size", "lr", "threshold")


def key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The KEY_PARAMS of a manifest's params sections (runtime's aside), in that order."""
    sections = [s for name, s in params.items() if name != "runtime" and isinstance(s, dict)]
    found = {key: section[key] for section in sections for key in KEY_PARAMS if key in section}
    return {key: found[key] for key in KEY_PARAMS if key in found}


def _line(values: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def format_tree(
    node: dict[str, Any], name: str = "", depth: int = 0, seen: set[str] | None = None
) -> list[str]:
    """Indented text, one artifact per line plus a line of details; an artifact that several
    others read (the dataset) is detailed once and named on one line after that."""
    seen = set() if seen is None else seen
    pad = "  " * depth
    label = f"{name}: " if name else ""
    if "error" in node:
        return [f"{pad}{label}{node['uri']}  [unavailable: {node['error']}]"]
    if node["kind"] == "root":
        return [f"{pad}{label}{node['uri']}  [dataset root]"]
    flag = "  [CHANGED since it was used]" if node.get("changed") else ""
    if node.get("smoke"):
        flag += f"  [SMOKE RUN: {node['smoke']} images per split]"
    head = f"{pad}{label}{node['kind']} <- {node['stage']}  {node['uri']}{flag}"
    if node["uri"] in seen:
        return [f"{head}  (as above)"]
    seen.add(node["uri"])
    details = f"params {node['params_digest'][:12]}  code {node['code_digest'][:12]}  "
    details += node["device"]
    if run := node.get("run"):
        rev = run["code_revision"]
        rev = rev[:12] + ("-dirty" if rev.endswith("-dirty") else "")
        details += f"  created {run['created_at']}  rev {rev}  "
        details += f"{run['duration_s']:.1f}s"
    lines = [head]
    if node.get("key_params"):
        lines.append(f"{pad}    {_line(node['key_params'])}")
    lines.append(f"{pad}    {details}")
    if node["metrics"]:
        lines.append(f"{pad}    {_line(node['metrics'])}")
    for input_name, child in node["inputs"].items():
        lines += format_tree(child, input_name, depth + 1, seen)
    return lines


def lineage(uri: str | Path, runs: bool = True) -> dict[str, Any]:
    """The tree for URI; the artifact itself must be readable. Without RUNS the tree holds only
    what the manifests vouch for (an artifact that embeds it stays reproducible bytes)."""
    seen = _Seen(read={str(uri): read_manifest(str(uri))})
    return walk(str(uri), seen=seen, runs=runs)
