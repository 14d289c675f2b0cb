"""`wsss-pipeline`: compile the KFP pipeline, submit it to a cluster, or run it here with kfp.local.

Exit codes as `wsss`: 0 done; 2 bad input (one `error:` line); 1 an internal failure.
"""

import argparse
import contextlib
import io
import json
import os
import re
import socket
import sys
import tempfile
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

import wsss
from pipelines import CACHE_SIZE, DEFAULT_ROOT, MIN_KFP_BACKEND, PLATFORM_FIELDS_SINCE
from wsss.artifacts.lineage import format_tree, lineage, read_manifest
from wsss.artifacts.manifest import write_text_atomic
from wsss.artifacts.uri import is_remote
from wsss.cli import Parser, add_smoke_option, key_value, run_parser
from wsss.config.params import Params, load_params, with_smoke
from wsss.errors import WsssError
from wsss.safe_paths import check_writes

if TYPE_CHECKING:  # kfp and torch load in the commands that need them: --help stays quick
    from kfp.local import DockerRunner

DEFAULT_PARAMS = Path("params.yaml")
# what a task in a container gets of this shell's environment (run-local --docker)
PASSED_ENV = ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "WSSS_NPROC")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours its messages
# what run-local shows of kfp.local's log without --verbose: the pipeline's and each task's start
# and end, the image a task runs in (--docker), and a task's own error: and warning: lines
TASK_LINES = re.compile(
    r" - (INFO|WARNING|ERROR) - (Running pipeline|Executing task|Task .* finished with status"
    r"|Pipeline .* finished)|^\s+(error: |warning: |Found image |Pulling image )"
)
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?([KMGTPE]i?)?")  # a Kubernetes quantity (bytes)


def quantity(text: str) -> str:
    """An argparse type: a Kubernetes quantity of bytes, e.g. 64Gi or 500M."""
    if not QUANTITY.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a Kubernetes quantity such as 64Gi, got '{text}'"
        )
    return text


def _default_image(flavour: str) -> str:
    return os.environ.get(f"WSSS_{flavour.upper()}_IMAGE") or f"wsss:{wsss.__version__}-{flavour}"


def _build(args: argparse.Namespace) -> Callable:
    """The pipeline the pipeline options describe (compile, submit and run-local alike; kfp.local
    ignores the cluster settings)."""
    from pipelines.pipeline import build_pipeline

    return build_pipeline(
        args.image,
        args.cpu_image,
        args.start,
        _artifacts(args),
        args.cache_pvc,
        args.cache_size,
        caching=not args.no_cache,
    )


def _compile(args: argparse.Namespace, package: Path) -> None:
    from kfp import compiler

    from pipelines.pipeline import pipeline_arguments

    pipeline = _build(args)
    _check_artifact_kinds(args)
    params = with_smoke(load_params(args.params), args.smoke)
    _refuse_toy_networks_on_a_real_dataset(params, args)
    _refuse_local_weights_on_a_remote_dataset(params, args)
    for option, image in (("--image", args.image), ("--cpu-image", args.cpu_image)):
        if "/" not in image.split("@")[0]:
            print(
                f"warning: {option} {image}: no registry in the name; the cluster pulls it from "
                "its default registry (docker.io), give registry/name:tag",
                file=sys.stderr,
            )
    arguments = pipeline_arguments(params, args.root)
    compiler.Compiler().compile(pipeline, str(package), pipeline_parameters=arguments)
    _sort_the_header(package)


def _sort_the_header(package: Path) -> None:
    """KFP writes the spec with sorted keys but its header comment from protobuf maps, whose
    order changes from run to run (a dict default such as `tolerations`): the header is made
    again from the sorted spec, so one params file compiles to the same bytes every time."""
    from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

    text = package.read_text()
    body = re.sub(r"\A(#[^\n]*\n)*", "", text)
    spec = next(yaml.safe_load_all(body))
    header = extract_comments_from_pipeline_spec(spec, spec["pipelineInfo"].get("description"))
    package.write_text(header + body)


def _check_artifact_kinds(args: argparse.Namespace) -> None:
    """Each --artifact is a complete artifact of the kind it is given as, read from its manifest
    here: a wrong URI fails now, not in a pod (where KFP would retry it)."""

    if args.no_artifact_check:
        return
    for kind, uri in _artifacts(args).items():
        try:
            manifest, _ = read_manifest(uri)
        except WsssError as exc:
            raise WsssError(
                f"--artifact {kind}: {exc} (--no-artifact-check skips reading it)"
            ) from None
        if manifest.kind != kind:
            raise WsssError(f"--artifact {kind}={uri}: an artifact of kind '{manifest.kind}'")


