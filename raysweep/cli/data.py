"""The `raysweep data` commands (convert, inspect): argparse glue over `raysweep.data.convert`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from raysweep.core.redact import redact_url
from raysweep.data.convert import SHARD_BYTES, convert, inspect


def build_parser(parser_cls: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`raysweep data convert SRC URL` and `raysweep data inspect URL`."""
    data = parser_cls(prog="raysweep data",
                      description="Write and inspect sharded datasets. Endpoints and credentials come from the "
                                  "environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...; "
                                  "GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST).")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA")
    conv = data_sub.add_parser("convert", help="write shards and their index from a built-in dataset or an image folder")
    conv.add_argument("src", metavar="SRC", help="a built-in dataset (mnist5k, fashion_mnist, digits) or an "
                                                 "image folder root/<class>/*.png|jpg|jpeg")
    conv.add_argument("url", metavar="URL", help="where to write: a folder, file://..., gs://bucket/... or s3://...")
    conv.add_argument("--path", default=None, help="the folder a built-in dataset reads (as data.path)")
    conv.add_argument("--shard-mb", type=float, default=SHARD_BYTES / 2**20, help="close a shard past this size")
    conv.add_argument("--shard-examples", type=int, default=None, help="at most this many examples a shard")
    conv.add_argument("--overwrite", action="store_true", help="replace a dataset already at URL")
    insp = data_sub.add_parser("inspect", help="counts, classes, bytes and a contact sheet of a shard dataset")
    insp.add_argument("url", metavar="URL")
    insp.add_argument("--sheet", type=Path, default=None,
                      help="write a contact sheet PNG here (default: <name>_contact.png in this folder)")
    insp.add_argument("--no-sheet", action="store_true", help="write no contact sheet")
    insp.add_argument("--per-class", type=int, default=8, help="images per class on the contact sheet")
    insp.add_argument("--verify", action="store_true", help="read every shard and check its SHA-256")
    return data


def main(argv: Sequence[str], parser_cls: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """`raysweep data ...` (argv after `data`); the CLI passes its own parser class for one-line usage errors."""
    return run(build_parser(parser_cls).parse_args(list(argv)))


def run(args: argparse.Namespace) -> int:
    """Run `raysweep data ...`; user errors raise `SpecError` (the CLI prints one line, exit 2)."""
    if args.data_command == "convert":
        index = convert(args.src, args.url, path=args.path, shard_bytes=max(1, int(args.shard_mb * 2**20)),
                        shard_examples=args.shard_examples, overwrite=args.overwrite)
        for split, shards in index.splits.items():
            print(f"raysweep: wrote {index.examples(split):,} {split} examples in {len(shards)} shards "
                  f"({sum(s.bytes for s in shards):,} bytes) to {redact_url(args.url)}")
        return 0
    if args.data_command == "inspect":
        sheet = None
        if not args.no_sheet:
            sheet = args.sheet or Path(f"{_name(args.url)}_contact.png")
        for line in inspect(args.url, sheet=sheet, per_class=args.per_class, checksums=args.verify).lines():
            print(line)
        return 0
    raise AssertionError(args.data_command)


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or "dataset"
