"""The layers are enforced, not described (docs/architecture.md).

`make lint` runs the import-linter contracts of pyproject.toml; these tests check what the
contracts cannot: no import cycle anywhere in the package (function-level imports included),
no contract weakened by ignored imports, no module left behind at an old address, and
function-level imports used only to defer a heavy dependency.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "svqcast"

# A function-level import may only defer one of these (CLI start-up must not pay for them, and
# the optional extras must not be needed to import the package).
HEAVY = {
    "torch": "torch: about 1 s to import; the CLI's --help and data commands must not pay it",
    "xarray": "xarray and pandas: half a second; commands that read no file do not pay it",
    "pandas": "see xarray",
    "matplotlib": "optional extra `plot`",
    "cfgrib": "optional extra `grib`",
    "eccodes": "optional extra `grib` (the ECMWF library behind cfgrib)",
    "av": "optional extra `video`",
    "onnx": "optional extra `export`",
    "onnxruntime": "optional extra `export`",
    "lpips": "optional extra `lpips`",
    "pysteps": "optional extra `nowcast` (the optical-flow reference), which prints a banner on import",
    "vector_quantize_pytorch": "optional extra `vq`",
    "tensorboard": "optional extra `tensorboard`",
    "huggingface_hub": "only the zoo's network paths need it (pulls requests and httpx)",
    "safetensors": "imports torch's tensor types",
    "h5py": "HDF5 library start-up, only for .h5 stores",
    "netCDF4": "HDF5 library start-up, only when a file is written",
    "PIL": "image folders only",
    "scipy": "only some references",
    "aiohttp": "remote zarr only",
    "httpx": "remote zarr only",
    "zarr": "the prepared store; numcodecs start-up, paid only by commands that read or write data",
    "fsspec": "optional extra `zarr`",
    "dask": "the preparation's task graph, only when a store is built",
    "distributed": "a dask cluster client (tornado start-up), only for `--workers` / `--scheduler`",
    "tomli": "TOML reader on Python < 3.11 (version switch)",
    "tomllib": "TOML reader on Python >= 3.11 (version switch)",
}
# Where a function-level `import svqcast...` is the mechanism itself: the CLI defers torch-heavy
# library modules, and the packages' PEP 562 lazy exports resolve names on first access.
LAZY_LAYERS = ("cli/", "api.py", "__init__.py")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        # `from pkg import sub` imports pkg.sub (as import-linter counts it); `from mod import name`, mod
        subs = [f"{base}.{a.name}" for a in node.names]
        return subs if all(sub in modules for sub in subs) else [base, *subs]
    return []


def import_graph() -> dict[str, set[str]]:
    """Module -> the svqcast modules it imports anywhere (top level or inside functions)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in _imported(node, package, mods):
                if name in mods and name != mod:
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_contracts_are_declared_and_none_is_weakened():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contracts = config["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    order = [layer.split(" | ")[0] for layer in layers]
    for upper, lower in [("svqcast.cli", "svqcast.verify"), ("svqcast.verify", "svqcast.forecast"),
                         ("svqcast.forecast", "svqcast.data"), ("svqcast.data", "svqcast.sources"),
                         ("svqcast.sources", "svqcast.models"), ("svqcast.models", "svqcast.config")]:
        assert order.index(upper) < order.index(lower), (upper, lower)
    assert not any("ignore_imports" in c for c in contracts), "a contract ignores imports"
    assert importlib.util.find_spec("importlinter") is not None, "import-linter is a test dependency"


@pytest.mark.parametrize("old", ["io", "hub", "metrics", "refcast", "evaluation", "scoring", "plot", "checkpoint",
                                 "modelcard", "convert", "export", "forecast_writer", "forecast_files", "gridmatch",
                                 "timeaxis", "data/usersource", "data/userfields", "data/userframes", "data/timegrid",
                                 "data/sources", "data/zarrstore", "data/video"])
def test_no_module_is_left_at_an_old_address(old):
    """Moved, not forwarded: an old name that still imported would be a second way in."""
    assert not (PACKAGE / f"{old}.py").exists()


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for node in tree.body:  # a version switch at module level is not a deferral
        if isinstance(node, (ast.If, ast.Try)):
            top.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in top or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            out.append((node.lineno, "." * node.level + (node.module or "")))
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        out.extend((node.lineno, n) for n in names)
    return out


def test_function_level_imports_only_defer_heavy_dependencies():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel.endswith("build_samples.py"):  # a maintainer's script, not part of the library
            continue
        lazy_ok = rel.startswith(LAZY_LAYERS[0]) or path.name in LAZY_LAYERS[1:]
        for line, name in _function_imports(path):
            root = name.split(".")[0]
            if root in HEAVY or (root == "svqcast" and lazy_ok):
                continue
            offenders.append(f"svqcast/{rel}:{line} imports {name} inside a function")
    assert not offenders, "\n".join(offenders)
