"""docs/cli.md, the command-line reference, generated from the argparse parsers themselves, so that
`--help` and the docs cannot disagree (tests/test_layout.py fails when the committed page differs).

    python -m tools.cli_reference          # rewrite docs/cli.md
"""

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.cli import build_parser as pipeline_parser
from wsss.cli import build_parser as wsss_parser

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "cli.md"
WIDTH = "100"  # argparse wraps at the terminal's width: one fixed width for every machine

HEAD = """# Command-line reference

Every command of `wsss` and `wsss-pipeline` with its `--help`, generated from the parsers by
`python -m tools.cli_reference` (a test keeps this page equal to what it generates). Exit codes:
0 done; 2 bad input (one `error:` line); 1 an internal failure; 130 interrupted.
"""


def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """PARSER and each of its subcommands' parsers, depth first, in the order they were added."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                yield from commands(sub)


def reference() -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        sections = [
            f"## `{p.prog}`\n\n```\n{p.format_help().rstrip()}\n```\n"
            for root in (wsss_parser(), pipeline_parser())
            for p in commands(root)
        ]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join([HEAD, *sections])


if __name__ == "__main__":
    PAGE.write_text(reference())
    print(f"{PAGE.relative_to(REPO)} written")
