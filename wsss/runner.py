"""The one runner every orchestrator (CLI, DVC, KFP) calls: it checks a stage's inputs and
output, runs the stage in the output's staging directory, times it (run.json), writes the
manifest last and only then puts the new artifact in place (wsss.artifacts.output)."""

import hashlib
import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import wsss
from wsss.artifacts.manifest import (
    Artifact,
    InputRef,
    Manifest,
    RunRecord,
    code_revision,
    hash_tree,
    now_iso,
    write_manifest,
    write_run_record,
)
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.output import (
    RESUME_FILES,
    begin,
    check_out,
    exclusive,
    reading,
    staging_of,
    swap,
)
from wsss.artifacts.storage import cache_dir, check_remote_out, push_artifact
from wsss.artifacts.uri import is_remote, relative_uri
from wsss.config.params import Params, digest
from wsss.errors import WsssError, file_problem
from wsss.launcher import launch
from wsss.progress import peak_memory, phase_costs, start_phases
from wsss.provenance import code_digest
from wsss.stages import Stage, StageInputs, get_stage

METRICS = "metrics.json"


def open_inputs(stage: Stage, uris: dict[str, str], verify: bool = True) -> StageInputs:
    """The stage's inputs opened (VERIFY: every file hashed against its manifest)."""
    missing = [n for n in stage.inputs if n not in uris]
    if missing:
        raise WsssError(f"{stage.name}: missing --in {missing[0]}=URI")
    extra = [n for n in uris if n not in stage.inputs]
    if extra:
        raise WsssError(
            f"{stage.name}: unknown input '{extra[0]}' (takes: {', '.join(stage.inputs)})"
        )
    return {
        name: uris[name] if kind is None else open_artifact(uris[name], kind, verify)
        for name, kind in stage.inputs.items()
    }


def _input_ref(out: str | Path, uri: str, opened: Artifact | str) -> InputRef:
    """How the manifest names an input: relative URI, plus kind and digest for artifacts."""
    if isinstance(opened, str):  # a raw dataset root
        return InputRef(uri=relative_uri(out, uri), kind=None, manifest_digest=None)
    return InputRef(
        uri=relative_uri(out, uri),
        kind=opened.manifest.kind,
        manifest_digest=opened.manifest_digest,
    )


def run_stage(
    name: str,
    uris: dict[str, str],
    out: str | Path,
    params: Params,
    recorded_uris: dict[str, str] | None = None,
) -> tuple[Manifest, RunRecord] | None:
    """Run one stage into OUT and return its manifest (written last: OUT is complete after)
    and its run record.

    Inputs and OUT may be s3:// URIs: inputs are fetched into the cache, OUT is written in a
    local staging directory (where a training stage also resumes) and uploaded manifest last.
    RECORDED_URIS names inputs in the manifest by other URIs than the paths read (a KFP launcher
    hands local copies of s3:// artifacts). Under torchrun every process runs the stage; only
    rank 0 prepares OUT and writes the manifest, the others return None.
    """
    stage = get_stage(name)
    main_process = launch().is_main
    read = [Path(uris[n]) for n, kind in stage.inputs.items() if kind and not is_remote(uris[n])]
    with reading(read), _disk_errors(out):  # no wsss run replaces an input while it is read
        return _run_locked(stage, uris, out, params, recorded_uris or {}, main_process)


def _run_locked(
    stage: Stage,
    uris: dict[str, str],
    out: str | Path,
    params: Params,
    recorded_uris: dict[str, str],
    main_process: bool,
) -> tuple[Manifest, RunRecord] | None:
    inputs = open_inputs(stage, uris, verify=main_process)  # hashed once, not once per process
    recorded = uris | recorded_uris
    _check_smoke(inputs, recorded, params)
    remote_out = is_remote(out)
    if remote_out:  # before hours of work, not after
        check_remote_out(str(out), recorded)
    local = {n: a.path if isinstance(a, Artifact) else Path(a) for n, a in inputs.items()}
    local = {n: p for n, p in local.items() if not is_remote(str(p))}
    target = _staging_dir(str(out)) if remote_out else check_out(out, local)
    if not main_process:  # rank 0 prepares the directory and the manifest
        _run_module(stage, inputs, staging_of(target), params)
        return None
    with exclusive(target):
        staging = begin(target, RESUME_FILES if stage.training else ())
        created, start = now_iso(), time.monotonic()
        start_phases()
        metrics, device = _run_module(stage, inputs, staging, params)
        record = RunRecord(
            created_at=created,
            duration_s=round(time.monotonic() - start, 3),
            code_revision=code_revision(),
            phases=phase_costs(),
            peak_memory=peak_memory(),
        )
        (staging / METRICS).write_text(metrics_json(metrics))
        sections = (stage.section, *stage.also_reads, "runtime")
        sections += ("smoke",) if params.smoke.on else ()  # a full run's manifest is as before
        resolved = {section: getattr(params, section).model_dump() for section in sections}
        files = hash_tree(staging)
        manifest = Manifest(
            kind=stage.kind,
            stage=stage.name,
            wsss_version=wsss.__version__,
            code_digest=code_digest(stage.name),
            params=resolved,
            params_digest=digest(resolved),
            inputs={n: _input_ref(out, recorded[n], opened) for n, opened in inputs.items()},
            files=files,
            metrics=metrics,
            device=device,
        )
        write_run_record(staging, record)
        write_manifest(staging, manifest)
        swap(staging, target)
    if remote_out:
        push_artifact(target, str(out), list(files))
    return manifest, record


def _check_smoke(inputs: StageInputs, uris: dict[str, str], params: Params) -> None:
    """A full run never reads a smoke run's artifact: a smoke model never becomes a result."""
    if params.smoke.on:
        return
    for name, opened in inputs.items():
        if isinstance(opened, Artifact) and opened.manifest.smoke is not None:
            raise WsssError(
                f"{uris[name]}: a smoke run's {opened.manifest.kind} "
                f"({opened.manifest.smoke} images per split); a full run does not read it "
                "(rerun its stage without --smoke, or give this one --smoke too)"
            )


def metrics_json(metrics: dict[str, float]) -> str:
    """A stage's metrics as the JSON of its metrics.json (and of `wsss run --metrics`)."""
    return json.dumps(metrics, indent=1) + "\n"


def _run_module(stage: Stage, inputs: StageInputs, out: Path, params: Params):
    module = importlib.import_module(f"wsss.stages.{stage.name}")
    return module.run(inputs, out, params)


@contextmanager
def _disk_errors(out: str | Path) -> Iterator[None]:
    """A full disk or a read-only place, in the stage or while its artifact is sealed, is one
    line, not a traceback (the old artifact at OUT stays: the swap comes last)."""
    try:
        yield
    except OSError as exc:
        if problem := file_problem(exc, out):
            raise problem from None
        raise


def _staging_dir(uri: str) -> Path:
    """Where a stage whose output is an s3:// URI writes before the upload (kept: resumes)."""
    return cache_dir() / "staging" / hashlib.sha256(uri.encode()).hexdigest()[:32]
