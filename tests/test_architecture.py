"""The layering rules of docs/architecture.md, checked on the source with `ast`.

- no import cycle between modules of facepriv_core, counting every import that can run:
  module level, class bodies, `if`/`try` blocks and function bodies (a lazy import inside a
  function is a hidden cycle all the same), not `if TYPE_CHECKING:`;
- nothing under facepriv_core/faces imports facepriv_core.models, at any level;
- nothing in facepriv_core imports streamlit, at any level;
- nothing under defences/ or train/ imports attacks/, at any level.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "facepriv_core"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p)))
            for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


MODULES = sources()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(module: str, tree: ast.AST, *, load_time_only: bool,
             runtime_only: bool = False) -> Iterator[tuple[str, int]]:
    """(imported module, line) for each import; with load_time_only, only those run when the
    module is imported (function bodies and TYPE_CHECKING blocks are skipped); with
    runtime_only, those that can run at all (TYPE_CHECKING blocks skipped)."""
    is_package = MODULES[module][0].name == "__init__.py" if module in MODULES else False

    def walk(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if load_time_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                             | ast.Lambda):
                continue
            if (load_time_only or runtime_only) and isinstance(child, ast.If) \
                    and _is_type_checking(child.test):
                yield from (x for n in child.orelse for x in walk_one(n))
                continue
            yield from walk_one(child)

    def walk_one(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno
        else:
            yield from walk(node)

    yield from walk(tree)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_graph(load_time_only: bool = False) -> dict[str, set[str]]:
    """Module -> the facepriv_core modules it imports (at load time only, or anywhere at run
    time), with the packages whose __init__ that import runs (those not already loading as
    ancestors of the importer)."""
    graph: dict[str, set[str]] = {}
    for module, (_, tree) in MODULES.items():
        mine = set(_ancestors(module))
        edges: set[str] = set()
        for target, _ in imported(module, tree, load_time_only=load_time_only,
                                  runtime_only=True):
            if not target.startswith(PACKAGE):
                continue
            for name in [*_ancestors(target), target]:
                if name in MODULES and name != module and name not in mine:
                    edges.add(name)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_checker_sees_imports_and_cycles() -> None:
    """The walker finds real edges (so an empty cycle list means something)."""
    graph = import_graph(load_time_only=True)
    assert "facepriv_core.defences.base" in graph["facepriv_core.attacks.base"]
    assert "facepriv_core.errors" in graph["facepriv_core.models.zoo"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    """Function-level imports count: `cli` importing plugins lazily is fine, a plugin importing
    the registry that lazily imports it back is not."""
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in facepriv_core: " + "; ".join(
        " <-> ".join(c) for c in cycles)


def _offenders(prefix: str, banned: str) -> list[str]:
    return [f"{MODULES[m][0].relative_to(ROOT)}:{line} imports {target}"
            for m, (_, tree) in MODULES.items() if m == prefix or m.startswith(prefix + ".")
            for target, line in imported(m, tree, load_time_only=False)
            if target == banned or target.startswith(banned + ".")]


def test_faces_imports_nothing_from_models() -> None:
    assert not _offenders(f"{PACKAGE}.faces", f"{PACKAGE}.models")


def test_core_never_imports_streamlit() -> None:
    assert not _offenders(PACKAGE, "streamlit")


def test_function_level_imports_count_type_checking_ones_do_not() -> None:
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import json\n"
                     "def f():\n    import streamlit.x\n")
    assert [t for t, _ in imported(PACKAGE, tree, load_time_only=False)] == [
        "os", "json", "streamlit.x"]
    assert [t for t, _ in imported(PACKAGE, tree, load_time_only=False, runtime_only=True)] == [
        "os", "streamlit.x"]
    assert [t for t, _ in imported(PACKAGE, tree, load_time_only=True)] == ["os"]
    graph = import_graph()  # a lazy import is an edge like any other
    assert "facepriv_core.defences.keys" in graph["facepriv_core.verification"]


def test_defences_and_trainers_import_nothing_from_attacks() -> None:
    """Attacks sit above defences and the trainers they use; an arrow never points up."""
    assert not _offenders(f"{PACKAGE}.defences", f"{PACKAGE}.attacks")
    assert not _offenders(f"{PACKAGE}.train", f"{PACKAGE}.attacks")
