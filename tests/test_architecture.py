"""The import order of docs/ARCHITECTURE.md is the one the code follows.

Every module of `src/cxrkit` belongs to a node: its folder (`io/`, `classifier/`, ...), or
itself for a top-level module (`errors.py`, `version.py`, the package root `__init__.py`).
Every import (top-level, function-local, under `TYPE_CHECKING`, `importlib.import_module`
of a literal name, and the entries of a `lazy_exports` table) may only point to its own
node or to one listed earlier in the document's order, and the node graph has no cycle.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cxrkit"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
ORDER_HEADING = "## The import order"
PACKAGE = "cxrkit"


@dataclass(frozen=True)
class Import:
    """One import of a cxrkit module: who (path relative to the package), where, what."""

    module: str  # e.g. "classifier/films.py"
    line: int
    imported: str  # dotted, e.g. "cxrkit.segment.crop"
    source: str  # node of `module`, e.g. "classifier/"
    target: str  # node of `imported`, e.g. "segment/"

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.source} -> {self.target})"


# ---- the scan ---------------------------------------------------------------------------


def node_of(dotted: str, src: Path, package: str = PACKAGE) -> str:
    """The node of a dotted module name: 'X/' for a folder, 'X.py' for a top-level module,
    '__init__.py' for the package root."""
    parts = dotted.split(".")
    if parts[0] != package:
        raise ValueError(f"{dotted} is not in {package}")
    if len(parts) == 1:
        return "__init__.py"
    return f"{parts[1]}/" if (src / parts[1]).is_dir() else f"{parts[1]}.py"


def module_name(path: Path, src: Path, package: str = PACKAGE) -> str:
    """Dotted name of a source file ('cxrkit.classifier' for classifier/__init__.py)."""
    parts = [package, *path.relative_to(src).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_submodule(dotted: str, src: Path, package: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (src / rel).is_dir() or (src / rel).with_suffix(".py").is_file()


def _lazy_tables(tree: ast.Module) -> dict[str, ast.Dict]:
    """Module-level `NAME = {...}` dict literals (candidates for a `lazy_exports` table)."""
    tables = {}
    for stmt in tree.body:
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        if isinstance(value, ast.Dict):
            for target in targets:
                if isinstance(target, ast.Name):
                    tables[target.id] = value
    return tables


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def imports_in(path: Path, src: Path, package: str = PACKAGE) -> list[tuple[int, str]]:
    """(line, dotted module) of every cxrkit import in one file, wherever it is written."""
    name = module_name(path, src, package)
    this_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    tables = _lazy_tables(tree)
    found: list[tuple[int, str]] = []

    def add(line: int, dotted: str) -> None:
        if dotted == package or dotted.startswith(package + "."):
            found.append((line, dotted))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this_package.split(".")[: len(this_package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from cxrkit.x import y` may import submodule y
                sub = f"{module}.{alias.name}"
                add(node.lineno, sub if _is_submodule(sub, src, package) else module)
        elif isinstance(node, ast.Call):
            called = _call_name(node)
            literal = [
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if called == "import_module" and literal:
                add(node.lineno, literal[0])
            elif called == "lazy_exports" and len(node.args) >= 2:
                table = node.args[1]
                table = tables.get(table.id) if isinstance(table, ast.Name) else table
                if isinstance(table, ast.Dict):
                    for value in table.values:
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            target = value.value
                            if not target.startswith(package + "."):
                                target = f"{name}.{target}"
                            add(value.lineno, target)
    return list(dict.fromkeys(found))  # one entry per (line, module)


def scan(src: Path = SRC, package: str = PACKAGE) -> list[Import]:
    """Every cxrkit import of every module under `src` (a package folder)."""
    out = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        source = node_of(module_name(path, src, package), src, package)
        for line, dotted in imports_in(path, src, package):
            target = node_of(dotted, src, package)
            out.append(Import(rel, line, dotted, source, target))
    return out


def nodes(src: Path = SRC) -> set[str]:
    """Every node: folders holding Python modules, and the top-level modules."""
    found = {p.name for p in src.glob("*.py")}
    found |= {f"{d.name}/" for d in src.iterdir() if d.is_dir() and any(d.rglob("*.py"))}
    return found


# ---- the stated order and the checks ----------------------------------------------------


def stated_order(text: str) -> list[str]:
    """Nodes in the order of the first fenced block after the order heading: the first word
    of each line ('io/', 'errors.py', ...)."""
    _, found, after = text.partition(ORDER_HEADING)
    if not found:
        raise AssertionError(f"no {ORDER_HEADING!r} section")
    block = re.search(r"^```[^\n]*\n(.*?)^```", after, flags=re.S | re.M)
    if block is None:
        raise AssertionError(f"no fenced block after {ORDER_HEADING!r}")
    return [line.split()[0] for line in block.group(1).splitlines() if line.strip()]


def against_order(imports: list[Import], order: list[str]) -> list[str]:
    """One line per import that points to a later node (or to a node the order lacks)."""
    rank = {node: i for i, node in enumerate(order)}
    bad = []
    for imp in imports:
        if imp.source == imp.target:
            continue
        if imp.source not in rank or imp.target not in rank:
            missing = imp.source if imp.source not in rank else imp.target
            bad.append(f"{imp}: {missing} is not in the stated order")
        elif rank[imp.target] > rank[imp.source]:
            bad.append(f"{imp}: {imp.target} comes after {imp.source} in the stated order")
    return bad


def cycles(imports: list[Import]) -> list[list[str]]:
    """The node graph's cycles, as its strongly connected components of 2+ nodes (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if imp.source != imp.target:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_report(imports: list[Import], component: list[str]) -> str:
    """One shortest cycle through the component's first node, with the imports behind
    each of its steps (the rest of the component is named too)."""
    members = set(component)
    by_edge: dict[tuple[str, str], list[str]] = defaultdict(list)
    for imp in imports:
        if imp.source != imp.target and imp.source in members and imp.target in members:
            by_edge[imp.source, imp.target].append(str(imp))
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    cycle: list[str] = []
    while queue and not cycle:
        v = queue.pop(0)
        for (a, b), _ in sorted(by_edge.items()):
            if a != v:
                continue
            if b == start:
                cycle = [*paths[v], start]
                break
            if b not in paths:
                paths[b] = [*paths[v], b]
                queue.append(b)
    lines = [f"cycle between {', '.join(component)}: {' -> '.join(cycle)}"]
    for a, b in zip(cycle[:-1], cycle[1:], strict=True):
        lines += [f"    {line}" for line in by_edge[a, b]]
    return "\n".join(lines)


