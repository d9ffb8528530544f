"""The `rlvr` command. Each subcommand lives in its own module with `register(subparsers)`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from rlvr import diskspace
from rlvr.errors import UserError

# Modules under rlvr.cli, one per subcommand, in the order `rlvr --help` lists them.
COMMANDS = ["train", "generate", "eval", "verify", "quickstart", "sandbox"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="Train reasoning language models with reinforcement learning from verifiable rewards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"rlvr.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"rlvr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlvr: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if not diskspace.is_enospc(e):
            raise
        print(f"rlvr: error: {diskspace.told(e)}", file=sys.stderr)
        return 1  # a full disk is no bad input (2)


if __name__ == "__main__":
    sys.exit(main())
