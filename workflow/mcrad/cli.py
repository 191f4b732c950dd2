"""`mcrad` command line: one subcommand per workflow step (what the Snakemake rules call), usable alone."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from mcrad import __version__
from mcrad.errors import McradError


def _json(text: str) -> dict:
    return json.loads(text)


def _write_tsv(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False)


def _read_tsv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "centre": str}, keep_default_na=False,
                       na_values=[""])


def cmd_synth(a: argparse.Namespace) -> None:
    from mcrad import synth

    synth.make_cohort(_json(a.options), a.seed, a.out_dir)


def cmd_check(a: argparse.Namespace) -> None:
    from mcrad.cohort import load_sheet
    from mcrad.config import load_config_file

    cfg = load_config_file(a.configfile)
    if cfg["cohort"]["sheet"] is None:
        print("config OK; cohort: synthetic demo cohort")
        return
    df = load_sheet(cfg["cohort"]["sheet"], cfg)
    print(f"config OK; cohort sheet OK: {len(df)} patients in {df['centre'].nunique()} centres")


def cmd_cohort_tables(a: argparse.Namespace) -> None:
    from mcrad.cohort import centre_table, load_sheet

    cfg = _json(a.config)
    df = load_sheet(a.sheet, cfg)
    for centre, out in zip(a.centres, a.out, strict=True):
        _write_tsv(centre_table(df, cfg, centre), out)


def _paths(root: str):
    from mcrad.config import Paths

    return Paths(Path(root))


def cmd_ingest(a: argparse.Namespace) -> None:
    from mcrad.cohort import load_sheet
    from mcrad.ingest import ingest_shard

    cfg = _json(a.config)
    sheet = load_sheet(a.sheet, cfg, check_files=False)  # a missing file quarantines one case, not the study
    _write_tsv(ingest_shard(sheet, Path(a.sheet), a.patients.split(","), _paths(a.root), a.strict), a.out)


def cmd_case_stage(a: argparse.Namespace) -> None:
    from mcrad.cases import read_shard

    rows = read_shard(a.shard)
    opts, paths = _json(a.options), _paths(a.root)
    if a.command == "preprocess":
        from mcrad.preprocess import preprocess_shard as run
        out = run(rows, opts, paths, a.strict)
    elif a.command == "segment":
        from mcrad.segment import segment_shard as run
        out = run(rows, opts, paths, a.strict)
    else:
        from mcrad.features import features_shard
        out = features_shard(rows, opts, _json(a.segment_options), paths, a.strict)
    _write_tsv(out, a.out)


def cmd_gather(a: argparse.Namespace) -> None:
    from mcrad.cases import read_shard
    from mcrad.features import gather

    ok, quarantined = gather([read_shard(p) for p in a.shards])
    _write_tsv(ok, a.out)
    _write_tsv(quarantined, a.quarantine)


def cmd_concat(a: argparse.Namespace) -> None:
    _write_tsv(pd.concat([_read_tsv(p) for p in a.inputs], ignore_index=True), a.out)


def cmd_harmonise_fit(a: argparse.Namespace) -> None:
    from mcrad import harmonise

    cfg = _json(a.config)
    features = pd.concat([_read_tsv(p) for p in a.features], ignore_index=True)
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    model, out, excluded = harmonise.fit_training(features, cohort, cfg["design"]["train"], cfg["harmonise"],
                                                  cfg["cohort"]["clinical"])
    harmonise.save(model, [c for c in out.columns if c not in ("patient_id", "centre")], a.model)
    _write_tsv(out, a.out)
    _write_tsv(excluded, a.excluded)


def cmd_harmonise_apply(a: argparse.Namespace) -> None:
    from mcrad import harmonise

    model, keep = harmonise.load(a.model)
    _write_tsv(harmonise.apply(model, _read_tsv(a.features), keep, _read_tsv(a.cohort)), a.out)


def cmd_harmonise_diagnostics(a: argparse.Namespace) -> None:
    from mcrad import harmonise

    cfg = _json(a.config)
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True).set_index("patient_id")
    labels = {ep["name"]: pd.to_numeric(cohort[ep["column"]]) for ep in cfg["endpoints"]}
    summary, kw, pca = harmonise.diagnostics(_read_tsv(a.raw), _read_tsv(a.harmonised), labels,
                                             cfg["design"]["train"], cfg["study"]["seed"])
    Path(a.summary).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    _write_tsv(kw, a.kruskal)
    _write_tsv(pca, a.pca)


def cmd_harmonise(a: argparse.Namespace) -> None:
    """Standalone ComBat on one table (rows = samples), like neuroCombat/sva but with numpy 2 and a reference."""
    from mcrad.harmonise import ComBat

    df = pd.read_csv(a.features, sep="\t" if str(a.features).endswith((".tsv", ".txt")) else ",")
    if a.batch_col not in df.columns:
        raise McradError(f"{a.features}: no batch column {a.batch_col!r}; columns are {list(df.columns)[:10]}...")
    covariates = [c for c in a.covariates.split(",") if c] if a.covariates else []
    forced = set(a.categorical.split(",")) if a.categorical else set()
    categorical = tuple(c for c in covariates
                        if c in forced or not pd.api.types.is_numeric_dtype(df[c]))
    continuous = tuple(c for c in covariates if c not in categorical)
    ids = [c for c in (a.id_col,) if c and c in df.columns]
    features = [c for c in df.columns if c not in {a.batch_col, *covariates, *ids}]
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise McradError(f"{a.features}: column(s) {non_numeric[:5]} are not numeric. Fix: name them with "
                         "--covariates or --id-col, or remove them.")
    batch = df[a.batch_col].astype(str)
    model = ComBat(ref_batch=a.ref_batch, parametric=not a.nonparametric, eb=not a.no_eb, mean_only=a.mean_only,
                   min_batch_size=a.min_batch_size, categorical=categorical, continuous=continuous)
    cov = df[covariates] if covariates else None
    out = model.fit(df[features], batch, cov).transform(df[features], batch, cov)
    result = pd.concat([df[ids + [a.batch_col] + covariates], out], axis=1)
    _write_tsv(result, a.out)
    if a.model:
        model.to_json(a.model)


def cmd_train(a: argparse.Namespace) -> None:
    from mcrad import model as m

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    features = _read_tsv(a.features)
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    radiomics_columns = [c for c in features.columns if c not in m.META]
    df = m.training_table(features, cohort, endpoint["column"])
    clinical = cfg["cohort"]["clinical"]
    fitted, internal = m.train_endpoint(df, radiomics_columns, clinical, endpoint["column"], cfg["model"],
                                        cfg["study"]["seed"])
    y = df[endpoint["column"]]
    training = {"centres": cfg["design"]["train"], "n": int(len(y)), "events": int(y.sum()),
                "seed": cfg["study"]["seed"], "options": cfg["model"]}
    for name, entry in fitted.items():
        m.save_bundle(Path(a.out_dir) / name, name, entry, radiomics_columns, clinical, endpoint, training)
    _write_tsv(internal, a.internal)


def cmd_validate(a: argparse.Namespace) -> None:
    from mcrad import validate as v
    from mcrad.model import MODELS, load_bundle

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    label, alpha = endpoint["column"], cfg["validate"]["alpha"]
    cohorts = [_read_tsv(p) for p in a.cohort]
    thresholds = {name: load_bundle(Path(a.models_dir) / name)[1]["threshold"] for name in MODELS}

    def score(feature_files: list[str]) -> pd.DataFrame:
        scored = [v.score_bundle(Path(a.models_dir) / name, _read_tsv(f), cohort, label).assign(stage="external")
                  for name in MODELS for f, cohort in zip(feature_files, cohorts, strict=True)]
        columns = ["patient_id", "centre", "stage", "model", "label", "score"]
        return pd.concat(scored, ignore_index=True)[columns] if scored else pd.DataFrame(columns=columns)

    predictions = pd.concat([_read_tsv(a.internal), score(a.features)], ignore_index=True)
    _write_tsv(predictions, a.predictions)
    _write_tsv(v.summarise(predictions, thresholds, alpha), a.metrics)
    _write_tsv(v.paired_comparisons(predictions), a.paired)
    if a.comparison:
        external = predictions[predictions["stage"] == "external"]
        both = pd.concat([v.summarise(external, thresholds, alpha).assign(harmonisation="combat"),
                          v.summarise(score(a.raw_features), thresholds, alpha).assign(harmonisation="none")],
                         ignore_index=True)
        _write_tsv(both.sort_values(["model", "centre", "harmonisation"], kind="stable"), a.comparison[0])


def cmd_report(a: argparse.Namespace) -> None:
    from mcrad.report import write_report

    write_report(_json(a.config), Path(a.root), Path(a.out), Path(a.figures) if a.figures else None)
    print(f"report: {Path(a.out).resolve()}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcrad", description=__doc__)
    p.add_argument("--version", action="version", version=f"mcrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="make the synthetic multicentre demo cohort")
    s.add_argument("--options", required=True, help="JSON: the config's cohort.synthetic section")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("check", help="validate a config file and its cohort sheet (nothing runs)")
    s.add_argument("configfile")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("cohort-tables", help="split the cohort sheet into per-centre clinical tables")
    s.add_argument("--sheet", required=True)
    s.add_argument("--config", required=True, help="JSON: validated config (cohort, design, endpoints)")
    s.add_argument("--centres", nargs="+", required=True)
    s.add_argument("--out", nargs="+", required=True)
    s.set_defaults(func=cmd_cohort_tables)

    s = sub.add_parser("ingest", help="read, check and canonicalise the images and masks of a shard")
    s.add_argument("--sheet", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--patients", required=True, help="comma-separated patient ids")
    s.add_argument("--root", required=True, help="study results folder")
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_ingest)

    for name in ("preprocess", "segment", "features"):
        s = sub.add_parser(name, help=f"{name} the cases of a shard")
        s.add_argument("--shard", required=True, help="the previous stage's shard table")
        s.add_argument("--options", required=True, help=f"JSON: the config's {name} section")
        if name == "features":
            s.add_argument("--segment-options", required=True)
        s.add_argument("--root", required=True)
        s.add_argument("--strict", action="store_true")
        s.add_argument("--out", required=True)
        s.set_defaults(func=cmd_case_stage)

    s = sub.add_parser("gather", help="features of the cases that came through, and the quarantine list")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--quarantine", required=True)
    s.set_defaults(func=cmd_gather)

    s = sub.add_parser("concat", help="concatenate TSV tables")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_concat)

    s = sub.add_parser("harmonise", help="ComBat-harmonise one feature table (rows = samples)")
    s.add_argument("--features", required=True, help="TSV (or CSV) with one row per sample")
    s.add_argument("--batch-col", required=True)
    s.add_argument("--covariates", default="", help="comma-separated columns whose effect is preserved")
    s.add_argument("--categorical", default="", help="covariates to one-hot encode even if numeric")
    s.add_argument("--id-col", default="patient_id", help="identifier column passed through, if present")
    s.add_argument("--nonparametric", action="store_true")
    s.add_argument("--no-eb", action="store_true", help="no empirical Bayes shrinkage")
    s.add_argument("--mean-only", action="store_true")
    s.add_argument("--ref-batch", default=None, help="reference batch, left unchanged")
    s.add_argument("--min-batch-size", type=int, default=2)
    s.add_argument("--model", default=None, help="also save the fitted harmoniser (JSON)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_harmonise)

    s = sub.add_parser("harmonise-diagnostics", help="centre identifiability, Kruskal-Wallis, PCA before/after")
    s.add_argument("--config", required=True, help="JSON: study, design and endpoints sections")
    s.add_argument("--raw", required=True)
    s.add_argument("--harmonised", required=True)
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables")
    s.add_argument("--summary", required=True)
    s.add_argument("--kruskal", required=True)
    s.add_argument("--pca", required=True)
    s.set_defaults(func=cmd_harmonise_diagnostics)

    s = sub.add_parser("harmonise-fit", help="fit ComBat on the training centre(s)")
    s.add_argument("--features", nargs="+", required=True)
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables (covariates)")
    s.add_argument("--config", required=True, help="JSON: cohort, design and harmonise sections")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--excluded", required=True)
    s.set_defaults(func=cmd_harmonise_fit)

    s = sub.add_parser("harmonise-apply", help="map a centre onto the training reference")
    s.add_argument("--model", required=True)
    s.add_argument("--features", required=True)
    s.add_argument("--cohort", required=True, help="that centre's cohort table (covariates only are read)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_harmonise_apply)

    s = sub.add_parser("train", help="stage 1: train and lock the models of one endpoint")
    s.add_argument("--config", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--features", required=True)
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--internal", required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("validate", help="stage 2: score external centres with the locked bundles")
    s.add_argument("--config", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True)
    s.add_argument("--internal", required=True)
    s.add_argument("--features", nargs="*", default=[])
    s.add_argument("--cohort", nargs="*", default=[])
    s.add_argument("--raw-features", nargs="*", default=[], help="the same centres without ComBat")
    s.add_argument("--comparison", nargs="*", default=[], help="write external metrics with and without ComBat here")
    s.add_argument("--metrics", required=True)
    s.add_argument("--predictions", required=True)
    s.add_argument("--paired", required=True, help="paired DeLong tests between models")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("report", help="write the multicentre validation report")
    s.add_argument("--config", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--figures", default=None, help="also write each figure as a PNG here")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except McradError as exc:
        print(f"mcrad: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
