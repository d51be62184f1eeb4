"""The source tree's shape, checked: unique module names and no import circles.

A reader should know a module by its file name and be able to read the packages bottom-up. So:

* no two modules under ``src/adspace`` share a file name, except ``__init__.py``, ``__main__.py`` and one
  domain's HTTP route beside its service (``exchange/http/routes/X.py`` and ``exchange/services/X.py``);
* no import circle between modules, and none between packages (an import inside a function counts;
  one under ``if TYPE_CHECKING:`` does not, since it never runs).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROUTES = "adspace/exchange/http/routes"
SERVICES = "adspace/exchange/services"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "adspace").rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _under_type_checking(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            if (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
                isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
            ):
                skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    return skip


def _resolve(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> tuple[dict[str, set[str]], dict[str, bool]]:
    """Module -> the ``adspace`` modules it imports at run time; and which modules are packages."""
    mods = _modules()
    known = set(mods)
    is_pkg = {m: p.name == "__init__.py" for m, p in mods.items()}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _under_type_checking(tree)
        here = name if is_pkg[name] else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                deps.update(_resolve(a.name, known) for a in node.names if a.name.startswith("adspace"))
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    mod = ".".join(base + ([mod] if mod else []))
                if mod.startswith("adspace"):
                    for a in node.names:
                        full = f"{mod}.{a.name}"
                        deps.add(full if full in known else _resolve(mod, known))
        deps.discard(name)
        graph[name] = deps
    return graph, is_pkg


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def package_graph(graph: dict[str, set[str]], is_pkg: dict[str, bool]) -> dict[str, set[str]]:
    """Package -> packages it imports from (a package and its own sub-packages are one family: left out)."""

    def pkg(m: str) -> str:
        return m if is_pkg[m] else m.rpartition(".")[0]

    out: dict[str, set[str]] = defaultdict(set)
    for m, deps in graph.items():
        a = pkg(m)
        for d in deps:
            b = pkg(d)
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                out[a].add(b)
    return dict(out)


def test_circles_finds_a_circle():
    """The checker itself: a two-module circle and a three-module one are found, a chain is not."""
    g = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(circles(g)) == [["a", "b"], ["c", "d", "e"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_between_modules():
    graph, _ = import_graph()
    assert len(graph) > 50  # the tree was found
    assert circles(graph) == []


def test_no_import_circle_between_packages():
    graph, is_pkg = import_graph()
    assert circles(package_graph(graph, is_pkg)) == []


def test_module_file_names_are_unique():
    by_name: dict[str, list[str]] = defaultdict(list)
    for p in (SRC / "adspace").rglob("*.py"):
        if p.name not in ("__init__.py", "__main__.py"):
            by_name[p.name].append(p.parent.relative_to(SRC).as_posix())
    clashes = {
        name: sorted(dirs)
        for name, dirs in by_name.items()
        if len(dirs) > 1 and sorted(dirs) != sorted([ROUTES, SERVICES])
    }
    assert clashes == {}