def _refuse_toy_networks_on_a_real_dataset(params: Params, args: argparse.Namespace) -> None:
    """The toy networks exist for ToyVOC on a CPU: on a cluster's dataset they are almost surely
    a forgotten --params (params.yaml is the ToyVOC preset), found here and not after hours."""

    networks = [
        ("train_cam", "backbone"),
        ("train_cam", "encoder"),
        ("train_irn", "backbone"),
        ("train_deeplab", "backbone"),
    ]
    toy = [
        f"{s}.{key}"
        for s, key in networks
        if getattr(getattr(params, s), key, None) in ("toy", "vit_toy")
    ]
    if toy and is_remote(args.root) and not args.allow_toy:
        raise WsssError(
            f"--params {args.params}: {', '.join(toy)} is a toy network (the ToyVOC preset) "
            f"with --root {args.root}; give --params params/voc.yaml or params/coco.yaml, or "
            "--allow-toy"
        )


def _refuse_local_weights_on_a_remote_dataset(params: Params, args: argparse.Namespace) -> None:
    """A pod has no file of this machine: with an s3:// root every weights file must be s3://
    too, found here and not when the stage starts on the cluster."""
    if not is_remote(args.root):
        return
    for section in ("train_cam", "train_irn", "train_deeplab"):
        weights = getattr(params, section).weights
        if weights is not None and not is_remote(weights):
            raise WsssError(
                f"--params {args.params}: {section}.weights {weights} is a local path, which no "
                f"pod has (--root {args.root}); upload it and give its s3:// URI"
            )


def _artifacts(args: argparse.Namespace) -> dict[str, str]:
    artifacts = dict(args.artifacts)
    if len(artifacts) != len(args.artifacts):
        raise WsssError("--artifact: an artifact name is given twice")
    return artifacts


def _cmd_compile(args: argparse.Namespace) -> None:
    if args.out.suffix not in (".yaml", ".yml"):
        raise WsssError(f"--out {args.out}: expected a .yaml file (the pipeline's YAML)")
    check_writes({"--out": args.out}, {"--params": args.params, "--root": args.root})
    with tempfile.TemporaryDirectory() as tmp:  # whole or not at all at --out
        package = Path(tmp) / "pipeline.yaml"
        _compile(args, package)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, package.read_text(encoding="utf-8"))
    print(f"pipeline written to {args.out} (for Kubeflow Pipelines {MIN_KFP_BACKEND} or newer)")


def _cmd_submit(args: argparse.Namespace) -> None:
    import kfp

    # the client's notice that it needs a v2 backend is not the user's problem to read each time
    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp.client")
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "wsss_pipeline.yaml"
        _compile(args, package)
        _check_backend(args.host)
        try:
            client = kfp.Client(host=args.host, namespace=args.namespace)
            run = client.create_run_from_pipeline_package(
                str(package),
                arguments={},
                run_name=args.run_name,
                experiment_name=args.experiment,
                enable_caching=not args.no_cache,
            )
        except Exception as exc:  # the KFP client raises many kinds; one line either way
            raise WsssError(f"--host {args.host}: submitting failed ({_why(exc)})") from None
    print(f"submitted run {run.run_id} to {args.host} (experiment {args.experiment})")


HTTP_CAUSES = {
    401: "not authenticated: a multi-user KFP wants a session (kfp.Client's credentials)",
    403: "not allowed: is --namespace your profile?",
    404: "not found: is --host the KFP API endpoint (e.g. http://HOST/pipeline)?",
}


