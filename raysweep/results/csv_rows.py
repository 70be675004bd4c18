"""Reading a results table (CSV) down to its header and rows, or the one-line error naming the file.

Shared by the searcher replay (`raysweep.bench.table`) and the analysis (`raysweep.analysis.runs`),
which read the same tables: this checks the file, the encoding, the CSV syntax, the header and that
there is data; each loader then parses the cells of its columns with `raysweep.results.cells`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import NamedTuple

from raysweep.core.errors import SpecError


class Record(NamedTuple):
    """One data row: column -> its stripped text ("" when the row is short), and its line for errors."""

    cells: dict[str, str]
    line: int  # the line the row ends on (a quoted cell may span lines)


def read_rows(path: str, *, required: Sequence[str], optional: Sequence[str] = ()) -> tuple[tuple[str, ...], list[Record]]:
    """The stripped header and the data rows of the CSV at `path`; a `SpecError` naming the file
    when it cannot be read, is not UTF-8 text or not CSV, lacks a `required` column, or has no rows.
    `optional` is only named in the error, as the columns a header may also have."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = tuple(h.strip() for h in reader.fieldnames or ())
            missing = [c for c in required if c not in header]
            if missing:
                raise SpecError(
                    f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: expected a header "
                    f"with at least {', '.join(required)} (optional: {', '.join(optional)}), "
                    f"got {', '.join(header) or 'no header'}",
                    file=path,
                    key="header",
                )
            # `if k` drops the cells of a row longer than the header (csv files them under None)
            rows = [
                Record({k.strip(): (v or "").strip() for k, v in rec.items() if k}, reader.line_num)
                for rec in reader
            ]
    except OSError as e:
        raise SpecError(f"expected a readable CSV file, got {type(e).__name__}: {e.strerror or e}", file=path) from None
    except UnicodeDecodeError as e:  # a binary file given as the table
        raise SpecError(
            f"expected a UTF-8 text CSV, got a byte {e.object[e.start]:#04x} at offset {e.start}", file=path
        ) from None
    except csv.Error as e:  # e.g. a cell past the csv module's field size limit
        raise SpecError(f"expected a CSV table, got {e}", file=path) from None
    if not rows:
        raise SpecError("expected at least one data row, got none", file=path)
    return header, rows
