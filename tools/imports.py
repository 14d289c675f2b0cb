"""wsss's module graph: the import cycles among its modules (counting a package's __init__, which
every import of a submodule runs) and the imports inside functions, which hide a cycle or keep
something slow off a path. Exit 1 while either is left.

    python -m tools.imports
"""

import ast
import sys
from pathlib import Path

from wsss.provenance import imports

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph() -> dict[str, set[str]]:
    """Module -> the wsss modules it imports (at the top or in functions)."""
    modules = {module_name(p): p for p in sorted((REPO / "wsss").rglob("*.py"))}
    return {name: imports(path) & modules.keys() - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def function_imports() -> list[str]:
    """`path:line function: import …` for each import inside a function of wsss/."""
    found: dict[tuple[str, int], str] = {}
    for path in sorted((REPO / "wsss").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    where = (str(path.relative_to(REPO)), node.lineno)
                    found[where] = f"{where[0]}:{where[1]} {function.name}: {ast.unparse(node)}"
    return [found[where] for where in sorted(found)]


def main() -> int:
    found = cycles(graph())
    print(f"import cycles among wsss modules: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    inside = function_imports()
    print(f"imports inside functions: {len(inside)}")
    for line in inside:
        print("  " + line)
    return 1 if found or inside else 0


if __name__ == "__main__":
    sys.exit(main())
