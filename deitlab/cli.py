"""The ``deitlab`` command line: ``deitlab env``, ``deitlab bench`` and ``deitlab fetch``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap


def _cmd_env(args: argparse.Namespace) -> int:
    from deitlab.capabilities import capabilities, capability_table
    from deitlab.env import report

    env = report()
    caps = capabilities(refresh=args.refresh)
    if args.json:
        print(json.dumps({"report": env.as_dict(), "capabilities": [c.__dict__ for c in caps]}, indent=2))
        return 0
    print(env)
    print("\ncapabilities (probed on this machine)")
    print(textwrap.indent(capability_table(caps), "  "))
    return 0


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cmd_bench(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from deitlab import bench

    if args.list:
        for name, variant in bench.VARIANTS.items():
            print(f"{name:22} {variant.family:9} {variant.label}")
        return 0
    try:
        variants = bench.resolve_variants(args.variants or (bench.QUICK_VARIANTS if args.quick else None))
    except ValueError as exc:
        print(f"deitlab bench: {exc}", file=sys.stderr)
        return 2
    repeats = args.repeats or (5 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if repeats < 1 or warmup < 0:
        print("deitlab bench: --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    threads = args.threads or [torch.get_num_threads()]
    model, inputs = bench.bench_model(args.model)
    print(f"benchmarking {args.model} on {inputs.shape[0]} parity inputs: {', '.join(variants)}", file=sys.stderr)
    df = bench.run_benchmark(
        model, inputs, variants, args.batch or [1], threads, repeats, warmup, model_name=args.model
    )
    csv_path, json_path = bench.save_results(df, args.out)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(bench.summary_table(df).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwrote {csv_path} and {json_path} (with the environment report)")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from deitlab.fetch import NOTEBOOK_WEIGHTS, FetchError, fetch_one, instructions
    from deitlab.models import WEIGHTS_DIR_ENV, UnknownModelError

    folder = args.to or os.environ.get(WEIGHTS_DIR_ENV)
    if not folder:
        print(f"deitlab fetch: give --to FOLDER or set {WEIGHTS_DIR_ENV}", file=sys.stderr)
        return 2
    folder = Path(folder).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"deitlab fetch: cannot create {folder}: {exc.strerror}", file=sys.stderr)
        return 2
    names = tuple(n.strip() for n in args.models.split(",") if n.strip()) if args.models else NOTEBOOK_WEIGHTS
    if not names:
        print("deitlab fetch: --models is empty", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            fetched = fetch_one(name, folder)
        except (FetchError, UnknownModelError, OSError) as exc:
            print(f"✗ {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"✓ {name:34} {fetched.size_bytes / 1e6:8.1f} MB  {fetched.origin:13} {fetched.path}")
    if failed:
        print(f"deitlab fetch: {failed} of {len(names)} models missing in {folder}", file=sys.stderr)
        return 1
    print(instructions(folder))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="deitlab", description="Vision Transformer deployment workbook helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="print versions, CPU features and the capability table")
    env.add_argument("--json", action="store_true", help="machine-readable output")
    env.add_argument("--refresh", action="store_true", help="re-run the capability probes instead of using the cache")
    env.set_defaults(handler=_cmd_env)

    bench = commands.add_parser("bench", help="parity-check and time inference variants of a model")
    bench.add_argument("--model", default="deit_base_patch16_224", help="timm name, HF id, or 'tiny' (the MNIST DeiT)")
    bench.add_argument("--variants", default=None, help="comma-separated variant names or 'all' (see --list)")
    bench.add_argument("--batch", type=_positive_ints, default=None, help="batch sizes, e.g. 1,8 (default 1)")
    bench.add_argument(
        "--threads", type=_positive_ints, default=None, help="thread counts, e.g. 1,2 (default: all cores)"
    )
    bench.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 20; quick 5)")
    bench.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs (default 3; quick 1)")
    bench.add_argument("--quick", action="store_true", help="few repeats and the fast variants only")
    bench.add_argument("--out", default="build/bench", help="folder for bench.csv and bench.json")
    bench.add_argument("--list", action="store_true", help="list the variants and exit")
    bench.set_defaults(handler=_cmd_bench)

    fetch = commands.add_parser("fetch", help="download and verify the notebooks' pretrained weights into a folder")
    fetch.add_argument("--to", default=None, help="the folder (default: $DEITLAB_WEIGHTS_DIR)")
    fetch.add_argument("--models", default=None, help="comma-separated model names (default: every notebook's)")
    fetch.set_defaults(handler=_cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deitlab`` console script."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
