"""The ``m4`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .executor import ResumeError
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
    print(
        f"{len(manifest['shards'])} shard(s); {manifest['wall_seconds']:.1f} s; "
        f"{manifest['samples_per_second']} samples/s"
    )


def cmd_sources(args) -> int:
    from .adapters import ADAPTERS

    for name, cls in sorted(ADAPTERS.items()):
        print(f"{name:<10} {cls.family:<3} {cls.description}")
    return 0


def cmd_build(args) -> int:
    from .executor import run_build

    recipe = load_recipe(args.recipe)
    manifest = run_build(
        recipe,
        args.sources,
        args.out,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        max_workers=args.max_workers,
        resume=args.resume,
        progress=not args.quiet,
    )
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
    manifest = run_build(
        recipe,
        sources,
        out / "shards",
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        progress=not args.quiet,
    )
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
    cols = [
        "samples",
        "media_per_sample",
        "placeholders_per_sample",
        "turns_per_sample",
        "text_chars_per_sample",
    ]
    names = ["samples", "media/s", "placeh./s", "turns/s", "chars/s"]
    print(f"{'dataset':<28}" + "".join(f"{n:>11}" for n in names))
    for name, d in stats["datasets"].items():
        print(f"{name:<28}" + "".join(f"{d[c]:>11}" for c in cols))
    print(f"total {stats['samples']} samples; media kinds {stats['media_kinds']}")
    return 0


def cmd_check_train(args) -> int:
    try:
        from .train import CheckOptions, format_report, run_check
        from .train.tokens import TokenizerSetupError
    except ImportError as err:
        hint = "pip install -e '.[train]'"
        print(f"m4: error: check-train needs the train extra ({err}): {hint}", file=sys.stderr)
        return 2
    options = CheckOptions(
        max_length=args.max_length,
        batch_size=args.batch_size,
        workers=args.workers,
        arch=args.arch,
        model=args.model,
        st_model=args.st_model,
        device=args.device,
        dtype=args.dtype,
        run_model=not args.loader_only,
        limit=args.limit,
    )
    try:
        report = run_check(args.shards, options)
    except TokenizerSetupError as err:
        print(f"m4: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["ok"] else 1


AUDIT_RECIPES = {"m4": "audit_m4.yaml", "st": "audit_st.yaml"}


def cmd_audit(args) -> int:
    """Validate, deduplicate and re-shard a released dataset; name every rejected sample."""
    from .executor import run_build

    recipe = load_recipe(DEMO_RECIPE.parent / AUDIT_RECIPES[args.kind])
    out = Path(args.out)
    manifest = run_build(recipe, args.release, out, ray_address=args.ray_address, num_cpus=args.num_cpus,
                         progress=not args.quiet)  # fmt: skip
    _print_manifest(manifest, out)
    rows = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    dups = [json.loads(line) for line in (out / "duplicates.jsonl").read_text().splitlines()]
    print(f"\n{len(rows)} sample(s) rejected, {len(dups)} duplicate(s):")
    for r in rows:
        print(f"  {r['key']}  [{r['reason']}]  {r['source_file']} {r['locator']}: {r['detail']}")
    for d in dups:
        print(f"  {d['key']}  [duplicate of {d['duplicate_of']}]")
    return 0


def cmd_export(args) -> int:
    from . import export

    if args.format == "llava-json":
        report = export.export_llava_json(args.shards, args.out)
    elif args.format == "st-align":
        stages = dict(item.split("=", 1) for item in args.stage)
        report = export.export_st_align(args.shards, args.out, stages={k: int(v) for k, v in stages.items()})
    else:
        report = export.export_parquet(args.shards, args.out)
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m4", description=__doc__ + " Build interleaved multimodal datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def ray_opts(p):
        p.add_argument(
            "--ray-address",
            default=None,
            help="join an existing Ray cluster (default: $RAY_ADDRESS, else start a local one)",
        )
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
    p.add_argument("--resume", action="store_true", help="continue an interrupted build in --out (same recipe)")
    p.add_argument("--max-workers", type=int, default=None, help="cap on parallel tasks (default: all CPUs)")
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

    p = sub.add_parser("check-train", help="feed shards to the LLaVA model classes: inputs, loss, backward")
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--model", type=Path, help="local llava-hf Llava checkpoint folder (M4)")
    p.add_argument("--st-model", type=Path, help="local llava-hf LlavaOnevision checkpoint folder (ST)")
    p.add_argument(
        "--arch",
        choices=["tiny", "full"],
        default="tiny",
        help="built-in random-weight model without --model / --st-model: tiny (CPU-fast, 28 px) or full "
        "(the published 0.5B sizes, 384 px)",
    )
    p.add_argument("--max-length", type=int, default=32768, help="the trainer's max sequence length")
    p.add_argument("--batch-size", type=int, default=2, help="samples per forward/backward batch")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default="cpu", help="torch device for the model pass, e.g. cuda")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--limit", type=int, help="check only the first N samples")
    p.add_argument("--loader-only", action="store_true", help="skip the model pass (inputs and token checks)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_train)

    p = sub.add_parser("audit", help="validate, dedup and re-shard a released dataset (M4-Instruct or ST-Align)")
    p.add_argument("release", help="the release's folder, in its published layout")
    p.add_argument("--kind", choices=sorted(AUDIT_RECIPES), required=True, help="m4: M4-Instruct-Data, st: ST-Align")
    p.add_argument("--out", required=True, help="output folder (shards, manifest, quarantine table)")
    ray_opts(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("export", help="export shards for a trainer: llava-json, st-align or parquet")
    p.add_argument("format", choices=["llava-json", "st-align", "parquet"])
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--stage", action="append", default=[], metavar="SOURCE=N",
                   help="st-align: the training stage of a source (default 3)")  # fmt: skip
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sources", help="list the available source adapters")
    p.set_defaults(func=cmd_sources)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (RecipeError, FileNotFoundError, ValueError, ResumeError) as err:
        print(f"m4: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
