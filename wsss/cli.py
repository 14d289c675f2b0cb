"""The `wsss` command line (docs/design.md §2): it parses arguments and calls the library,
nothing more. It imports no ML code (torch, matplotlib): the stages import theirs.

Exit codes: 0 done; 2 bad input or params (one `error:` line on stderr); 1 internal failure.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import sys
from pathlib import Path

import wsss
from wsss.artifacts.lineage import format_tree, lineage
from wsss.artifacts.manifest import write_text_atomic
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.uri import is_remote
from wsss.config.params import PredictParams, load_params, with_smoke
from wsss.data.coco import instances_to_masks
from wsss.data.sbd import AUG_MASKS, AUG_SPLIT, voc_aug
from wsss.data.toy import ToyConfig, generate
from wsss.errors import WsssError, file_problem
from wsss.estimate import estimate, format_estimate
from wsss.metrics import score_directories
from wsss.plot_data import plot_data, write_plot_data
from wsss.pretrained import KNOWN, check_file, weights_named
from wsss.runner import metrics_json, run_stage
from wsss.safe_paths import check_writes, file_name, real_path
from wsss.stages import PIPELINE

DESCRIPTION = """Weakly supervised semantic segmentation from image-level labels (KTSE): run the
pipeline's stages (make run runs them all), trace any artifact back to its dataset, score masks."""
EXAMPLES = """examples:
  wsss data toy --out data/toyvoc
  wsss data voc-aug --sbd benchmark_RELEASE/dataset --root VOCdevkit/VOC2012
  wsss weights params/voc.yaml
  wsss run prepare_data --in root=data/toyvoc --out artifacts/dataset
  wsss run train_cam --in dataset=artifacts/dataset --out artifacts/cam_model --params params.yaml
  wsss lineage artifacts/evaluation
  wsss predict --model artifacts/seg_model --images photos/ --out predictions/

exit codes: 0 done; 2 bad input (one error: line); 1 an internal failure"""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """The default in the help of every option that has one; epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, [], False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """One-line errors."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(2, f"error: {self.prog}: {message}\n")


def _stage_table() -> str:
    """`wsss run --help`'s list of the stages with their inputs."""
    rows = [
        f"  {s.name:14s} {' '.join(f'--in {n}=…' for n in s.inputs):50s} -> {s.kind}"
        for s in PIPELINE
    ]
    head = "stages, in pipeline order (the --in names each takes, the kind of --out):"
    return "\n".join([head, *rows])


def key_value(text: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri:
        raise argparse.ArgumentTypeError(f"expected NAME=URI, got '{text}'")
    return name, uri


def int_in(low: int, high: int):
    """An argparse type: an integer in [LOW, HIGH]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, got {value}")
        return value

    return parse


def add_smoke_option(parser: argparse.ArgumentParser) -> None:
    """--smoke N, as `wsss run` and `wsss-pipeline` take it (params: smoke.images)."""
    parser.add_argument(
        "--smoke",
        type=int_in(1, 10_000),
        metavar="N",
        help="a smoke run: N images per split and a few steps, the full run's settings otherwise "
        "(then: wsss estimate on its last artifact); a full run refuses its artifacts",
    )


def _cmd_toy(args: argparse.Namespace) -> None:
    config = ToyConfig(args.seed, args.train, args.val, args.size, args.tint, args.parts)
    generate(args.out, config)
    print(f"ToyVOC written to {args.out}")


def _cmd_coco_masks(args: argparse.Namespace) -> None:
    if args.split is not None:
        file_name(args.split, "--split")
    written = {f"--out ({sub}/)": args.out / sub for sub in ("SegmentationClass", "ImageSets")}
    check_writes(written, {"--instances": args.instances})
    split, count = instances_to_masks(args.instances, args.out, args.split)
    print(f"{count} images with labels listed in {args.out / 'ImageSets' / f'{split}.txt'}")


def _cmd_voc_aug(args: argparse.Namespace) -> None:
    lists = args.root / "ImageSets" / "Segmentation"
    written = {
        "--root (SegmentationClassAug/)": args.root / AUG_MASKS,
        "--root (train_aug.txt)": lists / f"{AUG_SPLIT}.txt",
    }
    check_writes(written, {"--sbd": args.sbd})
    count = voc_aug(args.sbd, args.root)
    print(f"{count} images in {lists / f'{AUG_SPLIT}.txt'}, masks in {args.root / AUG_MASKS}")


def _cmd_weights(args: argparse.Namespace) -> None:
    if not args.params:
        for name, known in KNOWN.items():
            print(f"{name}: {known.what}\n  from {known.source}")
            pin = {64: "", 0: "(not on record)"}.get(
                len(known.sha256), "… (the prefix its name carries)"
            )
            print(f"  sha256 {known.sha256}{pin}")
        return
    named = dict.fromkeys(w for path in args.params for w in weights_named(load_params(path)))
    problems = []
    for uri in named:
        if is_remote(uri):
            print(f"{uri}: on object storage, not checked here (check it before the upload)")
            continue
        try:
            print(check_file(Path(uri)))
        except WsssError as exc:
            problems.append(str(exc))
    if problems:
        raise WsssError("\nerror: ".join(problems))


def _cmd_run(args: argparse.Namespace) -> None:
    uris = dict(args.inputs)
    if len(uris) != len(args.inputs):
        raise WsssError("--in: an input name is given twice")
    side = {"--metrics": args.metrics, "--plots": args.plots}  # resolved by run_parser
    for flag, path in side.items():
        # the new artifact replaces OUT whole: a file in it would vanish or be hashed
        local = path is not None and not is_remote(args.out)
        if local and path.is_relative_to(real_path(args.out, "--out")):
            raise WsssError(f"{flag} {path}: inside --out {args.out}")
    reads = {f"--in {name}=": uri for name, uri in uris.items()} | {"--params": args.params}
    check_writes(side, reads)
    check_writes({"--out": args.out}, {"--params": args.params})
    params = with_smoke(load_params(args.params), args.smoke)
    done = run_stage(args.stage, uris, args.out, params)
    if done is None:  # a torchrun worker other than rank 0
        return
    manifest, run = done
    if args.metrics is not None:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.metrics, metrics_json(manifest.metrics))
    if args.plots is not None:
        _write_plots(args.out, args.plots)
    metrics = " ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    print(f"{args.stage}: {manifest.kind} in {args.out} ({run.duration_s:.1f}s)  {metrics}")


def _write_plots(out: str, directory: Path) -> None:
    """The data behind the new artifact's figures as DIRECTORY/<name>.json (DVC's plots)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in plot_data(open_artifact(out, verify=False).path).items():
        write_plot_data(directory / f"{name}.json", rows)


