"""`roomctl crds`: the CustomResourceDefinitions, printed or written to folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("crds", help="print the Kubernetes CRDs generated from the models", parents=[common])
    parser.add_argument("--write", type=Path, action="append", default=[], metavar="DIR",
                        help="write one file per CRD into DIR instead of printing (repeatable)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..crd import crd_files  # the CRD generator loads only for this command

    files = crd_files()
    if not args.write:
        sys.stdout.write("---\n".join(files.values()))
        return 0
    for folder in args.write:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
            if not args.quiet:
                print(f"wrote {folder / name}", file=sys.stderr)
    return 0
