"""The one call a KFP component makes: run a stage on the launcher's artifacts.

KFP hands each component local paths of its input artifacts (`.path`) and their storage URIs
(`.uri`, s3://… on a cluster). The stage reads the paths and records the URIs, so lineage read
from the bucket leads to the bucket. Artifacts are duck-typed: the library never imports kfp.
"""

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Protocol

from wsss.errors import WsssError
from wsss.params import parse_params
from wsss.stages import get_stage, run_stage


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
) -> None:
    """Run STAGE_NAME with INPUTS (KFP artifacts, or strings for raw roots) into OUTPUT.

    PARAMS is the stage's params section and RUNTIME the runtime section, as JSON (pipeline
    parameters).
    Headline metrics go to METRICS (KFP's Metrics output); evaluate's report.html to REPORT.
    Bad input exits 2 with one `error:` line, as the CLI does.
    """
    try:
        stage = get_stage(stage_name)
        config = parse_params(
            {stage.section: _json(params, stage.section), "runtime": _json(runtime, "runtime")},
            "pipeline parameters",
        )
        paths = {n: a if isinstance(a, str) else a.path for n, a in inputs.items()}
        uris = {n: a.uri for n, a in inputs.items() if not isinstance(a, str)}
        manifest = run_stage(stage_name, paths, Path(output.path), config, uris)
    except WsssError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if manifest is None:  # a torchrun worker other than rank 0
        return
    output.metadata.update(
        {
            "kind": manifest.kind,
            "params_digest": manifest.params_digest,
            "code": manifest.code_revision,
        }
    )
    if metrics is not None:
        for name, value in manifest.metrics.items():
            metrics.log_metric(name, value)
    if report is not None:
        shutil.copyfile(Path(output.path) / "report.html", report.path)


def _json(text: str, section: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WsssError(f"pipeline parameter {section}: not valid JSON ({exc.msg})") from None
