"""The `cnnzoo` command: a thin layer that parses, calls the library and prints.

Each sub-module adds its subcommands with `add_parsers(subparsers)`; the handler is stored
as `func` on the parsed namespace.
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnzoo.errors import CnnzooError
from cnnzoo.models.registry import UnknownModelError

# Sub-modules that contribute subcommands, in the order `cnnzoo -h` lists them.
_MODULES = ["models", "analysis", "data", "train", "evaluate", "report", "demo", "imaging",
            "casestudy", "transfer", "ensemble", "viz", "weights", "export", "bench"]


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line naming it, exit 2 (argparse would print the usage block too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="cnnzoo",
        description="The landmark CNNs of the ImageNet era: size, train, compare, look inside.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subcommands: _Parser too
    for mod in _MODULES:
        importlib.import_module(f"cnnzoo.cli.{mod}").add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`cnnzoo models | head`): stop quietly, as a SIGPIPE'd program
        # would. stdout goes to devnull so the interpreter's final flush cannot fail again
        # (Python docs, "Note on SIGPIPE").
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
            pass
        return 141  # 128 + SIGPIPE, what the shell reports for a program killed by it
    except (CnnzooError, UnknownModelError) as e:
        print(f"cnnzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
