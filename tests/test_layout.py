"""The layout's rules, checked on the source: stages are leaves (none imports another), and each
dvc.yaml stage depends on exactly the code it runs (its import closure), so a code change reruns
what it affects and nothing else."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.cli_reference import reference
from tools.imports import cycles, function_imports, graph
from tools.results_table import rewritten
from wsss.provenance import imports, module_file, stage_sources
from wsss.stages import PIPELINE, STAGES

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def minimal_cover(files: frozenset[Path]) -> list[str]:
    """FILES as dvc.yaml deps: a package folder where every module in it is in FILES, else the
    files one by one."""
    deps: list[str] = []

    def walk(folder: Path) -> None:
        modules = set(folder.rglob("*.py"))
        if modules <= files:
            deps.append(str(folder.relative_to(REPO)))
            return
        for path in sorted(folder.iterdir()):
            if path.is_dir() and any(path.rglob("*.py")):
                walk(path)
            elif path in files:
                deps.append(str(path.relative_to(REPO)))

    walk(REPO / "wsss")
    return deps


def test_no_stage_imports_another_stage():
    for stage in STAGES:
        imported = imports(module_file(f"wsss.stages.{stage}"))
        others = {m for m in imported if m.startswith("wsss.stages.")}
        assert not others, f"wsss/stages/{stage}.py imports {sorted(others)}"


@pytest.mark.parametrize("stage", list(DVC))
def test_dvc_deps_are_the_stages_import_closure(stage):
    code = [d for d in DVC[stage]["deps"] if d.startswith("wsss")]
    expected = minimal_cover(stage_sources(stage))
    listed = "\n".join(f"      - {d}" for d in expected)
    assert code == expected, f"dvc.yaml {stage} (python -m tests.test_layout fixes it):\n{listed}"


def test_every_pipeline_stage_is_in_dvc_yaml_with_its_inputs():
    assert list(DVC) == [stage.name for stage in PIPELINE]  # `wsss predict` is not in it
    for stage in PIPELINE:
        name = stage.name
        cmd = " ".join(DVC[name]["cmd"].split())
        given = {part.split("=")[0] for part in cmd.split("--in ")[1:]}
        assert given == set(stage.inputs), f"dvc.yaml {name}: --in {sorted(given)}"
        assert f"--out artifacts/{stage.kind} " in cmd + " "
        assert DVC[name]["params"][0] == stage.section
        assert "smoke" in DVC[name]["params"]  # dvc exp run -S smoke.images=N reruns it


def write_dvc_deps(path: Path = REPO / "dvc.yaml") -> None:
    """Rewrite each dvc.yaml stage's code deps to its import closure, leaving the rest as is."""
    out, stage, lines = [], None, path.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if match := re.match(r"^  ([a-z_]+):\s*$", lines[i]):
            stage = match.group(1)
        if re.match(r"^      - wsss", lines[i]):
            while i < len(lines) and re.match(r"^      - wsss", lines[i]):
                i += 1
            out += [f"      - {dep}\n" for dep in minimal_cover(stage_sources(stage))]
            continue
        out.append(lines[i])
        i += 1
    path.write_text("".join(out))


if __name__ == "__main__":  # python -m tests.test_layout: after changing what a stage imports
    write_dvc_deps()


def test_each_kfp_component_takes_its_stages_inputs_and_gives_its_kind():
    import inspect

    import components

    assert list(components.FUNCTIONS) == [stage.name for stage in PIPELINE]
    for name, function in components.FUNCTIONS.items():
        stage = STAGES[name]
        arguments = list(inspect.signature(function).parameters)
        from pipelines.pipeline import KNOBS

        knobs = list(KNOBS.get(stage.section, {}))  # the run's typed knobs for its section
        expected = [*stage.inputs, "params", "runtime", "smoke", *knobs, stage.kind, "metrics"]
        # what the KFP UI shows beside the metrics: evaluate's report and confusion matrix, a
        # training stage's summary page
        expected += ["report", "confusion"] if name == "evaluate" else []
        expected += ["summary"] if stage.training else []
        assert arguments == expected, f"components/{name}.py: {arguments}"
        assert re.search(rf'run_component\(\s*"{name}"', inspect.getsource(function))


def test_the_pipelines_parameters_are_the_params_sections_and_cluster_settings():
    from pipelines.pipeline import build_pipeline, pipeline_arguments
    from wsss.config.params import Params

    spec = build_pipeline("gpu:img", "cpu:img").component_spec
    assert set(spec.inputs) == set(pipeline_arguments(Params()))


def test_every_docs_section_reference_exists():
    """A `docs/<name>.md §n` (or §n.k, item k of section n's numbered list) in the code or the
    docs names a heading `## n.` of that file, and item k exists there."""
    sections: dict[str, dict[str, str]] = {}
    for doc in (REPO / "docs").glob("*.md"):
        parts = re.split(r"^## (\d+)\. .*$", doc.read_text(), flags=re.M)
        sections[f"docs/{doc.name}"] = dict(zip(parts[1::2], parts[2::2], strict=True))
    sources = [*REPO.glob("wsss/**/*.py"), *REPO.glob("pipelines/**/*.py"), *REPO.glob("*.md")]
    sources += [*REPO.glob("docs/*.md"), *REPO.glob("params/*.yaml"), REPO / "params.yaml"]
    dangling, seen = [], 0
    for source in sources:
        for doc, number, item in re.findall(
            r"(docs/\w+\.md) §(\d+)(?:\.(\d+))?", source.read_text()
        ):
            seen += 1
            body = sections.get(doc, {}).get(number)
            if body is None or (item and not re.search(rf"^{item}\. ", body, flags=re.M)):
                dangling.append(
                    f"{source.relative_to(REPO)}: {doc} §{number}{'.' + item if item else ''}"
                )
    assert seen > 50, "the references were not found: the pattern no longer matches"
    assert not dangling