def _cmd_predict(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.overlays is not None:
        params = params.model_copy(update={"predict": PredictParams(overlays=args.overlays)})
    uris = {"seg_model": str(args.model), "images": str(args.images)}
    check_writes({"--out": args.out}, {"--params": args.params})
    manifest, _ = run_stage("predict", uris, args.out, params)
    print(f"predict: {manifest.metrics['images']:.0f} label maps in {args.out}")


def _cmd_score(args: argparse.Namespace) -> None:
    ids = None
    if args.list is not None:
        if not args.list.is_file():
            raise WsssError(f"{args.list}: list file not found")
        try:
            text = args.list.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise WsssError(f"{args.list}: not UTF-8 text (byte {exc.start})") from None
        ids = [Path(line.split()[0]).stem for line in text.splitlines() if line.strip()]
    print(json.dumps(score_directories(args.pred, args.gt, args.num_classes, ids), indent=1))


def _cmd_lineage(args: argparse.Namespace) -> None:
    tree = lineage(args.uri)
    print(json.dumps(tree, indent=1) if args.json else "\n".join(format_tree(tree)))


def _cmd_estimate(args: argparse.Namespace) -> None:
    costs = estimate(args.uri)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in costs], indent=1))
    else:
        print("\n".join(format_estimate(costs)))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="wsss", description=DESCRIPTION, epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"wsss {wsss.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data = commands.add_parser("data", help="make or convert datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    toy = data_commands.add_parser("toy", help="write ToyVOC (VOC 2012 layout) to DIR")
    toy.add_argument("--out", type=Path, required=True, metavar="DIR")
    toy.add_argument(
        "--seed", type=int_in(0, 2**32 - 1), default=0, metavar="N", help="the generator's seed"
    )
    toy.add_argument(
        "--train", type=int_in(1, 10**6), default=400, metavar="N", help="train_aug images"
    )
    toy.add_argument("--val", type=int_in(1, 10**6), default=100, metavar="N", help="val images")
    toy.add_argument("--size", type=int_in(32, 4096), default=96, metavar="PX", help="image side")
    toy.add_argument(
        "--tint",
        type=int_in(0, 60),
        default=32,
        metavar="LEVELS",
        help="RGB levels that set a class's body apart within its family (0: one body per family)",
    )
    toy.add_argument(
        "--parts",
        choices=("large", "small"),
        default="large",
        help="a class's part: a sixth of the object in a hue of its own (default) or, as in v1 "
        "and v2, a tenth of it in one of five colours",
    )
    toy.set_defaults(func=_cmd_toy)
    coco = data_commands.add_parser(
        "coco-masks", help="render a COCO instances JSON into per-image semantic PNG masks"
    )
    coco.add_argument("--instances", type=Path, required=True, metavar="FILE")
    coco.add_argument("--out", type=Path, required=True, metavar="ROOT", help="the COCO root")
    coco.add_argument("--split", metavar="NAME", help="split list name (default: from the JSON)")
    coco.set_defaults(func=_cmd_coco_masks)
    aug = data_commands.add_parser(
        "voc-aug",
        help="add SBD's masks to a VOC 2012 root: SegmentationClassAug/ and train_aug.txt",
    )
    aug.add_argument(
        "--sbd", type=Path, required=True, metavar="DIR", help="SBD's benchmark_RELEASE/dataset"
    )
    aug.add_argument(
        "--root", type=Path, required=True, metavar="ROOT", help="the VOC 2012 root (VOC2012/)"
    )
    aug.set_defaults(func=_cmd_voc_aug)

    weights = commands.add_parser(
        "weights",
        help="check the ImageNet weights files params files name (none given: list the known ones)",
        description="Each weights file that PARAMS name, relative to the working directory as\n"
        "the stages read it: present, and the bytes its publisher put out (sha256). A missing\n"
        "or wrong file is an error: line that says where the right one comes from.",
    )
    weights.add_argument("params", nargs="*", type=Path, metavar="PARAMS")
    weights.set_defaults(func=_cmd_weights)

    run = commands.add_parser("run", help="run one pipeline stage", epilog=_stage_table())
    run.add_argument("stage", help="a stage name (listed below)")
    run.add_argument(
        "--in",
        dest="inputs",
        type=key_value,
        action="append",
        default=[],
        metavar="NAME=URI",
        help="an input: a directory or s3:// URI, once per input the stage reads",
    )
    run.add_argument(
        "--out", required=True, metavar="DIR|s3://URI", help="the artifact to write (replaced)"
    )
    run.add_argument(
        "--params", type=Path, metavar="FILE", help="params YAML (omitted: the ToyVOC preset)"
    )
    run.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="also write the metrics to FILE, outside the artifact (DVC's metrics, kept in git)",
    )
    run.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="also write the data behind its figures to DIR/<name>.json (DVC's plots, in git)",
    )
    add_smoke_option(run)
    run.set_defaults(func=_cmd_run)

    predict = commands.add_parser("predict", help="apply a seg_model to a folder of images")
    predict.add_argument("--model", type=Path, required=True, metavar="DIR", help="a seg_model")
    predict.add_argument("--images", type=Path, required=True, metavar="DIR")
    predict.add_argument("--out", type=Path, required=True, metavar="DIR")
    predict.add_argument("--params", type=Path, metavar="FILE", help="its evaluate section")
    predict.add_argument(
        "--overlays", action=argparse.BooleanOptionalAction, help="default: predict.overlays"
    )
    predict.set_defaults(func=_cmd_predict)

    score = commands.add_parser("score", help="mIoU of predicted PNG masks against GT masks")
    score.add_argument("--pred", type=Path, required=True, metavar="DIR")
    score.add_argument("--gt", type=Path, required=True, metavar="DIR")
    score.add_argument(
        "--num-classes", type=int_in(2, 255), default=21, metavar="N", help="with background"
    )
    score.add_argument("--list", type=Path, metavar="FILE", help="image ids to score")
    score.set_defaults(func=_cmd_score)

    cost = commands.add_parser(
        "estimate", help="what the full run will cost, from a smoke run's last artifact"
    )
    cost.add_argument("uri", help="a smoke run's artifact (directory or s3:// URI)")
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(func=_cmd_estimate)

    lin = commands.add_parser("lineage", help="where an artifact came from, back to the dataset")
    lin.add_argument("uri", help="an artifact directory or s3:// URI")
    lin.add_argument("--json", action="store_true")
    lin.set_defaults(func=_cmd_lineage)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_parser(build_parser(), argv)


