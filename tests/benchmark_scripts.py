"""Load a script of `benchmarks/` as a module, for the tests of its pure logic (tables, judges)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """`benchmarks/<name>.py` (`study/seed_noise` for one in a folder), imported under its file's stem
    (registered in sys.modules, as its dataclasses need)."""
    stem = name.rsplit("/", 1)[-1]
    spec = importlib.util.spec_from_file_location(stem, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
    return module