# What makes a test slow (`make test-all`, not `make test`): a fixture that starts a server or
# Docker, or a body that starts torchrun, kfp.local, dvc, or the whole pipeline in processes
SLOW_FIXTURES = {"s3", "s3_server", "own_s3_server", "daemon", "build", "cpu_image"}
SLOW_CODE = re.compile(r"torch\.distributed\.run|torchrun\b|run-local|'(?:make|repro)'|SeaweedS3")


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _marked_slow(nodes: list[ast.expr]) -> bool:
    return any("mark.slow" in ast.unparse(node) for node in nodes)


def _why_slow(name: str, functions: dict[str, ast.FunctionDef], seen: set[str]) -> str | None:
    """Why the test or fixture NAME is slow: a slow fixture, slow code in its body, or a fixture
    it asks for that is slow in turn; None if nothing is."""
    if name in SLOW_FIXTURES:
        return f"fixture {name}"
    function = functions.get(name)
    if function is None or name in seen:
        return None
    seen.add(name)
    if match := SLOW_CODE.search(ast.unparse(function)):
        return f"{match.group(0)} in {name}"
    asked = (_why_slow(a.arg, functions, seen) for a in function.args.args)
    return next(filter(None, asked), None)


def _slow_reasons(files: list[Path]) -> dict[str, str]:
    """test id -> why it is slow, for each test not marked slow (by its decorators or its
    module's `pytestmark`) that uses, itself or through a fixture in conftest or its module,
    what SLOW_FIXTURES and SLOW_CODE name."""
    conftest = _functions(ast.parse((REPO / "tests/conftest.py").read_text()))
    found: dict[str, str] = {}
    for path in files:
        tree = ast.parse(path.read_text())
        assigned = [n for n in tree.body if isinstance(n, ast.Assign)]
        marks = [n.value for n in assigned if "pytestmark" in map(ast.unparse, n.targets)]
        if _marked_slow(marks):
            continue
        functions = conftest | _functions(tree)
        for name, function in _functions(tree).items():
            if not name.startswith("test_") or _marked_slow(function.decorator_list):
                continue
            if reason := _why_slow(name, functions, set()):
                found[f"{path.name}::{name}"] = reason
    return found


def test_every_test_that_starts_a_server_docker_or_processes_is_marked_slow():
    """`make test` stays a ten-minute loop only while each new expensive test carries the
    marker: this names the unmarked ones and what makes them slow."""
    assert not _slow_reasons(sorted((REPO / "tests").glob("test_*.py")))


def test_the_slow_rule_finds_what_it_looks_for(tmp_path):
    probe = tmp_path / "test_probe.py"
    launcher = "torch" + "run"  # spelled in two parts: this test itself starts nothing
    probe.write_text(
        "def helper(s3):\n    pass\n\n"
        "def test_a(helper):\n    pass\n\n"
        f"def test_b():\n    call(['{launcher}'])\n\n"
        "def test_c(tmp_path):\n    pass\n"
    )
    found = _slow_reasons([probe])
    assert found == {
        "test_probe.py::test_a": "fixture s3",
        "test_probe.py::test_b": f"{launcher} in test_b",
    }


def test_the_import_tool_finds_a_cycle_and_nothing_else():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_wsss_has_no_import_cycle_and_no_import_inside_a_function():
    assert cycles(graph()) == []
    assert function_imports() == []


def test_loading_a_model_imports_no_training_loop():
    """wsss predict loads a seg_model: neither the training loop nor matplotlib come with it."""
    probe = (
        "import sys, wsss.stages.predict;"
        "print(sorted({'wsss.training', 'matplotlib'} & sys.modules.keys()))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _anchors(page: Path) -> set[str]:
    """The #anchors GitHub gives PAGE's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_docs_resolves():
    """README.md, CHANGELOG.md and docs/*.md link files by relative paths, and headings by
    #anchors (a moved guide or a renamed section must not leave a dead link behind); web links
    are not followed."""
    dead = []
    for page in [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if "://" in path:
                continue
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                dead.append(f"{page.relative_to(REPO)}: {target}")
    assert not dead, dead


def test_the_readme_is_short_and_leads_to_every_guide():
    """A newcomer's page: at most 200 lines, no dates or machine names (those live in
    benchmarks/RESULTS.md), and every guide in docs/ one link away."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b|Xeon|EPYC|AVX", readme)
    linked = set(re.findall(r"\]\(docs/([^)#\s]+)", readme))
    assert linked == {p.name for p in (REPO / "docs").glob("*.md")}
    for page in (REPO / "docs").glob("*.md"):  # each says what it is for, under its title
        title, blank, purpose = page.read_text().splitlines()[:3]
        assert title.startswith("# ") and not blank and purpose, page.name


def test_the_readme_results_are_the_committed_json():
    """The README's results block is generated (python -m tools.results_table) from metrics/ and
    benchmarks/results/: a number changed in one place and not the other fails here."""
    assert (REPO / "README.md").read_text() == rewritten((REPO / "README.md").read_text())


def test_the_cli_reference_is_what_the_parsers_print():
    """docs/cli.md is generated from the parsers: an option added, renamed or reworded without
    regenerating it (python -m tools.cli_reference) fails here."""
    assert (REPO / "docs" / "cli.md").read_text() == reference(), "python -m tools.cli_reference"
