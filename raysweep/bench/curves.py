"""`raysweep bench curves`: draw a results table's validation loss against LR (mean over seeds).

A table of 140 (model, budget, LR) means is hard to read; the figure shows at a glance whether the
optimal LR falls with budget and model size, which is what the monotone searcher assumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from raysweep.analysis.plots import plot_lr_curves
from raysweep.analysis.summary import summarize
from raysweep.bench.table import load_table
from raysweep.results.rows import TrialRow, status_of


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raysweep bench curves",
                                     description="Plot validation loss against learning rate for every cell of a "
                                                 "results table (the mean over seeds; the best LR of each cell ringed).")
    parser.add_argument("--table", required=True, help="results CSV (columns model,epochs,lr,val_loss, ...)")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to write")
    args = parser.parse_args(argv)
    table = load_table(args.table)
    lat = table.lattice
    trials = []
    for (cell, i) in table.runs:
        loss = table.mean_loss(cell, i)
        if loss is None:
            continue
        trials.append(TrialRow(lat.models[cell.m], lat.epochs[cell.e], lat.lrs[i], status_of(loss), loss))
    rows = summarize(trials, models=lat.models, epochs=lat.epochs)
    plot_lr_curves(trials, rows, models=lat.models, epochs=lat.epochs, path=args.out)
    print(f"wrote {args.out}")
    return 0
