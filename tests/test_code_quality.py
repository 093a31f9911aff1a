"""House rules that a reviewer would otherwise have to check by hand (issue: a house a
newcomer can take over). Each rule is cheap to check on the source tree, so it is a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "svqcast"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
CODE_DIRS = ("svqcast", "benchmarks", "scripts")  # the caps hold for all code, benchmarks included


def _sources() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py"))


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_a_screen():
    offenders = [entry for path in _sources() for entry in _long_functions(path)]
    assert not offenders, "functions over 80 lines:\n" + "\n".join(offenders)


def test_no_module_is_longer_than_500_lines():
    offenders = [f"{p.relative_to(REPO)} ({n} lines)" for p in _sources()
                 if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not offenders, "modules over 500 lines:\n" + "\n".join(offenders)


def test_the_length_rule_detects_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def too_long():\n{body}\n\n\ndef short():\n    return 1\n", encoding="utf-8")
    assert _long_functions(probe) == [f"probe.py:1 too_long ({MAX_FUNCTION_LINES + 1} lines)"]


@pytest.mark.parametrize("needle", ["../shared", "shared/reference", "shared/data", "svq-" + "spec.md",
                                    "notes/contracts"])
def test_the_package_refers_to_nothing_outside_the_repository(needle):
    hits = [str(p) for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in {".py", ".toml", ".md", ".json"}
            and needle in p.read_text(encoding="utf-8", errors="ignore")]
    assert not hits, f"{needle!r} found in {hits}"


def test_no_hand_written_zarr_codec():
    assert not (PACKAGE / "data" / "zarr_v2.py").exists()


def test_hub_module_never_patches_huggingface_hub():
    """Assigning to `huggingface_hub.<anything>` changes the library for every other user in
    the process; hub.py must pass options instead."""
    tree = ast.parse((PACKAGE / "zoo" / "hub.py").read_text(encoding="utf-8"))
    hub_names = {"huggingface_hub"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("huggingface_hub"):
            hub_names.update(alias.asname or alias.name for alias in node.names)
        if isinstance(node, ast.Import):
            hub_names.update(a.asname or a.name for a in node.names if a.name.startswith("huggingface_hub"))
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(target, ast.Attribute) and isinstance(root, ast.Name):
                assert root.id not in hub_names, f"hub.py:{node.lineno} assigns to {root.id}.{target.attr}"
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and node.args:
            first = node.args[0]
            assert not (isinstance(first, ast.Name) and first.id in hub_names), f"hub.py:{node.lineno} setattr"
