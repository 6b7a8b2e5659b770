"""The ``m4`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .recipe import RecipeError, load_recipe

DEMO_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"


def _print_manifest(manifest: dict, out: Path) -> None:
    print(f"\nrecipe {manifest['recipe']} v{manifest['recipe_version']} -> {out}")
    header = f"{'source':<12}{'read':>7}{'written':>9}{'dupes':>7}  quarantined (by reason)"
    print(header)
    print("-" * len(header))
    for name, s in manifest["sources"].items():
        reasons = ", ".join(f"{k}={v}" for k, v in s["quarantined"].items()) or "-"
        print(f"{name:<12}{s['read']:>7}{s['written']:>9}{s['duplicates']:>7}  {reasons}")
    t = manifest["totals"]
    print("-" * len(header))
    print(f"{'total':<12}{t['read']:>7}{t['written']:>9}{t['duplicates']:>7}  {t['quarantined']}")
    print(f"{len(manifest['shards'])} shard(s); {manifest['wall_seconds']:.1f} s; "
          f"{manifest['samples_per_second']} samples/s")


def cmd_sources(args) -> int:
    from .adapters import ADAPTERS

    for name, cls in sorted(ADAPTERS.items()):
        print(f"{name:<10} {cls.family:<3} {cls.description}")
    return 0


def cmd_build(args) -> int:
    from .executor import run_build

    recipe = load_recipe(args.recipe)
    manifest = run_build(recipe, args.sources, args.out, ray_address=args.ray_address,
                         num_cpus=args.num_cpus, progress=not args.quiet)
    _print_manifest(manifest, Path(args.out))
    return 0


def cmd_demo(args) -> int:
    from .adapters import get_adapter, write_miniature
    from .executor import run_build

    recipe = load_recipe(args.recipe)
    out = Path(args.out)
    sources = out / "sources"
    started = time.time()
    for src in recipe.sources:
        root = sources / src.path
        if not root.exists():
            print(f"writing miniature {src.adapter} ({get_adapter(src.adapter).family}) -> {root}")
            write_miniature(src.adapter, root)
    print(f"miniature corpus ready in {time.time() - started:.1f} s")
    manifest = run_build(recipe, sources, out / "shards", ray_address=args.ray_address,
                         num_cpus=args.num_cpus, progress=not args.quiet)
    _print_manifest(manifest, out / "shards")
    return 0


def cmd_validate(args) -> int:
    from .inspect_shards import validate_shards

    report = validate_shards(args.shards)
    for p in report["problems"][: args.max_problems]:
        print(p)
    print(f"{report['samples']} samples in {report['shards']} shard(s): {len(report['problems'])} problem(s)")
    return 1 if report["problems"] else 0


def cmd_stats(args) -> int:
    from .inspect_shards import shard_stats

    stats = shard_stats(args.shards)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    cols = ["samples", "media_per_sample", "placeholders_per_sample", "turns_per_sample", "text_chars_per_sample"]
    names = ["samples", "media/s", "placeh./s", "turns/s", "chars/s"]
    print(f"{'dataset':<28}" + "".join(f"{n:>11}" for n in names))
    for name, d in stats["datasets"].items():
        print(f"{name:<28}" + "".join(f"{d[c]:>11}" for c in cols))
    print(f"total {stats['samples']} samples; media kinds {stats['media_kinds']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m4", description=__doc__ + " Build interleaved multimodal datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def ray_opts(p):
        p.add_argument("--ray-address", default=None,
                       help="join an existing Ray cluster (default: $RAY_ADDRESS, else start a local one)")
        p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", help="write the miniature corpus of every source, then build it")
    p.add_argument("--out", default="demo_out", help="output folder (sources/ and shards/ inside)")
    p.add_argument("--recipe", default=str(DEMO_RECIPE), help="recipe to build (default: recipes/demo.yaml)")
    ray_opts(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build", help="build a recipe's sources into WebDataset shards")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--sources", required=True, help="folder holding each source at its recipe 'path'")
    p.add_argument("--out", required=True, help="output folder for shards, index, manifest, quarantine")
    ray_opts(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("validate", help="read shards back and validate every sample")
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--max-problems", type=int, default=50, help="problems to print")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stats", help="statistics of built shards")
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("sources", help="list the available source adapters")
    p.set_defaults(func=cmd_sources)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (RecipeError, FileNotFoundError, ValueError) as err:
        print(f"m4: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
