"""The layer order of DESIGN.md: a module of src/widefield3d may import its own layer or the layers below it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "widefield3d"
LAYERS = [  # top first; "__init__" is the package root (it holds the version)
    {"cli", "__main__", "verbs", "demo", "report", "napari"},  # entry points and presentation (napari: the plugin)
    {"export"},  # a model in another tool's format (bioimage.io), through the methods' own predict
    {"methods", "zoo", "distributed"},  # the methods; model files and loading any of them; running one on a cluster
    {"checks"},  # the checks a command runs first
    {"train", "nets"},
    {"prep"},
    {"analysis", "tiling"},
    {"sim", "optics"},
    {"io"},
    {"errors", "device", "memory", "progress", "__init__"},
]
RANK = {unit: -depth for depth, layer in enumerate(LAYERS) for unit in layer}
KNOWN: set[tuple[str, str]] = set()  # upward imports still to be removed, as (module, layer); none left


def _unit(dotted: str) -> str:
    name = dotted.split(".")[1]
    is_module = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
    return name if is_module else "__init__"  # `from widefield3d import __version__`


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("widefield3d."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "widefield3d":
            yield from (f"widefield3d.{a.name}" for a in node.names) if node.module == "widefield3d" else [node.module]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    rel = path.relative_to(PACKAGE)
    unit = rel.parts[0].removesuffix(".py")
    assert unit in RANK, f"{rel}: place {unit} in a layer of LAYERS"
    upward = {_unit(name) for name in _imports(ast.parse(path.read_text(encoding="utf-8")))}
    upward = {u for u in upward if RANK[u] > RANK[unit] and (rel.as_posix(), u) not in KNOWN}
    assert not upward, f"{rel} imports {sorted(upward)}, a layer above its own"
