"""The layout is the architecture: layers import only downward, nothing imports in a cycle, and the
module list in docs/architecture.md is the tree that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mediamesh.backends import registry

SRC = Path(__file__).resolve().parents[1] / "src" / "mediamesh"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: Lower numbers are lower layers; a module may import its own layer or lower ones only.
RANKS = {
    "__init__": 0,
    "errors": 0,
    "privatefs": 0,
    "config": 0,
    "crypto": 0,
    "tls": 0,
    "backends": 1,
    "discovery": 1,
    "catalog": 1,
    "scanning": 2,
    "projects": 2,
    "metadata": 2,
    "context": 3,
    "services": 4,
    "web": 5,
    "api": 6,
    "dav": 6,
    "ui": 6,
    "server": 7,
    "cli": 8,
    "__main__": 9,
}


def _module_name(path: Path) -> str:
    parts = ["mediamesh", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.parts}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``if TYPE_CHECKING:`` (not run: they make no cycle)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    lines.add(inner.lineno)
    return lines


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the mediamesh modules it imports (at the top or inside functions)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - node.level + 1], base])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_layers_import_only_downward() -> None:
    graph = _imports(_modules())
    wrong = []
    for module, targets in graph.items():
        for target in targets:
            a, b = _layer(module), _layer(target)
            assert a in RANKS and b in RANKS, f"add the layer of {module} or {target} to RANKS"
            if RANKS[b] > RANKS[a] or {a, b} == {"api", "ui"}:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_import_check_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: two modules that import each other, once at the top and once in a function."""
    pkg = tmp_path / "mediamesh"
    (pkg / "services").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "services" / "__init__.py").write_text("")
    (pkg / "services" / "a.py").write_text("from mediamesh.services import b\n")
    (pkg / "services" / "b.py").write_text("def f():\n    from mediamesh.services.a import x\n")
    (pkg / "api.py").write_text("from mediamesh.services.a import y\n")
    monkeypatch.setattr(f"{__name__}.SRC", pkg)
    graph = _imports(_modules())
    assert graph["mediamesh.services.a"] == {"mediamesh.services.b"}
    assert graph["mediamesh.services.b"] == {"mediamesh.services.a"}
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
    (pkg / "services" / "b.py").write_text("from mediamesh.api import z\n")
    with pytest.raises(AssertionError, match=r"mediamesh\.services\.b -> mediamesh\.api"):
        test_layers_import_only_downward()


def test_the_architecture_page_lists_modules_that_exist() -> None:
    """Every path that the module list of docs/architecture.md names exists, and every package is there."""
    text = DOCS.read_text()
    text = text[text.index("## Modules") : text.index("## How the parts join")]
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+(?:\.py|/))`", text))
    missing = [n for n in named if not (SRC / n).exists()]
    assert not missing, f"docs/architecture.md names what does not exist: {sorted(missing)}"
    packages = {p.parent.relative_to(SRC).as_posix() + "/" for p in SRC.rglob("__init__.py")}
    packages = {p for p in packages if p != "./" and "migrations" not in p}
    unnamed = packages - named
    assert not unnamed, f"docs/architecture.md does not describe {sorted(unnamed)}"


def test_adding_a_kind_is_one_registration() -> None:
    """Everything outside backends/ learns kinds from the registry: no module names a kind literally."""
    literal = re.compile(r"""(?:kind|row\.kind|loc\.kind)\s*[!=]=\s*["'](?:local|smb|sftp|nfs)["']""")
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*")
        if p.suffix in (".py", ".html", ".js")
        and "backends" not in p.parts
        and "migrations" not in p.parts
        and literal.search(p.read_text())
    ]
    assert not offenders, f"these decide by a kind's name instead of the registry: {offenders}"
    assert {k.name for k in registry.kinds()} >= {"local", "smb", "sftp", "nfs"}
    for kind in registry.kinds():
        assert kind.example and kind.options and kind.title
