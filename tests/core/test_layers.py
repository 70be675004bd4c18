"""The layers stay layers: each package imports only the packages its docstring allows, and the
pure ones load no framework (a fresh interpreter imports them and looks at sys.modules)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "raysweep"

# package -> the raysweep packages it may import (its __init__ docstring says the same in words)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "models": {"core"},
    "data": {"core", "config"},
    "devices": {"core", "config"},
    "tracking": {"core", "config"},
    "results": {"core", "tracking"},
    "analysis": {"core", "results"},
    "search": {"core", "config"},
    "train": {"core", "config", "models", "data", "devices"},
    "bench": {"core", "config", "results", "analysis", "search"},
    "sweep": {"core", "config", "models", "data", "devices", "tracking", "results", "analysis", "search", "train",
              "finetune"},
    "finetune": {"core", "config", "models", "data", "results", "analysis", "search", "train"},
}


def _imports(pkg: str) -> dict[str, set[str]]:
    """raysweep package -> the files of `pkg` that import it."""
    out: dict[str, set[str]] = {}
    for path in (PACKAGE / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "raysweep" and len(parts) > 1 and parts[1] != pkg:
                    out.setdefault(parts[1], set()).add(path.name)
    return out


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(pkg: str) -> None:
    extra = {k: sorted(v) for k, v in _imports(pkg).items() if k not in ALLOWED[pkg]}
    assert not extra, f"raysweep.{pkg} imports {extra}; allowed: {sorted(ALLOWED[pkg])}"


def test_every_package_is_in_the_table() -> None:
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert found - {"cli"} == set(ALLOWED)


@pytest.mark.parametrize("pkg, banned", [
    ("raysweep.config", {"torch", "ray", "mlflow", "optuna", "timm", "raysweep.models", "raysweep.data"}),
    ("raysweep.core", {"torch", "ray", "mlflow", "optuna", "numpy"}),
    ("raysweep.analysis", {"torch", "ray", "mlflow", "optuna"}),
    ("raysweep.models", {"ray", "mlflow", "optuna"}),
    ("raysweep.data", {"ray", "mlflow", "optuna"}),
])
def test_pure_layers_load_no_framework(pkg: str, banned: set[str]) -> None:
    code = (f"import sys, json, importlib, pkgutil; m = importlib.import_module({pkg!r}); "
            f"[importlib.import_module(f'{pkg}.' + i.name) for i in pkgutil.iter_modules(m.__path__)]; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True).stdout))
    assert not banned & loaded, f"{pkg} loads {sorted(banned & loaded)}"
