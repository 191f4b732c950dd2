"""Site kit subcommands: `mcrad kit export|run|list|collect` (and `summary`, the site run's rule step)."""
from __future__ import annotations

import logging
from pathlib import Path


def cmd_export(a) -> None:
    import yaml

    from mcrad.kit.export import export_kit

    record = export_kit(yaml.safe_load(Path(a.config).read_text()), Path(a.out))
    print(f"kit: {Path(a.out).resolve()} (study {record['study']}, kit sha256 {record['kit_sha256'][:16]}, "
          f"{len(record['bundles'])} bundles)")


def cmd_run(a) -> None:
    from mcrad.kit.run import run_kit

    logging.basicConfig(level=logging.INFO, format="mcrad kit: %(message)s")
    workdir = Path(a.workdir) if a.workdir else Path.cwd() / "mcrad-site"
    record = run_kit(Path(a.kit), Path(a.sheet), a.centre, Path(a.out), workdir, a.cores, a.aggregate_only, a.profile)
    print(f"return: {Path(a.out).resolve()} (centre {record['centre']}, {record['stage']}, "
          f"{'aggregates only' if record['aggregate_only'] else 'per-patient predictions'}); "
          f"check it with `mcrad kit list {a.out}` before sending it")


def cmd_list(a) -> None:
    from mcrad.errors import McradError
    from mcrad.kit.returns import list_return

    members = list_return(Path(a.archive))
    print(members.to_string(index=False))
    bad = members[members["problems"] != ""]
    if len(bad):
        raise McradError(f"{len(bad)} member(s) must not leave the site: do not send this return.")


def cmd_collect(a) -> None:
    import yaml

    from mcrad.kit.collect import collect
    from mcrad.kit.run import run_snakemake
    from mcrad.paths import Paths

    raw = yaml.safe_load(Path(a.config).read_text())
    summary = collect(raw, [Path(r) for r in a.returns])
    print(summary.to_string(index=False))
    if not a.no_report:
        from mcrad.config import load_config

        report = Paths.from_config(load_config(raw)).report
        run_snakemake(Path(a.config).resolve(), Path.cwd(), a.cores, a.profile, [report])
        print(f"report: {report.resolve()}")


def cmd_summary(a) -> None:
    from mcrad.kit.summary import summary_stage

    summary_stage(a.raw, a.harmonised, Path(a.qc), Path(a.quarantine), a.metrics, a.predictions,
                  Path(a.out_features), Path(a.out_qc), Path(a.out_report), a.title)


def register(sub) -> None:
    kit = sub.add_parser("kit", help="site kit: run the locked study at a hospital, collect what comes back")
    ks = kit.add_subparsers(dest="kit_command", required=True)

    s = ks.add_parser("export", help="after stage 1: write the site kit (locked bundles, settings, lock, manifest)")
    s.add_argument("--config", required=True, help="the study's config file")
    s.add_argument("--out", required=True, help="KIT.tar.gz")
    s.set_defaults(func=cmd_export)

    s = ks.add_parser("run", help="at a site: verify the kit, run the locked study on a sheet, pack a return")
    s.add_argument("kit", help="KIT.tar.gz")
    s.add_argument("--sheet", required=True, help="the centre's cohort sheet (TSV; `mcrad discover` writes one)")
    s.add_argument("--centre", required=True, help="the centre's name (its rows in the sheet)")
    s.add_argument("--out", required=True, help="RETURN.tar.gz")
    s.add_argument("--workdir", default=None, help="where the run works (default ./mcrad-site); images stay here")
    s.add_argument("--cores", type=int, default=1)
    s.add_argument("--profile", default=None, help="a Snakemake profile (e.g. profiles/slurm)")
    s.add_argument("--aggregate-only", action="store_true", help="return metrics and calibration tables, no "
                   "per-patient predictions")
    s.set_defaults(func=cmd_run)

    s = ks.add_parser("list", help="list every member of a return and what, if anything, must not leave the site")
    s.add_argument("archive", help="RETURN.tar.gz")
    s.set_defaults(func=cmd_list)

    s = ks.add_parser("collect", help="verify returns, merge them into the study's validation tables, rebuild the "
                      "report")
    s.add_argument("--config", required=True, help="the study's config file")
    s.add_argument("returns", nargs="+", help="RETURN.tar.gz files")
    s.add_argument("--cores", type=int, default=1)
    s.add_argument("--profile", default=None)
    s.add_argument("--no-report", action="store_true", help="merge only; do not rebuild the report")
    s.set_defaults(func=cmd_collect)

    s = ks.add_parser("summary", help="(a site run's rule) feature and QC summaries and the site report")
    for name in ("raw", "harmonised", "metrics", "predictions"):
        s.add_argument(f"--{name}", nargs="*", default=[])
    for name in ("qc", "quarantine", "out-features", "out-qc", "out-report", "title"):
        s.add_argument(f"--{name}", required=True)
    s.set_defaults(func=cmd_summary)
