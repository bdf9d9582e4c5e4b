"""The folder tree is the architecture: imports point one way, and no module imports itself round a cycle.

Every ``import`` in ``modelctl`` counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "modelctl"

# What each part may import (besides itself).  The README's "How the code is laid out" draws the same.
ALLOWED = {
    "core": set(),
    "gguf": {"core"},
    "runtime": {"gguf", "core"},
    "cards": {"gguf", "core"},
    "fit": {"cards", "gguf", "core"},
    "hub": {"fit", "cards", "gguf", "core"},
    "app": {"runtime", "hub", "fit", "cards", "gguf", "core"},
    "cli": {"app", "runtime", "hub", "fit", "cards", "gguf", "core"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modelctl modules that ``name`` imports (``from modelctl.x import y`` counts y when y is a module)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "modelctl":
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "app"  # the package's own __init__
    if parts[1] in ALLOWED:
        return parts[1]
    return "cli" if parts[1] == "__main__" else "app"  # top-level modules: chat, info, serve ...


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_point_one_way():
    wrong = sorted(f"{m} ({_part(m)}) imports {n} ({_part(n)})"
                   for m, deps in _graph().items() for n in deps
                   if _part(n) != _part(m) and _part(n) not in ALLOWED[_part(m)])
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_graph_sees_lazy_imports(tmp_path):
    """The walker itself: an import inside a function counts (else the two tests above could pass vacuously)."""
    graph = _graph()
    assert "modelctl.core.errors" in graph["modelctl.gguf.reader"]
    assert any(dep.startswith("modelctl.runtime") for dep in graph["modelctl.chat"])