def _check_reachable(host: str, timeout: float = 5) -> None:
    """One TCP connection to HOST first: a dead or mistyped host is named in seconds, not after
    the KFP client's retries (30 s and a MaxRetryError)."""
    try:
        parts = urlsplit(host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a bad port or an unclosed [IPv6 address
        raise WsssError(f"--host {host}: expected http(s)://HOST[:PORT]") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WsssError(f"--host {host}: expected http(s)://HOST[:PORT]")
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except socket.gaierror:
        raise WsssError(f"--host {host}: unknown host {parts.hostname}") from None
    except TimeoutError:
        raise WsssError(f"--host {host}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise WsssError(f"--host {host}: {(exc.strerror or str(exc)).lower()}") from None


def _check_backend(host: str, timeout: float = 5) -> None:
    """The KFP API at HOST answers and is a release whose driver knows every Kubernetes field
    the compiled pipeline uses (an older one fails each task later, in its pod)."""
    _check_reachable(host, timeout)
    tag = _backend_release(host, timeout)
    release = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", tag or "")
    if release is None:
        told = f"its healthz says {tag!r}" if tag else "no release from its healthz"
        print(
            f"warning: --host {host}: {told}; the pipeline needs KFP {MIN_KFP_BACKEND} or newer",
            file=sys.stderr,
        )
        return
    version = tuple(int(n) for n in release.groups())
    if newer := [field for field, since in PLATFORM_FIELDS_SINCE.items() if since > version]:
        raise WsssError(
            f"--host {host}: KFP {tag}, and the pipeline needs {MIN_KFP_BACKEND} or newer (its "
            f"driver would refuse {', '.join(newer)}); upgrade Kubeflow Pipelines"
        )


def _backend_release(host: str, timeout: float) -> str | None:
    """The KFP backend's release tag (its v1beta1 healthz), or None where it does not say (an
    authenticating proxy in front of a multi-user KFP, an API that lacks it)."""
    url = f"{host.rstrip('/')}/apis/v1beta1/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(json.loads(response.read(1 << 16)).get("tag_name") or "") or None
    except (OSError, ValueError, AttributeError):  # HTTP errors, timeouts, not a JSON object
        return None


def _why(exc: Exception) -> str:
    """The cause of a failed submission, from the KFP client's exception."""
    status = getattr(exc, "status", None)
    if status in HTTP_CAUSES:
        return f"HTTP {status}, {HTTP_CAUSES[status]}"
    if isinstance(status, int):
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".rstrip()
    return type(exc).__name__


def _cmd_run_local(args: argparse.Namespace) -> None:
    from kfp import local

    from pipelines.pipeline import pipeline_arguments
    from wsss.component import ERRORS_ENV

    remote = is_remote(args.root)
    reads = {"--params": args.params, "--root": args.root}
    check_writes({"--pipeline-root": args.pipeline_root}, reads | _artifacts(args))
    root = args.root if remote else str(Path(args.root).resolve())
    if not args.start and not remote and not Path(root).is_dir():
        raise WsssError(f"--root {args.root}: dataset root not found (make data writes ToyVOC)")
    if args.docker and not args.start and not remote:
        raise WsssError(
            f"--root {args.root}: with --docker the dataset root is an s3:// URI "
            "(a container sees only --pipeline-root of this machine)"
        )
    pipeline = _build(args)
    _check_artifact_kinds(args)
    arguments = pipeline_arguments(with_smoke(load_params(args.params), args.smoke), root)
    pipeline_root = args.pipeline_root.resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # Here the venv is the image and cluster settings do not apply: kfp.local's notes say so.
    warnings.filterwarnings("ignore", message=".*(base image|have no effect in the current local)")
    with tempfile.TemporaryDirectory(dir=pipeline_root, prefix=".run-local-") as tmp:
        errors = Path(tmp) / "errors"  # under the pipeline root: containers see it too
        os.environ[ERRORS_ENV] = str(errors)  # the tasks run as subprocesses of this one
        runner = (
            _docker_runner(pipeline_root) if args.docker else local.SubprocessRunner(use_venv=False)
        )
        local.init(runner=runner, pipeline_root=str(pipeline_root))
        shown = contextlib.nullcontext() if args.verbose else _task_lines_only()
        try:
            with shown:
                task = pipeline(**arguments)
        except Exception as exc:  # a failed task; or, in a container, outputs that never came
            told = errors.read_text().splitlines() if errors.is_file() else []
            log = "log above" if args.verbose else "--verbose shows the task's log"
            what = told[-1] if told else f"{ANSI.sub('', str(exc)).splitlines()[0]} ({log})"
            raise WsssError(f"run-local: {what}") from None
        finally:
            del os.environ[ERRORS_ENV]
    final = task.output.path
    print("\n".join(format_tree(lineage(final))))
    print(f"final artifact: {final}")


class _Lines(io.TextIOBase):
    """A stdout that passes on only the whole lines TASK_LINES matches."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        self.stream.write("".join(f"{line}\n" for line in lines if TASK_LINES.search(line)))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _task_lines_only():
    """kfp.local's log (it prints to stdout, a task's own output indented) cut to TASK_LINES."""
    stdout, sys.stdout = sys.stdout, _Lines(sys.stdout)
    try:
        yield
    finally:
        sys.stdout = stdout


def _docker_runner(pipeline_root: Path) -> "DockerRunner":
    """Each task in its image, as this user (the outputs under PIPELINE_ROOT stay theirs), on
    the host's network (an S3 endpoint that answers here answers there), with this shell's
    S3 settings and one dataset cache for all tasks under PIPELINE_ROOT (as --cache-pvc)."""
    from kfp.local import DockerRunner

    from wsss.component import ERRORS_ENV

    passed = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("WSSS_S3_")}
    environment = passed | {
        "WSSS_CACHE_DIR": str(pipeline_root / ".cache"),
        ERRORS_ENV: os.environ[ERRORS_ENV],
        "HOME": "/tmp",  # the user may have no home in the image
    }
    return DockerRunner(
        entrypoint=[""],  # kfp gives the whole command (sh -c …), which `wsss` would prefix
        network_mode="host",
        user=f"{os.getuid()}:{os.getgid()}",
        environment=environment,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="wsss-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def pipeline_options(cmd: argparse.ArgumentParser, root_default: str) -> None:
        cmd.add_argument(
            "--params",
            type=Path,
            default=DEFAULT_PARAMS,
            metavar="FILE",
            help="params sections become the pipeline parameters' defaults",
        )
        cmd.add_argument("--root", default=root_default, metavar="URI", help="the dataset root")
        add_smoke_option(cmd)
        cmd.add_argument(
            "--image",
            default=_default_image("cuda"),
            help="image of GPU stages (env: WSSS_CUDA_IMAGE)",
        )
        cmd.add_argument(
            "--cpu-image",
            default=_default_image("cpu"),
            help="image of CPU stages (env: WSSS_CPU_IMAGE)",
        )
        cmd.add_argument(
            "--from",
            dest="start",
            metavar="STAGE",
            help="start at STAGE; the artifacts it needs come from --artifact",
        )
        cmd.add_argument(
            "--allow-toy",
            action="store_true",
            help="compile the toy networks (the ToyVOC preset) for an s3:// root all the same",
        )
        cmd.add_argument(
            "--artifact",
            dest="artifacts",
            type=key_value,
            action="append",
            default=[],
            metavar="NAME=URI",
            help="an upstream artifact for --from (e.g. cams=s3://…)",
        )
        cmd.add_argument(
            "--cache-pvc",
            metavar="CLAIM",
            help="a ReadWriteMany PersistentVolumeClaim as every task's dataset cache, shared "
            "across tasks and runs (k8s/base/cache-pvc.yaml; default: an emptyDir per task)",
        )
        cmd.add_argument(
            "--cache-size",
            type=quantity,
            default=CACHE_SIZE,
            metavar="SIZE",
            help="each task's cache emptyDir at most (a Kubernetes quantity; wsss estimate's "
            "artifact sizes say what the largest stage holds)",
        )
        cmd.add_argument(
            "--no-cache",
            action="store_true",
            help="every task runs again: KFP reuses no outputs of an earlier identical run",
        )
        cmd.add_argument(
            "--no-artifact-check",
            action="store_true",
            help="do not read the --artifact manifests here (no access to their bucket)",
        )

    comp = commands.add_parser("compile", help="write the pipeline YAML (upload it in the KFP UI)")
    comp.add_argument("--out", type=Path, required=True, metavar="FILE")
    pipeline_options(comp, DEFAULT_ROOT)
    comp.set_defaults(func=_cmd_compile)

    submit = commands.add_parser("submit", help="compile and start a run on a KFP cluster")
    submit.add_argument("--host", required=True, metavar="URL", help="the KFP API endpoint")
    submit.add_argument("--experiment", default="wsss", metavar="NAME")
    submit.add_argument("--run-name", metavar="NAME")
    submit.add_argument("--namespace", metavar="NS", help="multi-user KFP: your profile")
    pipeline_options(submit, DEFAULT_ROOT)
    submit.set_defaults(func=_cmd_submit)

    loc = commands.add_parser("run-local", help="run the pipeline here with kfp.local")
    loc.add_argument(
        "--pipeline-root",
        type=Path,
        default=Path("artifacts/kfp"),
        metavar="DIR",
        help="where kfp.local keeps each run's artifacts",
    )
    loc.add_argument(
        "--docker",
        action="store_true",
        help="run each task in its image (kfp.local's DockerRunner: host network, this shell's "
        "S3 settings; the root is then s3://) instead of as a process here",
    )
    loc.add_argument(
        "--verbose",
        action="store_true",
        help="kfp.local's whole log: each task's command, executor input and output, and output "
        "lines (default: each task's start, end, image, error: and warning: lines)",
    )
    pipeline_options(loc, "data/toyvoc")
    loc.set_defaults(func=_cmd_run_local)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_parser(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
