"""Dependencies flow one way (DESIGN.md): no ferlab module imports a module of a higher layer, not
even inside a function, and no modules import each other in a circle. Every import statement of every
module is read with ``ast``."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ferlab"

#: top-level part of ferlab -> layer; a module may import its own layer and the ones below
LAYERS = {
    "errors": 0, "atomic": 0, "collectives": 0, "torch_pair": 0, "progress": 0,
    "classes": 1, "data": 1, "models": 1,
    "losses": 2,
    "methods": 3,
    "engine": 4,
    "viz": 5, "audit": 5,
    "predictor": 6, "demo": 6,
    "figures": 7, "api": 7, "teaching": 7,
    # ferlab/__init__: the version and the Python entry point's names (ferlab.train, ...), imported on first use
    "ferlab": 8, "cli": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """``ferlab.engine.trainer`` -> ``engine``; ``ferlab.errors`` -> ``errors``; ``ferlab`` -> ``ferlab``."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "ferlab"


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, ferlab module) of every import in ``path``, at any depth (functions, try blocks)."""
    name = module_name(path)
    return imports_in(path.read_text(encoding="utf-8"), name if path.name == "__init__.py" else name.rpartition(".")[0])


def imports_in(text: str, package: str) -> list[tuple[int, str]]:
    """:func:`imported_modules` of the source ``text`` of a module in ``package`` (e.g. ``ferlab.data``)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from ferlab import errors` imports the module ferlab.errors, `from ferlab import __version__` ferlab
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub) else source))
    return sorted({(line, m) for line, m in found if m == "ferlab" or m.startswith("ferlab.")})


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    parts = {part(module_name(p)) for p in MODULES}
    assert parts <= set(LAYERS), f"put {sorted(parts - set(LAYERS))} in LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_upward_import(path):
    own = part(module_name(path))
    upward = [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {m} (layer {LAYERS[part(m)]} > {own} "
              f"layer {LAYERS[own]})" for line, m in imported_modules(path) if LAYERS[part(m)] > LAYERS[own]]
    assert not upward, "\n".join(upward)


def test_the_check_sees_imports_inside_functions():
    """Relative imports resolved at any depth (the lazy import the neighbours module once had)."""
    text = "import numpy\ndef f():\n    if True:\n        from ..engine.trainer import load_run_method\n" \
           "    from .. import errors, __version__\n    from . import noise\n    import ferlab.viz.cam\n"
    assert imports_in(text, "ferlab.data") == [(4, "ferlab.engine.trainer"), (5, "ferlab"), (5, "ferlab.errors"),
                                               (6, "ferlab.data.noise"), (7, "ferlab.viz.cam")]


def import_graph(paths=MODULES) -> dict[str, set[str]]:
    """ferlab module -> the ferlab modules it imports, at any depth (itself left out)."""
    return {module_name(p): {m for _, m in imported_modules(p)} - {module_name(p)} for p in paths}


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports in ``graph`` as the path ``[a, b, ..., a]``; None if there is none."""
    done, path = set(), []

    def visit(module):
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported in path:
                return path[path.index(imported):] + [imported]
            if imported in graph and imported not in done:
                cycle = visit(imported)
                if cycle:
                    return cycle
        done.add(path.pop())
        return None

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    """Neither in ferlab/engine/ (where config -> config_check -> optim -> config and neighbors <-> trainer
    were) nor anywhere else in the package, imports inside functions included."""
    cycle = import_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_cycles():
    graph = {"a": {"b"}, "b": {"c", "x"}, "c": {"a"}, "d": {"a"}}
    assert import_cycle(graph) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    text = "def f():\n    from .trainer import load_run_method\n"
    assert import_cycle({"ferlab.engine.neighbors": {m for _, m in imports_in(text, "ferlab.engine")},
                         "ferlab.engine.trainer": {"ferlab.engine.neighbors"}}) == \
        ["ferlab.engine.neighbors", "ferlab.engine.trainer", "ferlab.engine.neighbors"]
