"""The ``deitlab`` command line: ``deitlab env``, ``deitlab bench`` and ``deitlab fetch``."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import pandas as pd


class UserError(Exception):
    """A mistake in the command line: printed as one line on stderr, exit code 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help text between words only, so that names such as ``tiny-deit-random`` stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (``deitlab bench: error: …``) with exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def package_version() -> str:
    """The installed package's version (from its metadata), or the source tree's when not installed."""
    try:
        return importlib.metadata.version("deitlab")
    except importlib.metadata.PackageNotFoundError:
        from deitlab import __version__

        return f"{__version__} (source tree, not installed)"


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


def _origin(meta: dict) -> str:
    """When and by what a cache entry was built (from its metadata)."""
    if not meta:
        return "INCOMPLETE (no readable entry.json)"
    built = meta.get("built_by", {})
    return (
        f"{meta.get('created', '?')}  deitlab {built.get('deitlab', '?')}, torch {built.get('torch', '?')}, "
        f"{built.get('host', '?')}, built in {meta.get('build_seconds', 0):.0f} s"
    )


def _cmd_cache(args: argparse.Namespace) -> int:
    from deitlab import cache

    if args.action == "list":
        entries = cache.list_entries()
        for entry in entries:
            print(f"{entry.kind + '/' + entry.name:64} {entry.size_bytes / 1e6:9.2f} MB  {_origin(entry.meta)}")
        total = sum(entry.size_bytes for entry in entries) / 1e6
        print(f"{len(entries)} entries, {total:.2f} MB (MB = 10^6 bytes) in {cache.cache_dir()}")
        return 0
    if args.action == "verify":
        entries, problems = cache.list_entries(), cache.verify()
        for problem in problems:
            print(f"damaged: {problem}")
        print(f"{len(entries) - len(problems)} of {len(entries)} entries verified (sha256 of every file)")
        return 1 if problems else 0
    try:
        removed = cache.clear(args.pattern)
    except OSError as exc:
        print(f"deitlab cache clear: cannot delete {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for folder in removed:
        print(f"removed {folder}")
    print(f"removed {len(removed)} entries")
    return 0


def _add_cache_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cache", help="list, verify or clear the kit's disk cache (for instructors)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="entries, sizes (MB = 10^6 bytes) and what built them")
    actions.add_parser("verify", help="re-hash every entry; exit 1 and name each damaged one")
    clear = actions.add_parser("clear", help="delete entries (all, or those matching PATTERN)")
    clear.add_argument("pattern", nargs="?", default=None, help="glob on <kind>/<name>, e.g. 'checkpoints/qat_*'")
    parser.set_defaults(handler=_cmd_cache)


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _names(text: str) -> str:
    if not any(name.strip() for name in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected comma-separated names or 'all', got {text!r}")
    return text.strip()


def _writable_folder(text: str) -> Path:
    """Create the folder ``text`` and prove that a file can be written in it (before any long work)."""
    folder = Path(text).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".deitlab-write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"--out {text}: cannot write there ({exc.strerror or exc})") from None
    return folder


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.list:
        from deitlab import bench

        quick = bench.quick_variants()
        for name, variant in bench.VARIANTS.items():
            marker = "quick" if name in quick else ""
            print(f"{name:24} {variant.family:9} {variant.precision:5} {marker:5} {variant.label}")
        return 0
    out = _writable_folder(args.out)  # first: no heavy import before a bad --out is reported

    import pandas as pd
    import torch

    from deitlab import bench
    from deitlab.models import DamagedWeightsError, UnknownModelError

    try:
        bench.check_model_name(args.model)
    except UnknownModelError as exc:
        raise UserError(f"--model: {exc}") from None
    try:
        variants = bench.resolve_variants(args.variants or (bench.quick_variants() if args.quick else None))
    except ValueError as exc:
        raise UserError(f"--variants: {exc}") from None
    repeats = args.repeats or (5 if args.quick else 20)
    warmup = args.warmup or (1 if args.quick else 3)
    threads = args.threads or [torch.get_num_threads()]
    try:
        model, inputs = bench.bench_model(args.model)
    except UnknownModelError as exc:  # an 'org/model' id that is neither cached nor known offline
        raise UserError(f"--model: {exc}") from None
    except DamagedWeightsError as exc:  # not a mistake in the arguments: exit code 1
        print(f"deitlab bench: error: {exc}", file=sys.stderr)
        return 1
    print(f"benchmarking {args.model} on {inputs.shape[0]} parity inputs: {', '.join(variants)}", file=sys.stderr)
    df = bench.run_benchmark(
        model, inputs, variants, args.batch or [1], threads, repeats, warmup, model_name=args.model
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(bench.summary_table(df).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return _save_with_fallback(df, out)


def _save_with_fallback(df: pd.DataFrame, out: Path) -> int:
    """Save the results in ``out``; if that fails, in a new temporary folder that is named (exit code 1)."""
    from deitlab.bench import save_results as save

    try:
        paths = save(df, out)
    except OSError as exc:
        problem = f"could not save the results in {out} ({exc})"
        try:
            paths = save(df, tempfile.mkdtemp(prefix="deitlab-bench-"))
        except OSError as again:
            print(f"deitlab bench: {problem}, nor in a temporary folder ({again})", file=sys.stderr)
            return 1
        print(f"deitlab bench: {problem}; saved them in {paths[0].parent} instead", file=sys.stderr)
        return 1
    print(f"\nwrote {paths[0]} and {paths[1]} (with the environment report)")
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
    parser = _Parser(prog="deitlab", description="Vision Transformer deployment workbook helpers")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="print versions, CPU features and the capability table")
    env.add_argument("--json", action="store_true", help="machine-readable output")
    env.add_argument("--refresh", action="store_true", help="re-run the capability probes instead of using the cache")
    env.set_defaults(handler=_cmd_env)
    _add_cache_parser(commands)

    bench = commands.add_parser("bench", help="parity-check and time inference variants of a model")
    bench.add_argument(
        "--model",
        default="deit_base_patch16_224",
        help="a timm name (default: deit_base_patch16_224), an 'org/model' Hugging Face id, 'tiny-deit' "
        "(the kit's trained MNIST DeiT) or 'tiny-deit-random' (the same, untrained; for quick tests)",
    )
    bench.add_argument(
        "--variants", type=_names, default=None, help="comma-separated variant names or 'all' (see --list)"
    )
    bench.add_argument("--batch", type=_positive_ints, default=None, help="batch sizes, e.g. 1,8 (default 1)")
    bench.add_argument(
        "--threads", type=_positive_ints, default=None, help="thread counts, e.g. 1,2 (default: all cores)"
    )
    bench.add_argument(
        "--repeats", type=_positive_int, default=None, help="timed runs per measurement (default 20; quick 5)"
    )
    bench.add_argument("--warmup", type=_positive_int, default=None, help="untimed warm-up runs (default 3; quick 1)")
    bench.add_argument(
        "--quick",
        action="store_true",
        help="few repeats; the baseline and the fastest variants for this CPU (see --list)",
    )
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
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"deitlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
