"""The `raysweep` command line: one module per command (`run`, `dryrun`, `warm_plan`, `study` for
analyze/plan, `table`, `upload`, `ladders`, `bench`), the one `preflight` that runs before anything
launches, and `main`, the parser and dispatch.

May import every layer below it; it is the only place that turns a `SpecError` into one line and exit 2.
"""

from raysweep.cli.main import _redacting_excepthook, build_parser, main, one_line

__all__ = ["_redacting_excepthook", "build_parser", "main", "one_line"]
