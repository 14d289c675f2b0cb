"""What code a stage runs: its import closure over the wsss sources (dvc.yaml lists it as the
stage's deps) and a digest of those files (the manifest's `code_digest`).

The digest names the code by content, so it is the same on every clone and install of the same
sources: an artifact made twice from identical code, params and inputs is identical bytes (a
git commit would change with every commit, even one that touches no code).
"""

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # the wsss package: sources are named relative to it


def module_file(module: str) -> Path | None:
    """The source file of wsss module MODULE (a package: its __init__.py); None if none."""
    parts = module.split(".")
    if parts[0] != "wsss":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(path: Path) -> set[str]:
    """The wsss modules PATH imports, at the top or inside functions (lazy imports count: they
    run when the code path does), with the packages each import executes."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            prefixes = (".".join(parts[: i + 1]) for i in range(len(parts)))
            found |= {m for m in prefixes if module_file(m)}  # not the namespace packages
    return found


@cache
def stage_sources(stage: str) -> frozenset[Path]:
    """Every wsss source file that computes STAGE's artifact: the stage module, the runner and
    what they import. Not the orchestrators that call the runner (the CLI, the KFP adapter):
    an edit of their help or argument handling changes no artifact, so it reruns nothing."""
    seen: set[str] = set()
    todo = [f"wsss.stages.{stage}", "wsss.runner"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += imports(module_file(module))
    return frozenset({module_file(m) for m in seen})


@cache
def code_digest(stage: str) -> str:
    """sha256 over STAGE's source files (relative names and bytes, in name order)."""
    h = hashlib.sha256()
    for path in sorted(stage_sources(stage)):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
