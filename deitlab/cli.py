"""The ``deitlab`` command line: ``deitlab env``."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_env(args: argparse.Namespace) -> int:
    from deitlab.capabilities import capabilities
    from deitlab.env import report

    env = report()
    caps = capabilities(refresh=args.refresh)
    if args.json:
        print(json.dumps({"report": env.as_dict(), "capabilities": [c.__dict__ for c in caps]}, indent=2))
        return 0
    print(env)
    print("\ncapabilities (probed on this machine)")
    for cap in caps:
        print(f"  {cap}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="deitlab", description="Vision Transformer deployment workbook helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="print versions, CPU features and the capability table")
    env.add_argument("--json", action="store_true", help="machine-readable output")
    env.add_argument("--refresh", action="store_true", help="re-run the capability probes instead of using the cache")
    env.set_defaults(handler=_cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deitlab`` console script."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
