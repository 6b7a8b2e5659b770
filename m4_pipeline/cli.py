"""The ``m4`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .errors import BuildError
from .recipe import RecipeError, load_recipe
from .resources import recipes_dir

DEMO_RECIPE = recipes_dir() / "demo.yaml"


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
    from .adapters import get_adapter, sources

    for name in sources():
        cls = get_adapter(name)
        print(f"{name:<22} {cls.family:<3} {cls.description}")
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
        overwrite=args.overwrite,
        progress=not args.quiet,
        verbose=args.verbose,
    )
    _print_manifest(manifest, Path(args.out))
    return 0


def write_recipe_miniatures(recipe, out: Path) -> list[Path]:
    """The miniature of every source (and decontamination benchmark) a recipe names, each in
    its published layout at ``out/<path>``; folders that exist are left as they are."""
    from .adapters import get_adapter
    from .dedup.evalsets import write_miniature as write_benchmark

    written = []
    for src in recipe.sources:
        root = out / src.path
        if not root.exists():
            print(f"writing miniature {src.adapter} ({get_adapter(src.adapter).family}) -> {root}")
            get_adapter(src.adapter).write_miniature(root)
            written.append(root)
    for name, rel in recipe.dedup.decontaminate.items():
        root = out / rel
        if not root.exists():
            print(f"writing miniature benchmark {name} -> {root}")
            write_benchmark(name, root)
            written.append(root)
    return written


def cmd_miniature(args) -> int:
    recipe = load_recipe(args.recipe)
    started = time.time()
    written = write_recipe_miniatures(recipe, Path(args.out))
    print(f"{len(written)} miniature(s) written to {args.out} in {time.time() - started:.1f} s")
    return 0


def cmd_new_source(args) -> int:
    from . import scaffold

    sample = Path(args.sample)
    records = scaffold.read_sample(sample, args.format, args.records)
    if args.python:
        folder = Path(args.dir) if args.dir else Path(__file__).resolve().parent / "adapters"
        path = folder / f"{args.name}.py"
        if path.exists() and not args.force:
            raise FileExistsError(f"{path} exists (pass --force to replace it)")
        path.write_text(scaffold.python_module(args.name, args.family, args.format, sample, records))
    else:
        spec = scaffold.declaration(args.name, args.family, args.format, sample, records)
        folder = Path(args.dir) if args.dir else recipes_dir() / "sources"
        path = scaffold.write_declaration(spec, folder, overwrite=args.force)
    print(f"wrote {path} ({len(records)} sample record(s) as its miniature)")
    block = scaffold.recipe_block(args.name, args.name)
    if args.recipe:
        scaffold.add_to_recipe(Path(args.recipe), block)
        print(f"added source {args.name!r} to {args.recipe}")
    else:
        print("recipe block:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in block.items()))
    if args.dir and not args.python:
        print(f"(outside the shipped sources: set M4_SOURCE_PATH={folder} so that m4 finds it)")
    return 0


def cmd_demo(args) -> int:
    from .executor import run_build

    recipe = load_recipe(args.recipe)
    out = Path(args.out)
    sources = out / "sources"
    started = time.time()
    write_recipe_miniatures(recipe, sources)
    print(f"miniature corpus ready in {time.time() - started:.1f} s")
    manifest = run_build(
        recipe,
        sources,
        out / "shards",
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        overwrite=args.overwrite,
        progress=not args.quiet,
        verbose=args.verbose,
    )
    _print_manifest(manifest, out / "shards")
    args.tokenizer, args.tolerance, args.scale = "auto", 0.1, 1.0
    print(f"report: {write_audit_report(str(out / 'shards'), str(out / 'report'), args)}")
    return 0


def cmd_validate(args) -> int:
    """Exit 0: every sample valid and the folder matches its index; 1: problems (listed); 2: not
    a shard folder at all."""
    from .inspect_shards import validate_shards

    report = validate_shards(args.shards, progress=not args.quiet)
    for p in report["problems"][: args.max_problems]:
        print(p)
    more = len(report["problems"]) - args.max_problems
    if more > 0:
        print(f"... and {more} more problem(s)")
    print(f"{report['samples']} samples in {report['shards']} shard(s): {len(report['problems'])} problem(s)")
    return 1 if report["problems"] else 0


def _token_counter(choice: str):
    """(count_tokens, name): the trainer check's Qwen2 tokenizer, or the labelled approximation."""
    if choice == "approx":
        return None, None
    try:
        from .train.tokens import QWEN_TOKENIZER_NAME, count_qwen_tokens

        count_qwen_tokens("probe")
        return count_qwen_tokens, QWEN_TOKENIZER_NAME
    except Exception as err:  # the train extra is optional
        if choice == "qwen2":
            raise
        logging.getLogger(__name__).warning("token counts approximate: %s", err)
        return None, None


