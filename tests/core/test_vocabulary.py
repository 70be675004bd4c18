"""One vocabulary: a metric key, tag key, study attribute or trial status that `raysweep.core.records`
names is written through its constant everywhere else in `raysweep/`, never as a literal string.

What counts as a literal of the vocabulary (so that ordinary words such as a `lr` parameter name
do not): any string equal to a namespaced constant (a metric `split/name`, a tag or attribute
`raysweep.x` or `mlflow.x`); and a trial status's value where it is compared or chosen among
(`x == "ok"`, `x in ("ok", "diverged")`).
"""

from __future__ import annotations

import ast
from pathlib import Path

from raysweep.core.records import M, StudyAttr, Tag, TrialStatus

PACKAGE = Path(__file__).resolve().parents[2] / "raysweep"
RECORDS = PACKAGE / "core" / "records.py"


def _constants() -> dict[str, str]:
    out: dict[str, str] = {}
    for cls in (M, Tag, StudyAttr):
        for name, value in vars(cls).items():
            if name.isupper() and isinstance(value, str) and ("/" in value or value.startswith(("raysweep.", "mlflow."))):
                out.setdefault(value, f"{cls.__name__}.{name}")
    return out


STATUSES = {s.value: f"TrialStatus.{s.name}" for s in TrialStatus}


def _status_literals(tree: ast.AST) -> list[tuple[int, str]]:
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                hits += [(i.lineno, i.value) for i in items
                         if isinstance(i, ast.Constant) and i.value in STATUSES]
    return hits


def offenders(root: Path = PACKAGE) -> list[str]:
    names = _constants()
    out = []
    for path in sorted(root.rglob("*.py")):
        if path == RECORDS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                out.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value!r} is {names[node.value]}")
        for line, value in _status_literals(tree):
            out.append(f"{path.relative_to(root.parent)}:{line}: {value!r} is {STATUSES[value]}")
    return out


def test_no_vocabulary_literal_outside_records() -> None:
    found = offenders()
    assert not found, "use the records constant:\n" + "\n".join(found)


def test_the_check_finds_a_planted_literal(tmp_path: Path) -> None:
    pkg = tmp_path / "raysweep"
    pkg.mkdir()
    (pkg / "m.py").write_text('x = {"val/loss": 1}\nif s == "diverged":\n    pass\nt = "raysweep.cell"\nlr = "lr"\n')
    found = offenders(pkg)
    assert sorted(f.split(": ", 1)[1] for f in found) == [
        "'diverged' is TrialStatus.DIVERGED", "'raysweep.cell' is Tag.CELL", "'val/loss' is M.VAL_LOSS"], found
