"""The layout holds: packages import one way, no module import cycles, third-party libraries stay in their place.

Read from the source with `ast`, so a wrong import fails here before anyone notices it in review. The map and the
reasons are in docs/architecture.md.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "playground"

# Each layer may import only the layers before it (and itself). Peers in one layer do not import each other.
LAYERS = [
    {"core"},
    {"providers"},
    {"chat"},
    {"datasets"},
    {"ab", "templates", "finetune", "sharing"},
    {"services"},  # the composition root: builds Services from everything below it
    {"ui"},
    {"cli"},
    {"__main__"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

# Third-party libraries and the only places allowed to import them.
CONFINED = {
    "gradio": ("ui",),
    "starlette": ("ui",),
    "pandas": ("ui",),
    "openai": ("providers",),
    "sqlite_utils": ("core.store", "core.migrations"),
    "tiktoken": ("core.tokens",),
    "tokenizers": ("core.tokens",),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importer, dotted, without "playground."
    target: str  # what it imports: a playground module without "playground.", or a third-party top-level name
    internal: bool
    line: int
    in_function: bool
    commented: bool  # a comment on the import's line or the line above says why


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if module_name(p)}


def resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def imports_of(module: str, path: Path) -> Iterator[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    is_package = path.name == "__init__.py"
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}

    def made(target: str, internal: bool, node: ast.stmt) -> Import:
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        commented = "#" in lines[node.end_lineno - 1] or above.startswith("#")
        return Import(module, target, internal, node.lineno, id(node) in inner, commented)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "playground" or alias.name.startswith("playground."):
                    yield made(alias.name.removeprefix("playground").lstrip("."), True, node)
                else:
                    yield made(alias.name.split(".")[0], False, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = resolve(module, is_package, node.level, node.module)
            elif node.module == "playground" or (node.module or "").startswith("playground."):
                target = node.module.removeprefix("playground").lstrip(".")
            else:
                yield made((node.module or "").split(".")[0], False, node)
                continue
            for alias in node.names:  # `from . import store` imports the module store
                sub = f"{target}.{alias.name}".lstrip(".")
                yield made(sub if sub in MODULES else target, True, node)


IMPORTS = [i for module, path in MODULES.items() for i in imports_of(module, path)]
INTERNAL = [i for i in IMPORTS if i.internal and i.target in MODULES]


def package(module: str) -> str:
    return module.split(".")[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each a cycle or a knot of them."""
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
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_playground_module_is_read():
    assert {"core.store", "providers", "providers.openai", "chat.ask", "ui.app", "cli", "services"} <= set(MODULES)
    assert all(package(m) in RANK for m in MODULES), sorted(m for m in MODULES if package(m) not in RANK)


def test_no_import_cycles_between_modules():
    edges: dict[str, set[str]] = {}
    for i in INTERNAL:
        if i.target != i.module:
            edges.setdefault(i.module, set()).add(i.target)

    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("layer", [sorted(layer) for layer in LAYERS], ids=lambda layer: "+".join(layer))
def test_packages_import_only_the_layers_below_them(layer):
    wrong = [f"{i.module}:{i.line} imports {i.target}" for i in INTERNAL
             if package(i.module) in layer and package(i.target) != package(i.module)
             and RANK[package(i.target)] >= RANK[package(i.module)]]

    assert wrong == []


def test_only_ui_and_cli_import_ui():
    wrong = [f"{i.module}:{i.line}" for i in INTERNAL if package(i.target) == "ui" and package(i.module) not in {"ui", "cli"}]

    assert wrong == []


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_a_library_is_imported_only_where_it_belongs(library):
    allowed = CONFINED[library]
    wrong = [f"{i.module}:{i.line}" for i in IMPORTS if not i.internal and i.target == library
             and not any(i.module == a or i.module.startswith(a + ".") for a in allowed)]

    assert wrong == []


def test_an_import_inside_a_function_says_why():
    """A lazy import is allowed for a reason (a heavy library, a platform module), never to dodge a cycle, and the
    reason is written beside it."""
    silent = [f"{i.module}:{i.line} imports {i.target}" for i in IMPORTS if i.in_function and not i.commented]

    assert silent == []
