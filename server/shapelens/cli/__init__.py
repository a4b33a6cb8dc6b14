"""Command line: `shapelens serve` (the language server over stdio) and `shapelens check` (the same findings
as text, JSON, GitHub Actions annotations or SARIF, for CI, pre-commit and any editor).

Exit status of `check`: 0 without error findings (or with `--exit-zero`), 1 with any (an unreadable file is
one: SL007), 2 for a usage error or a path that does not exist.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from shapelens.cli.check import EXIT_OK, run_check
from shapelens.cli.formats import JSON_VERSION, JSON_VERSIONS
from shapelens.core.options import DEVICES, timeout_problem

FORMATS = ("text", "json", "github", "sarif")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shapelens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the language server over stdio")
    check = sub.add_parser("check", help="trace the models in files or folders and report shape findings")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a .py file or a folder (all *.py below it)")
    check.add_argument("--format", choices=FORMATS, default="text", help="default text")
    check.add_argument(
        "--json-version",
        type=int,
        choices=JSON_VERSIONS,
        default=JSON_VERSION,
        help="the --format json contract: 2 (default) adds the symbolic shapes ('symbolic': ['B', 16, 'H/2']), "
        "the named sizes and the accepted input sizes; 1 is the output before them",
    )
    check.add_argument("--device", choices=DEVICES, default="meta", help="where tensors live (default meta)")
    check.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per model (default 10)")
    check.add_argument("--fix", action="store_true", help="apply the fixes marked safe")
    check.add_argument("--no-trace", action="store_true", help="static findings only; run no user code")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even with error findings")
    check.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="trace workers for several files, forked from one warm worker (default: one per core)",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        from shapelens.lsp import prestart

        prestart.start_from_env()  # before the server's own imports: torch loads meanwhile
        from shapelens.lsp.server import main as serve

        serve()
        return EXIT_OK
    try:
        return run_check(args)
    except BrokenPipeError:  # `check FILE | head`: the reader left before the last line; nothing is lost to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's own flush is quiet too
        return EXIT_OK


def _positive_float(value: str) -> float:
    number = float(value)
    problem = timeout_problem(number)  # nan, inf and 1e308 parse as floats, and no trace ends with them
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return number
