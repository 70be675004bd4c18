"""Merge results tables of one study recorded in several sweeps (`raysweep table` CSVs with the same
recipe): every row of each, in order, where a later table's row replaces an earlier one's with the
same (model, epochs, lr, seed), so a cell measured again counts once, at its newer run.

    python benchmarks/study/merge_tables.py benchmarks/study/nfnet.csv new.csv --out merged.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

KEY = ("model", "epochs", "lr", "seed")


def _key(row: dict[str, str]) -> tuple[str, float, float, str]:
    return row["model"], float(row["epochs"]), float(row["lr"]), row["seed"]


def merge(paths: list[Path]) -> tuple[list[str], list[dict[str, str]]]:
    columns: list[str] = []
    rows: dict[tuple[str, float, float, str], dict[str, str]] = {}
    for path in paths:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [k for k in KEY if k not in (reader.fieldnames or [])]
            if missing:
                raise SystemExit(f"{path}: expected the columns {', '.join(KEY)}; missing {', '.join(missing)}")
            columns += [c for c in reader.fieldnames or [] if c not in columns]
            for row in reader:
                rows.pop(_key(row), None)  # the newer run goes last, in its own table's order
                rows[_key(row)] = row
    return columns, list(rows.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+", type=Path, help="tables, oldest first")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    columns, rows = merge(args.tables)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{args.out}: {len(rows)} runs from {', '.join(map(str, args.tables))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
