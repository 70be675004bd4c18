"""Where a finished study is read from: an MLflow experiment (every session of its sweeps) or a
results table with `raysweep table`'s columns. Used by `raysweep analyze`/`plan` and by a sweep's
`search.warm_start`; bad sources are one-line `SpecError`s under the caller's key.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raysweep.analysis.runs import Runs, load_csv, runs_from_rows
from raysweep.core.errors import SpecError
from raysweep.results.rows import TrialRow


@dataclass(frozen=True)
class Source:
    runs: Runs
    parents: tuple[str, ...]  # MLflow parent runs (sessions) the trials came from; none for a table
    uri: str | None  # the tracking URI it was read from; None for a table


def is_table(source: str) -> bool:
    return source.lower().endswith(".csv")


def load_experiment(name: str, uri: str, *, key: str = "--experiment", uri_key: str = "--tracking-uri",
                    sweeps: Sequence[str] = ()) -> Source:
    """The finished trials of an experiment's sweeps (those whose name matches a glob in `sweeps`,
    when given). Sweeps with different recipes (`mlflow_rows.RECIPE_PARAMS`) are not one study: a
    one-line error names them and how to pick."""
    from mlflow.exceptions import MlflowException

    from raysweep.results.mlflow_rows import read_trials

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        # MLflow would create an empty store (and its folders) at a mistyped path: say so instead
        raise SpecError(f"expected an existing MLflow SQLite store, got {uri!r}, which does not exist", key=uri_key)
    try:
        rows = read_trials(uri, name)
    except FileNotFoundError:
        raise SpecError(f"expected an MLflow experiment at {uri}, got {name!r}, which does not exist",
                        key=key) from None
    except MlflowException as err:
        raise SpecError(f"expected a usable MLflow tracking URI, got {uri!r} ({type(err).__name__})",
                        key=uri_key) from None
    if not rows:
        raise SpecError(f"expected finished trials in experiment {name!r} at {uri}, got none", key=key)
    rows = one_study(rows, name, sweeps, key=key)
    parents = tuple(sorted({r.parent for r in rows if r.parent}))
    runs = runs_from_rows(rows, name=name, source=f"MLflow experiment {name!r} at {uri}, "
                                                  f"{len(parents)} session(s)")
    return Source(runs, parents, uri)


def one_study(rows: list[TrialRow], experiment: str, sweeps: Sequence[str] = (), *,
              key: str = "--experiment") -> list[TrialRow]:
    """`read_trials` rows of the sweeps matching `sweeps` (globs; all when empty), checked
    to be one study: sweeps of different recipes are a one-line error naming them."""
    if sweeps:
        names = sorted({r.sweep for r in rows})
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.sweep, pat) for pat in sweeps)]
        if not rows:
            raise SpecError(f"expected a sweep of experiment {experiment!r} matching {', '.join(map(repr, sweeps))}, "
                            f"got none; its sweeps: {', '.join(names)}", key="--sweep")
    _one_recipe(rows, experiment, key)
    return rows


def _one_recipe(rows: list[TrialRow], experiment: str, key: str) -> None:
    by: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for r in rows:
        by.setdefault(r.recipe, set()).add(r.sweep or "?")
    if len(by) < 2:
        return
    recipes = [dict(r) for r in by]
    differ = sorted({k for d in recipes for k in d if len({x.get(k) for x in recipes}) > 1})
    groups = "; ".join(f"{', '.join(sorted(sweeps))} ({', '.join(f'{k}={dict(recipe).get(k)}' for k in differ)})"
                       for recipe, sweeps in by.items())
    raise SpecError(f"expected the sweeps of one study, got {len(by)} recipes in experiment {experiment!r} that cannot "
                    f"be pooled: {groups}; pick one with --sweep NAME (globs allowed) or keep studies in separate "
                    f"experiments", key=key)


def load_table(path: str) -> Source:
    return Source(load_csv(path), (), None)


def load(source: str, uri: str, *, key: str, uri_key: str = "--tracking-uri") -> Source:
    """A results table when `source` ends in .csv, else the MLflow experiment of that name at `uri`."""
    if is_table(source):  # its errors name the table, the line and the column
        return load_table(source)
    return load_experiment(source, uri, key=key, uri_key=uri_key)