class QuietWhenClosed(io.TextIOBase):
    """A stdout that falls silent when its reader goes away (`wsss run … | head -1`) instead of
    aborting the run: what was being computed still finishes and is written."""

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._silence()

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def _silence(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError):  # no real descriptor (captured output)
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


def error_lines(exc: WsssError) -> str:
    """`error: ` and the message, one line per problem (params report each on its own): a
    control character that came from data (a file name with a newline) is shown escaped."""
    problems = str(exc).split("\nerror: ")
    return "\n".join(f"error: {_CONTROL.sub(_escape, p)}" for p in problems)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode()


def _resolve_paths(args: argparse.Namespace) -> None:
    """Every local path option as the real path it names, where it enters: `a/../b` then never
    creates `a`, and a symlink loop is one line."""
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, real_path(value, f"--{name.replace('_', '-')}"))


def run_parser(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ARGV and run its command; a WsssError becomes one `error:` line and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    if bad := next((a for a in argv if any(ord(c) < 32 or c == "\x7f" for c in a)), None):
        # a name with a newline would make the one `error:` line two, and a file a tool misreads
        print(f"error: {bad!r}: a control character in an argument", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    stdout, sys.stdout = sys.stdout, QuietWhenClosed(sys.stdout)
    try:
        _resolve_paths(args)
        args.func(args)
    except WsssError as exc:
        print(error_lines(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only place, a file where a directory goes
        if (problem := file_problem(exc)) is None:
            raise
        print(error_lines(problem), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what was complete stays so, a rerun resumes
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
