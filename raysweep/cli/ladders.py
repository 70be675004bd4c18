"""`raysweep ladders`: every registered ladder, its rungs, parameters and training FLOPs per example."""

from __future__ import annotations

import argparse

from raysweep.core.errors import SpecError


def run(args: argparse.Namespace) -> int:
    from raysweep.models import LADDERS, flops_per_example, param_count

    if args.family is not None and args.family not in LADDERS:
        raise SpecError(f"expected one of {sorted(LADDERS)}, got {args.family!r}", key="--family")
    for family, ladder in LADDERS.items():
        if args.family and family != args.family:
            continue
        print(f"{family}: {ladder.description}")
        print(f"  {'rung':<14} {'params':>14} {'train FLOPs/example':>20}")
        kw = {"num_classes": args.classes, "in_chans": args.in_chans, "image_size": args.image_size}
        for name in ladder.rung_names():
            print(f"  {name:<14} {param_count(family, name, **kw):>14,} {flops_per_example(family, name, **kw):>20.4g}")
        print()
    return 0
