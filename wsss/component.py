"""The one call a KFP component makes: run a stage on the launcher's artifacts.

KFP hands each component local paths of its input artifacts (`.path`) and their storage URIs
(`.uri`, s3://… on a cluster). The stage reads the paths and records the URIs, so lineage read
from the bucket leads to the bucket. A training stage in a pod with several GPUs runs under
torchrun, one process per GPU (`WSSS_NPROC` overrides the count). Artifacts are duck-typed: the
library never imports kfp.
"""

import base64
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from wsss.artifacts.manifest import Manifest, RunRecord, read_run_record
from wsss.artifacts.opening import open_artifact
from wsss.config.params import Params, parse_params
from wsss.config.train_cam import METHOD_PARAMS, switch_method
from wsss.errors import WsssError
from wsss.runner import open_inputs, run_stage
from wsss.stages import Stage, get_stage

NPROC_ENV = "WSSS_NPROC"
# `wsss-pipeline run-local` names a file here: a failing task adds its `error:` line to it, so the
# run's last line can repeat it (kfp.local reports only that the task failed)
ERRORS_ENV = "WSSS_ERRORS_FILE"


class KfpArtifact(Protocol):
    path: str
    uri: str
    metadata: dict


def run_component(
    stage_name: str,
    inputs: dict[str, Any],
    output: KfpArtifact,
    params: str,
    runtime: str,
    metrics: Any = None,
    report: KfpArtifact | None = None,
    confusion: Any = None,
    overrides: dict[str, Any] | None = None,
    *,
    smoke: str,
) -> None:
    """Run STAGE_NAME with INPUTS (KFP artifacts, or strings for raw roots) into OUTPUT.

    PARAMS is the stage's params section, RUNTIME and SMOKE those sections, as JSON (pipeline
    parameters). What the KFP UI shows: the headline metrics (and evaluate's IoU per class) in
    METRICS (a Metrics output); in REPORT (HTML), evaluate's report.html or a training stage's
    summary with its loss curve; evaluate's confusion matrix in CONFUSION (ClassificationMetrics).
    OVERRIDES: the run's typed knobs for this section (a set one replaces its key). Bad input
    exits 2 with one `error:` line, as the CLI does.
    """
    try:
        stage = get_stage(stage_name)
        section = _with_overrides(_json(params, stage.section), stage.section, overrides or {})
        sections = {"runtime": _json(runtime, "runtime"), "smoke": _json(smoke, "smoke")}
        config = parse_params({stage.section: section} | sections, "pipeline parameters")
        paths = {n: a if isinstance(a, str) else a.path for n, a in inputs.items()}
        uris = {n: a.uri for n, a in inputs.items() if not isinstance(a, str)}
        nproc = _processes(stage, config)
        if nproc > 1:
            manifest, run = _run_under_torchrun(stage, paths, output.path, config, uris, nproc)
        else:
            manifest, run = run_stage(stage_name, paths, Path(output.path), config, uris)
    except WsssError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if errors := os.environ.get(ERRORS_ENV):
            with open(errors, "a", encoding="utf-8") as fh:
                fh.write(f"{stage_name}: {exc}\n")
        raise SystemExit(2) from None
    output.metadata["kind"] = manifest.kind
    output.metadata["params_digest"] = manifest.params_digest
    output.metadata["code_digest"] = manifest.code_digest
    output.metadata["code_revision"] = run.code_revision if run else "unknown"
    out = Path(output.path)
    scores = json.loads((out / "scores.json").read_text()) if stage.name == "evaluate" else {}
    if metrics is not None:
        for name, value in manifest.metrics.items():
            metrics.log_metric(name, value)
        for name, iou in scores.get("iou_per_class", {}).items():
            if iou is not None:
                metrics.log_metric(f"iou_{name}", iou)
    if confusion is not None and scores:
        names = list(scores["iou_per_class"])  # the last column (no valid prediction) is left out
        confusion.log_confusion_matrix(names, [row[: len(names)] for row in scores["confusion"]])
    if report is not None:
        if (out / "report.html").is_file():
            shutil.copyfile(out / "report.html", report.path)
        else:
            Path(report.path).write_text(training_summary(out, manifest), encoding="utf-8")