# ---- the tests on the real package ------------------------------------------------------


@pytest.fixture(scope="module")
def order() -> list[str]:
    return stated_order(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan()


def test_the_order_lists_every_folder_once(order: list[str]) -> None:
    assert len(order) == len(set(order)), (
        f"listed twice: {sorted({n for n in order if order.count(n) > 1})}"
    )
    present = nodes()
    assert not present - set(order), (
        f"folders / modules missing from the order: {sorted(present - set(order))}"
    )
    assert not set(order) - present, (
        f"the order lists what is not there: {sorted(set(order) - present)}"
    )


def test_every_import_points_to_its_own_folder_or_an_earlier_one(
    imports: list[Import], order: list[str]
) -> None:
    assert imports, "the scan found no imports at all"
    bad = against_order(imports, order)
    assert not bad, "imports against docs/ARCHITECTURE.md's order:\n" + "\n".join(bad)


def test_the_folder_graph_has_no_cycle(imports: list[Import]) -> None:
    found = cycles(imports)
    assert not found, "\n".join(cycle_report(imports, c) for c in found)


# ---- the checker catches what it should -------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / PACKAGE
    for rel, text in {"__init__.py": "", **files}.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_the_checker_catches_a_hidden_import_against_the_order(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "errors.py": "",
            "low/__init__.py": "",
            "low/a.py": (
                "from cxrkit.errors import X\n"
                "\n"
                "def f():\n"
                "    from cxrkit.high.b import g  # hidden in a function\n"
                "    return g\n"
            ),
            "high/__init__.py": "",
            "high/b.py": "from cxrkit.low import a\nimport cxrkit.errors\n",
        },
    )
    found = scan(src)
    assert nodes(src) == {"__init__.py", "errors.py", "low/", "high/"}
    bad = against_order(found, ["errors.py", "low/", "high/", "__init__.py"])
    assert bad == [
        "low/a.py:4 imports cxrkit.high.b (low/ -> high/): high/ comes after low/ in the "
        "stated order"
    ]
    assert cycles(found) == [["high/", "low/"]]
    report = cycle_report(found, ["high/", "low/"])
    assert (
        "low/a.py:4 imports cxrkit.high.b" in report
        and "high/b.py:1 imports cxrkit.low.a" in report
    )
    # the right order for `high` alone is fine; an unlisted node is reported
    assert (
        against_order([i for i in found if i.module != "low/a.py"], ["errors.py", "low/", "high/"])
        == []
    )
    assert "is not in the stated order" in against_order(found, ["low/", "high/"])[0]


def test_the_checker_sees_lazy_tables_import_module_and_type_checking(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "low/__init__.py": (
                "from typing import TYPE_CHECKING\n"
                "from cxrkit.lazy import lazy_exports\n"
                "_EXPORTS = {'thing': 'cxrkit.high.b', 'own': 'a'}\n"
                "if TYPE_CHECKING:\n"
                "    from cxrkit.high import b\n"
                "__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())\n"
            ),
            "low/a.py": (
                "import importlib\ndef f():\n    return importlib.import_module('cxrkit.high.b')\n"
            ),
            "lazy.py": "",
            "high/__init__.py": "",
            "high/b.py": "",
        },
    )
    found = {(i.module, i.line, i.imported) for i in scan(src)}
    assert ("low/__init__.py", 3, "cxrkit.high.b") in found  # the lazy table
    assert ("low/__init__.py", 3, "cxrkit.low.a") in found  # its own folder: allowed
    assert ("low/__init__.py", 5, "cxrkit.high.b") in found  # TYPE_CHECKING
    assert ("low/a.py", 3, "cxrkit.high.b") in found  # importlib with a literal name
    bad = against_order(scan(src), ["lazy.py", "low/", "high/", "__init__.py"])
    assert len(bad) == 3 and all("high/ comes after low/" in line for line in bad)


def test_the_order_is_read_from_the_fenced_block_under_its_heading() -> None:
    text = (
        "# x\n\n```text\nnot/ this\n```\n\n"
        f"{ORDER_HEADING}\n\nsome words\n\n```text\nerrors.py   errors\nio/   films\n\n"
        "cli/   the command\n```\nafter/\n"
    )
    assert stated_order(text) == ["errors.py", "io/", "cli/"]
    with pytest.raises(AssertionError, match="no '## The import order' section"):
        stated_order("# nothing here\n")