def distributed_stats(shards: str, args):
    """Statistics computed per shard on Ray and merged on the driver, plus the run's logs."""
    from .audit import Stats, fold_run_logs, load_targets
    from .audit.stats import compute_stats
    from .executor import map_shards
    from .inspect_shards import shard_paths

    targets = load_targets()
    count_tokens, tokenizer = _token_counter(args.tokenizer)

    def per_shard(path: Path) -> dict:
        return compute_stats([path], targets=targets, count_tokens=count_tokens, tokenizer_name=tokenizer).to_dict()

    parts = map_shards(per_shard, shard_paths(shards), ray_address=args.ray_address, num_cpus=args.num_cpus,
                       progress=not args.quiet, verbose=args.verbose)  # fmt: skip
    total = Stats.from_dict(parts[0], targets=targets)
    for part in parts[1:]:
        total = total.merge(Stats.from_dict(part, targets=targets))
    if Path(shards).is_dir():
        total = fold_run_logs(total, shards)
    return total, targets


def cmd_stats(args) -> int:
    from .audit import compare, format_comparison, write_stats

    stats, targets = distributed_stats(args.shards, args)
    data = stats.to_dict()
    if args.out:
        print(f"wrote {write_stats(stats, args.out)}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        names = ["samples", "media/s", "turns/s", "chars/s", "tokens/s"]
        cols = ["samples", "media_per_sample", "turns_per_sample", "text_chars_per_sample", "text_tokens_per_sample"]
        print(f"{'dataset':<28}" + "".join(f"{n:>11}" for n in names))
        for name, d in sorted(data["per_dataset"].items()):
            print(f"{name:<28}" + "".join(f"{d[c]:>11}" for c in cols))
        print(f"total {data['samples']} samples; media kinds {data['media_kinds']}; tokens: {data['tokenizer']}")
    if args.compare:
        rows = compare(stats, targets, tolerance=args.tolerance, scale=args.scale)
        print(format_comparison(rows, only_produced=True))
    return 0


def write_audit_report(shards: str, out: str, args) -> Path:
    from .audit import compare
    from .audit.report import write_report

    stats, targets = distributed_stats(shards, args)
    rows = compare(stats, targets, tolerance=args.tolerance, scale=args.scale)
    return write_report(shards, out, stats, rows)


def cmd_report(args) -> int:
    print(f"report: {write_audit_report(args.shards, args.out, args)}")
    return 0


def _data_roots(items: list[str]) -> dict[str, str]:
    """``NAME=DIR`` pairs (the roots video references resolve under)."""
    out = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--data-root {item!r}: expected NAME=DIR")
        out[name] = folder
    return out


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
        data_roots=_data_roots(args.data_root),
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

    recipe = load_recipe(recipes_dir() / AUDIT_RECIPES[args.kind])
    out = Path(args.out)
    manifest = run_build(recipe, args.release, out, ray_address=args.ray_address, num_cpus=args.num_cpus,
                         overwrite=args.overwrite, progress=not args.quiet, verbose=args.verbose,
                         extra_outputs=("report",))  # fmt: skip
    _print_manifest(manifest, out)
    rows = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    dups = [json.loads(line) for line in (out / "duplicates.jsonl").read_text().splitlines()]
    print(f"\n{len(rows)} sample(s) rejected, {len(dups)} duplicate(s):")
    for r in rows:
        print(f"  {r['key']}  [{r['reason']}]  {r['source_file']} {r['locator']}: {r['detail']}")
    for d in dups:
        print(f"  {d['key']}  [duplicate of {d['duplicate_of']}]")
    print(f"report: {write_audit_report(str(out), str(out / 'report'), args)}")
    return 0


def cmd_export(args) -> int:
    from . import export

    progress, cluster = not args.quiet, {"ray_address": args.ray_address, "num_cpus": args.num_cpus}
    if args.format == "llava-json":
        report = export.export_llava_json(args.shards, args.out, progress=progress, cluster=cluster)
    elif args.format == "st-align":
        stages = {}
        for item in args.stage:
            name, _, n = item.partition("=")
            if not name or not n.isdigit():
                raise ValueError(f"--stage {item!r}: expected SOURCE=N (N a stage number)")
            stages[name] = int(n)
        report = export.export_st_align(args.shards, args.out, stages=stages, relative=args.relative_paths,
                                        progress=progress, data_roots=_data_roots(args.data_root),
                                        cluster=cluster)  # fmt: skip
    else:
        report = export.export_parquet(args.shards, args.out, progress=progress, cluster=cluster)
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
    p.add_argument("--overwrite", action="store_true", help="build into a shards folder that holds other files")
    ray_opts(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build", help="build a recipe's sources into WebDataset shards")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--sources", required=True, help="folder holding each source at its recipe 'path'")
    p.add_argument("--out", required=True, help="output folder for shards, index, manifest, quarantine")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build in --out (same recipe)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="build into a folder that holds files this tool did not write (they are kept, never deleted)",
    )
    p.add_argument("--max-workers", type=int, default=None, help="cap on parallel tasks (default: all CPUs)")
    ray_opts(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("validate", help="read shards back and validate every sample")
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--max-problems", type=int, default=50, help="problems to print")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate)

    def audit_opts(p):
        p.add_argument(
            "--tokenizer",
            choices=["auto", "qwen2", "approx"],
            default="auto",
            help="token counts: the trainer check's Qwen2 tokenizer (auto: when installed) or approx",
        )
        p.add_argument("--tolerance", type=float, default=0.1, help="comparison: allowed relative deviation")
        p.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="comparison: expected fraction of the published counts (e.g. for a subsample)",
        )
        ray_opts(p)

    p = sub.add_parser("stats", help="statistics of built shards (computed per shard on Ray)")
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", help="also write the statistics to a .json or .parquet file")
    p.add_argument("--compare", action="store_true", help="compare with the published counts in manifests/")
    audit_opts(p)
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
    p.add_argument("--data-root", action="append", default=[], metavar="NAME=DIR",
                   help="a source's video folder, for video references (default: the build's manifest)")  # fmt: skip
    p.add_argument("--loader-only", action="store_true", help="skip the model pass (inputs and token checks)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_train)

    p = sub.add_parser("audit", help="validate, dedup and re-shard a released dataset (M4-Instruct or ST-Align)")
    p.add_argument("release", help="the release's folder, in its published layout")
    p.add_argument("--kind", choices=sorted(AUDIT_RECIPES), required=True, help="m4: M4-Instruct-Data, st: ST-Align")
    p.add_argument("--out", required=True, help="output folder (shards, manifest, quarantine table)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that holds other files (kept)")
    audit_opts(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("export", help="export shards for a trainer: llava-json, st-align or parquet")
    p.add_argument("format", choices=["llava-json", "st-align", "parquet"])
    p.add_argument("shards", help="a shard folder or one .tar")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--stage", action="append", default=[], metavar="SOURCE=N",
                   help="st-align: the training stage of a source (default 3)")  # fmt: skip
    p.add_argument("--relative-paths", action="store_true",
                   help="st-align: json_path / data_folder relative to the stage YAML (default: absolute)")  # fmt: skip
    p.add_argument("--data-root", action="append", default=[], metavar="NAME=DIR",
                   help="st-align: a source's video folder for references (default: from the manifest)")  # fmt: skip
    ray_opts(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="a self-contained HTML report with a sample browser")
    p.add_argument("shards", help="a shard folder")
    p.add_argument("--out", required=True, help="report folder (index.html inside)")
    audit_opts(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("miniature", help="write the miniature of every source a recipe names, in its real layout")
    p.add_argument("recipe", help="recipe YAML file (or a shipped recipe's name)")
    p.add_argument("--out", required=True, help="folder to write the sources into (each at its recipe 'path')")
    p.set_defaults(func=cmd_miniature)

    p = sub.add_parser("new-source", help="start a new source from a sample of its annotation file")
    p.add_argument("name", help="the source's name (letters, digits, '_', '.', '-')")
    p.add_argument("--family", choices=["m4", "st"], required=True, help="M4-Instruct or ST-Align records")
    p.add_argument("--format", required=True, help="the annotation format: jsonl, json, json_dict, csv, tsv, parquet")
    p.add_argument("--sample", required=True, help="a sample of the annotation file (its first records are used)")
    p.add_argument("--records", type=int, default=4, help="records of the sample kept as the miniature")
    p.add_argument("--python", action="store_true", help="write an adapter module instead of a declaration")
    p.add_argument("--dir", help="folder to write into (default: the shipped recipes/sources or adapters)")
    p.add_argument("--recipe", help="also add the source to this recipe file (created if missing)")
    p.add_argument("--force", action="store_true", help="replace an existing declaration or module")
    p.set_defaults(func=cmd_new_source)

    p = sub.add_parser("sources", help="list the available source adapters")
    p.set_defaults(func=cmd_sources)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 1 the data has problems (validate, check-train); 2 a user, input or
    environment error, told in one line without a traceback (``-v`` shows it); 130 interrupted."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (RecipeError, BuildError, OSError, ValueError) as err:
        if args.verbose:
            logging.getLogger(__name__).exception("details")
        print(f"m4: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("m4: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split("\n")[:3]).strip() or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
