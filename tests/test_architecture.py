"""The import rule of ARCHITECTURE.md: a module imports only from its own package or from packages
below it in the documented order (function-local imports included), so there are no circles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "swycc"

# bottom to top, as in ARCHITECTURE.md; a module may import its own layer and those before it
LAYERS = ["errors", "config_types", "config", "io", "diffusion", "data", "nn", "losses",
          "autoencoders", "codec", "metrics", "train", "generation", "distill", "experiments", "integrations",
          "web", "cli",
          "__main__"]
FACE = {"__init__"}  # swycc/__init__.py re-exports the public API from below
MAX_TOP_LEVEL_MODULES = 15
MAX_LINES = 500


def _layer(module: str) -> str:
    """swycc.a.b -> 'a' (the top-level package or module of swycc it belongs to)."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "swycc":
                found += [(node.lineno, f"swycc.{a.name}") for a in node.names]
            elif node.module.startswith("swycc."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("swycc.")]
    return found


def test_every_package_has_a_place_in_the_order():
    tops = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
            if (p.suffix == ".py") or (p / "__init__.py").is_file()}
    assert tops - FACE <= set(LAYERS), sorted(tops - FACE - set(LAYERS))


def test_no_module_imports_from_a_layer_above_its_own():
    rank = {name: i for i, name in enumerate(LAYERS)}
    climbs = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts)
        if module.split(".")[-1] == "__init__" and len(rel.parts) == 2:
            continue  # the package's face
        own = rank[_layer(module)]
        for line, target in _imports(path):
            if rank[_layer(target)] > own:
                climbs.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert not climbs, "\n".join(climbs)


def test_few_top_level_modules_and_small_files():
    top = [p for p in ROOT.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, [p.name for p in top]
    long = [f"{p.relative_to(ROOT.parent)} ({n})" for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long


def _module_of(target: str) -> str | None:
    """The swycc module file an import names: ``swycc.a.b`` (a module or a package's face)."""
    parts = target.split(".")[1:]
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file():
            return ".".join(["swycc", *parts[:n]])
        if (base / "__init__.py").is_file():
            return ".".join(["swycc", *parts[:n], "__init__"])
    return None


def test_no_import_circles_between_modules():
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        edges = graph.setdefault(module, set())
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):  # function-local imports count too
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("swycc"):
                # ``from a.b import c``: the module a.b.c where c is one, else a.b
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("swycc")]
            for name in names:
                target = _module_of(name)
                if target is not None and target != module:
                    edges.add(target)
    circles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                circles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, "\n".join(circles)