def training_summary(out: Path, manifest: Manifest) -> str:
    """A training stage's page for the KFP UI: its metrics, its loss curve, what made it."""
    rows = "".join(f"<tr><td>{k}</td><td>{v:.4g}</td></tr>" for k, v in manifest.metrics.items())
    curve = base64.b64encode((out / "loss_curve.png").read_bytes()).decode()
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{manifest.stage}</title></head>"
        f"<body><h1>{manifest.stage}: {manifest.kind}</h1><table>{rows}</table>"
        f"<img alt='loss curve' src='data:image/png;base64,{curve}'>"
        f"<p>params {manifest.params_digest[:12]} · code {manifest.code_digest[:12]} · "
        f"{html.escape(manifest.device)}</p></body></html>\n"
    )


def _with_overrides(section: object, name: str, overrides: dict[str, Any]) -> object:
    """SECTION with each set knob (not empty, not 0) in place of its key. Another `method`
    takes that method's own keys: the shared ones are kept (wsss.config.train_cam.switch_method)."""
    chosen = {k: v for k, v in overrides.items() if v not in ("", 0, 0.0, None)}
    if not chosen or not isinstance(section, dict):
        return section
    method = chosen.pop("method", None)
    if method is not None and method != section.get("method"):
        if method not in METHOD_PARAMS:
            known = ", ".join(METHOD_PARAMS)
            raise WsssError(f"pipeline parameter {name}_method: {method!r} is none of {known}")
        current = getattr(parse_params({name: section}, "pipeline parameters"), name)
        section = switch_method(current, method).model_dump(mode="json")
    return section | chosen


def _json(text: str, section: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WsssError(f"pipeline parameter {section}: not valid JSON ({exc.msg})") from None


def _processes(stage: Stage, params: Params) -> int:
    """How many data-parallel processes STAGE runs here: WSSS_NPROC, else one per visible GPU."""
    if not stage.training:
        return 1
    if text := os.environ.get(NPROC_ENV):
        if not text.isdigit() or int(text) < 1:
            raise WsssError(f"{NPROC_ENV}: expected a whole number of processes, got '{text}'")
        return int(text)
    if params.runtime.device == "cpu" or not torch.cuda.is_available():
        return 1
    return torch.cuda.device_count()


def _run_under_torchrun(
    stage: Stage, paths: dict[str, str], out: str, params: Params, uris: dict[str, str], n: int
) -> tuple[Manifest, RunRecord | None]:
    """The stage in N processes (torchrun, this machine); rank 0 writes the manifest."""
    open_inputs(stage, paths, verify=False)  # bad inputs: one line here; rank 0 hashes them
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "stage": stage.name,
                    "paths": paths,
                    "out": out,
                    "params": params.model_dump(mode="json"),
                    "uris": uris,
                }
            )
        )
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*torchrun, f"--nproc-per-node={n}", "-m", "wsss.component", str(spec)]
        code = subprocess.run(cmd).returncode
    if code != 0:
        raise RuntimeError(f"{stage.name}: torchrun exited with {code} (workers' errors above)")
    manifest = open_artifact(out, stage.kind, verify=False).manifest  # rank 0 just hashed it
    return manifest, read_run_record(Path(out))


def _worker(argv: list[str]) -> int:
    """One torchrun process of _run_under_torchrun (ARGV: the spec file it wrote)."""
    try:
        if len(argv) != 1:
            raise WsssError(
                "usage: python -m wsss.component SPEC (the torchrun worker "
                "of a KFP component; wsss-pipeline starts it, not a user)"
            )
        spec_path = argv[0]
        try:
            spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WsssError(f"{spec_path}: not a worker spec ({type(exc).__name__})") from None
        params = parse_params(spec["params"], spec_path)
        run_stage(spec["stage"], spec["paths"], Path(spec["out"]), params, spec["uris"])
    except WsssError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
