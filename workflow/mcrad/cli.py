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
    from mcrad.cohort import centre_table, load_sheet, predictors_table

    cfg = _json(a.config)
    df = load_sheet(a.sheet, cfg)
    for centre, out in zip(a.centres, a.out, strict=True):
        _write_tsv(centre_table(df, cfg, centre), out)
    for centre, out in zip(a.centres if a.predictors else [], a.predictors, strict=True):
        _write_tsv(predictors_table(df, cfg, centre), out)


def _paths(root: str):
    from mcrad.config import Paths

    return Paths(Path(root))


def cmd_ingest(a: argparse.Namespace) -> None:
    from mcrad.cohort import load_sheet
    from mcrad.ingest import ingest_shard

    cfg = _json(a.config)
    sheet = load_sheet(a.sheet, cfg, check_files=False)  # a missing file quarantines one case, not the study
    _write_tsv(ingest_shard(sheet, Path(a.sheet), a.patients.split(","), _paths(a.root), a.strict, cfg["ingest"],
                            cfg["cohort"]["sequences"]), a.out)


def cmd_dicom2nifti(a: argparse.Namespace) -> None:
    from mcrad.ingest import dicom_to_nifti

    if (a.rtstruct is None) != (a.out_mask is None):
        raise McradError("give both --rtstruct and --out-mask, or neither")
    rtstruct, out_mask = (Path(a.rtstruct), Path(a.out_mask)) if a.rtstruct else (None, None)
    for warning in dicom_to_nifti(Path(a.series), rtstruct, a.roi, Path(a.out_image), out_mask):
        print(f"mcrad: warning: {warning}", file=sys.stderr)
    print(f"wrote {a.out_image}" + (f" and {a.out_mask}" if out_mask else ""))


def cmd_nyul_fit(a: argparse.Namespace) -> None:
    from mcrad.cases import read_shard
    from mcrad.preprocess import nyul_fit_study

    rows = pd.concat([read_shard(f) for f in a.shards], ignore_index=True)
    fit = nyul_fit_study(rows, _json(a.options), _paths(a.root))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(fit, indent=1) + "\n")


def cmd_case_stage(a: argparse.Namespace) -> None:
    from mcrad.cases import read_shard

    rows = read_shard(a.shard)
    opts, paths = _json(a.options), _paths(a.root)
    sequences = a.sequences.split(",") if getattr(a, "sequences", "") else []
    if a.command == "preprocess":
        from mcrad.preprocess import preprocess_shard as run
        out = run(rows, opts, paths, a.strict, sequences, a.seed)
    elif a.command == "segment":
        from mcrad.segment import segment_shard as run
        out = run(rows, opts, paths, a.strict)
    else:
        from mcrad.features import features_shard
        out = features_shard(rows, opts, _json(a.segment_options), paths, a.strict, sequences, a.auto_masks)
    _write_tsv(out, a.out)


def cmd_gather(a: argparse.Namespace) -> None:
    from mcrad.cases import read_shard
    from mcrad.features import gather

    ok, quarantined, flags = gather([read_shard(p) for p in a.shards])
    _write_tsv(ok, a.out)
    _write_tsv(quarantined, a.quarantine)
    if a.flags:
        _write_tsv(flags, a.flags)


def cmd_robustness(a: argparse.Namespace) -> None:
    from mcrad.features import robustness_study

    features = pd.concat([_read_tsv(p) for p in a.features], ignore_index=True)
    _write_tsv(robustness_study(features, _json(a.options), _json(a.segment_options), _paths(a.root), a.seed,
                                a.sequences.split(",") if a.sequences else []), a.out)


def cmd_extract(a: argparse.Namespace) -> None:
    from mcrad.features import extract_single

    extract_single(a.image, a.mask, a.params, a.prefix).to_csv(a.out, index=False)


def cmd_ibsi_report(a: argparse.Namespace) -> None:
    from mcrad.features import ibsi_report

    Path(a.out).write_text(ibsi_report(a.phantom, a.params))


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
    # the outcome-signal check (AUC of the 0/1 label or event before/after ComBat); not for class labels
    labels = {ep["name"]: pd.to_numeric(cohort[ep["column"]]) for ep in cfg["endpoints"]
              if ep["type"] != "multiclass"}
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
    if a.robustness:  # features.robustness: drop contour-sensitive features before any model sees them
        robustness = _read_tsv(a.robustness)
        dropped = set(robustness.loc[~robustness["kept"].astype(bool), "feature"])
        radiomics_columns = [c for c in radiomics_columns if c not in dropped]
    multiclass = endpoint["type"] == "multiclass"
    df = m.training_table(features, cohort, endpoint["column"], numeric=not multiclass)
    clinical = cfg["cohort"]["clinical"]
    if endpoint["type"] == "survival":
        fitted, internal = m.train_survival(df, radiomics_columns, clinical, endpoint["time"], endpoint["column"],
                                            cfg["model"], cfg["study"]["seed"])
    elif multiclass:
        fitted, internal = m.train_multiclass(df, radiomics_columns, clinical, endpoint["column"],
                                              endpoint["classes"], cfg["model"], cfg["study"]["seed"])
    else:
        fitted, internal = m.train_endpoint(df, radiomics_columns, clinical, endpoint["column"], cfg["model"],
                                            cfg["study"]["seed"])
    y = df[endpoint["column"]]
    training = {"centres": cfg["design"]["train"], "n": int(len(y)), "seed": cfg["study"]["seed"],
                "options": cfg["model"]}
    if multiclass:
        training["per_class"] = internal.drop_duplicates("patient_id")["label"].value_counts().reindex(
            endpoint["classes"]).astype(int).to_dict()
    else:
        training["events"] = int(y.sum())
    for name, entry in fitted.items():
        m.save_bundle(Path(a.out_dir) / name, name, entry, radiomics_columns, clinical, endpoint, training)
    _write_tsv(internal, a.internal)


def cmd_train_fusion(a: argparse.Namespace) -> None:
    from mcrad import model as m

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    deep = pd.concat([_read_tsv(p) for p in a.deep], ignore_index=True)
    features = m.join_deep(_read_tsv(a.features), deep, "training centre deep features")
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    # the same radiomics columns as the locked radiomics model (after any robustness filter)
    radiomics_columns = m.load_bundle(Path(a.radiomics_bundle))[1]["features"]
    df = m.training_table(features, cohort, endpoint["column"])
    fitted, internal = m.train_fusion(df, radiomics_columns, endpoint["column"], cfg["model"], cfg["study"]["seed"])
    y = df[endpoint["column"]]
    training = {"centres": cfg["design"]["train"], "n": int(len(y)), "events": int(y.sum()),
                "seed": cfg["study"]["seed"], "options": cfg["model"]}
    for name, entry in fitted.items():
        m.save_bundle(Path(a.out_dir) / name, name, entry, entry["features"], [], endpoint, training)
    _write_tsv(internal, a.internal)


def cmd_explain(a: argparse.Namespace) -> None:
    from mcrad import model as m

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    df = m.training_table(_read_tsv(a.features), cohort, endpoint["column"], numeric=endpoint["type"] != "multiclass")
    classes = endpoint.get("classes")
    by_class = ["class"] if classes else []  # multi-class: SHAP of each class's linear predictor
    frames = []
    for name in ("radiomics", "nomogram"):
        try:
            bundle = m.load_bundle(Path(a.models_dir) / name)[0]
            frames.append(m.linear_shap(name, bundle, df, classes).assign(model=name))
        except ValueError as exc:  # exact linear SHAP only; a random forest gets its importances in meta.json
            print(f"explain: no SHAP values for {name}: {exc}")
    columns = ["model", *by_class, "patient_id", "feature", "value", "shap"]
    shap = pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else pd.DataFrame(columns=columns)
    _write_tsv(shap, a.out)
    summaries = [m.shap_summary(f).assign(model=f["model"].iloc[0]) for f in frames if len(f)]
    _write_tsv(pd.concat(summaries, ignore_index=True).reindex(columns=["model", *by_class, "feature", "mean_abs_shap"])
               if summaries else pd.DataFrame(columns=["model", *by_class, "feature", "mean_abs_shap"]), a.summary)


def cmd_validate(a: argparse.Namespace) -> None:
    from mcrad import validate as v
    from mcrad.model import MODELS, join_deep, load_bundle

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    alpha, survival = cfg["validate"]["alpha"], endpoint["type"] == "survival"
    multiclass = endpoint["type"] == "multiclass"
    cohorts = [_read_tsv(p) for p in a.cohort]
    models = a.models or list(MODELS)
    thresholds = {name: load_bundle(Path(a.models_dir) / name)[1]["threshold"] for name in models}
    columns = v.prediction_columns(endpoint)
    deep = [_read_tsv(p) for p in a.deep] if a.deep else [None] * len(cohorts)

    def score(feature_files: list[str]) -> pd.DataFrame:
        tables = [_read_tsv(f) if d is None else join_deep(_read_tsv(f), d, f"deep features for {f}")
                  for f, d in zip(feature_files, deep, strict=True)]
        scored = [v.score_bundle(Path(a.models_dir) / name, t, cohort, endpoint).assign(stage="external")
                  for name in models for t, cohort in zip(tables, cohorts, strict=True)]
        return pd.concat(scored, ignore_index=True)[columns] if scored else pd.DataFrame(columns=columns)

    internal = pd.concat([_read_tsv(p) for p in a.internal], ignore_index=True)
    predictions = pd.concat([internal, score(a.features)], ignore_index=True)
    if cfg["validate"].get("reader") and endpoint["type"] == "binary" and cohorts:  # a radiologist's read, compared
        reads = [v.reader_predictions(c, endpoint, cfg["validate"]["reader"]) for c in cohorts]
        predictions = pd.concat([predictions, *(r.assign(stage="external")[columns] for r in reads)],
                                ignore_index=True)
        thresholds["reader"] = cfg["validate"]["reader_threshold"]
    _write_tsv(predictions, a.predictions)

    def summarise(pred: pd.DataFrame) -> pd.DataFrame:  # survival: C-index, locked risk groups, td-AUC
        if survival:
            return v.summarise_survival(pred, thresholds, alpha, endpoint["times"])
        if multiclass:
            return v.summarise_multiclass(pred, endpoint["classes"], alpha, endpoint["ordinal"])
        return v.summarise(pred, thresholds, alpha)

    _write_tsv(summarise(predictions), a.metrics)
    # paired tests between models on the same patients: DeLong (AUC), C-index (survival), macro AUC (multi-class)
    if survival:
        paired = v.paired_concordance(predictions)
    elif multiclass:
        paired = v.paired_multiclass(predictions, endpoint["classes"])
    else:
        paired = v.paired_comparisons(predictions)
    _write_tsv(paired, a.paired)
    if a.comparison:
        external = predictions[predictions["stage"] == "external"]
        both = pd.concat([summarise(external).assign(harmonisation="combat"),
                          summarise(score(a.raw_features)).assign(harmonisation="none")], ignore_index=True)
        _write_tsv(both.sort_values(["model", "centre", "harmonisation"], kind="stable"), a.comparison[0])


def _deep_opts(a: argparse.Namespace) -> dict:
    # crops reaching outside the preprocessed image are filled with its lowest intensity (air)
    return {**_json(a.options), "fill_value": float(_json(a.preprocess)["intensity_clip"][0])}


def cmd_deep_train(a: argparse.Namespace) -> None:
    from mcrad import deep

    opts = _deep_opts(a)
    deep.setup_determinism(a.seed, a.threads or opts["threads"])
    device = deep.select_device(opts["device"])
    paths = _paths(a.root)
    rows = pd.concat([_read_tsv(p) for p in a.shards], ignore_index=True)
    cohort = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    items, missing = deep.attach_labels(deep.case_items(rows, paths), cohort, a.column)
    if missing:
        print(f"deep: {len(missing)} case(s) without a {a.column} label left out of training: {missing}")
    net, table, curves, summary = deep.train_endpoint(items, opts, a.seed, device)
    print(f"deep: {summary}")
    deep.save_network(net, opts, summary, Path(a.out_dir))
    _write_tsv(curves, a.curves)
    for centre, out, cam in zip(a.centres, a.out, a.gradcam, strict=True):
        _write_tsv(table[table["centre"] == centre], out)
        deep.write_gradcam(net, [it for it in items if it["centre"] == centre], opts, Path(cam), device)


def cmd_deep_score(a: argparse.Namespace) -> None:
    from mcrad import deep

    device = deep.select_device(_json(a.options)["device"])
    net, opts = deep.load_network(Path(a.model_dir), device)
    deep.setup_determinism(a.seed, a.threads or opts["threads"])
    items = deep.case_items(pd.concat([_read_tsv(p) for p in a.shards], ignore_index=True), _paths(a.root))
    _write_tsv(deep.score_items(net, items, opts, a.seed, device), a.out)
    deep.write_gradcam(net, items, opts, Path(a.gradcam), device)


def cmd_predict(a: argparse.Namespace) -> None:
    from mcrad.model import join_deep
    from mcrad.prospective import predict

    features = pd.concat([_read_tsv(p) for p in a.features], ignore_index=True)
    if a.deep:  # deep and fusion bundles read deep_score / deep_emb_* columns
        features = join_deep(features, pd.concat([_read_tsv(p) for p in a.deep], ignore_index=True))
    clinical = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True) if a.cohort else None
    _write_tsv(predict([Path(b) for b in a.bundle], features, clinical), a.out)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from mcrad.prospective import evaluate

    cfg = _json(a.config)
    endpoint = next(ep for ep in cfg["endpoints"] if ep["name"] == a.endpoint)
    outcomes = pd.concat([_read_tsv(p) for p in a.cohort], ignore_index=True)
    metrics, paired = evaluate(_read_tsv(a.predictions), outcomes, endpoint, cfg["validate"]["alpha"])
    _write_tsv(metrics, a.out)
    if a.paired:
        _write_tsv(paired, a.paired)


def cmd_autoseg_train(a: argparse.Namespace) -> None:
    import torch

    from mcrad import deep, segment

    opts = _json(a.options)
    deep.setup_determinism(a.seed, opts["threads"])
    device = deep.select_device(opts["device"])
    rows = pd.concat([_read_tsv(p) for p in a.shards], ignore_index=True)
    cases = [(pid, img, msk) for pid, _, img, msk in segment.autoseg_cases(rows, _paths(a.root))]
    net, losses = segment.train_autoseg(cases, opts, a.seed, device)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, out / "unet.pt")
    (out / "unet.json").write_text(json.dumps({"options": opts, "cases": len(cases), "losses": losses}, indent=1)
                                   + "\n")
    print(f"autoseg: UNet trained on {len(cases)} cases, final DiceCE loss {losses[-1]:.4f}")


def cmd_autoseg_predict(a: argparse.Namespace) -> None:
    import torch

    from mcrad import deep, segment

    meta = json.loads((Path(a.model_dir) / "unet.json").read_text())
    opts = meta["options"]
    deep.setup_determinism(a.seed, opts["threads"])
    device = deep.select_device(opts["device"])
    net = segment._unet(opts)
    net.load_state_dict(torch.load(Path(a.model_dir) / "unet.pt", map_location="cpu", weights_only=True))
    rows = pd.concat([_read_tsv(p) for p in a.shards], ignore_index=True)
    paths = _paths(a.root)
    _write_tsv(segment.autoseg_centre(net.to(device).eval(), segment.autoseg_cases(rows, paths), opts, paths,
                                      device, _json(a.segment_options)), a.out)


def cmd_autoseg_summary(a: argparse.Namespace) -> None:
    from mcrad import segment

    per_case = pd.concat([_read_tsv(p) for p in a.inputs], ignore_index=True)
    _write_tsv(segment.dice_summary(per_case, a.train, a.use_for_features), a.out)


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
    s.add_argument("--predictors", nargs="*", default=[], help="also the label-free tables of the same centres")
    s.set_defaults(func=cmd_cohort_tables)

    s = sub.add_parser("ingest", help="read, check and canonicalise the images and masks of a shard")
    s.add_argument("--sheet", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--patients", required=True, help="comma-separated patient ids")
    s.add_argument("--root", required=True, help="study results folder")
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("dicom2nifti", help="one DICOM series (+ RTSTRUCT ROI) to NIfTI, with the ingest checks")
    s.add_argument("--series", required=True, help="folder holding one DICOM image series")
    s.add_argument("--rtstruct", default=None, help="RTSTRUCT .dcm drawn on that series")
    s.add_argument("--roi", default="GTV.*", help="regex (full match, case-insensitive); matching ROIs are united")
    s.add_argument("--out-image", required=True)
    s.add_argument("--out-mask", default=None)
    s.set_defaults(func=cmd_dicom2nifti)

    s = sub.add_parser("nyul-fit", help="learn MR Nyul standard landmarks on the training centre's ingest shards")
    s.add_argument("--shards", nargs="+", required=True, help="the training centre(s)' ingest shard tables")
    s.add_argument("--options", required=True, help="JSON: the config's preprocess section")
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_nyul_fit)

    for name in ("preprocess", "segment", "features"):
        s = sub.add_parser(name, help=f"{name} the cases of a shard")
        s.add_argument("--shard", required=True, help="the previous stage's shard table")
        s.add_argument("--options", required=True, help=f"JSON: the config's {name} section")
        if name == "features":
            s.add_argument("--segment-options", required=True)
            s.add_argument("--auto-masks", action="store_true", help="ROIs from the auto-segmentation UNet's masks")
        if name in ("preprocess", "features"):
            s.add_argument("--sequences", default="", help="cohort.sequences, comma-separated (empty: one image)")
        if name == "preprocess":
            s.add_argument("--seed", type=int, required=True, help="study.seed (registration sampling)")
        s.add_argument("--root", required=True)
        s.add_argument("--strict", action="store_true")
        s.add_argument("--out", required=True)
        s.set_defaults(func=cmd_case_stage)

    s = sub.add_parser("gather", help="features of the cases that came through, and the quarantine list")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--quarantine", required=True)
    s.add_argument("--flags", default=None, help="write the per-case feature-class QC flags (NaN reasons) here")
    s.set_defaults(func=cmd_gather)

    s = sub.add_parser("extract", help="pyradiomics features of one image and mask (one-row CSV, plus qc_flags)")
    s.add_argument("--image", required=True)
    s.add_argument("--mask", required=True)
    s.add_argument("--params", required=True, help="pyradiomics parameter file (YAML)")
    s.add_argument("--prefix", default="CT_tumour", help="<sequence>_<roi> prefix of the feature names")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("ibsi-report", help="IBSI 1 digital phantom check; writes docs/ibsi_compliance.md")
    s.add_argument("--phantom", default="../shared/data/ibsi1_digital_phantom")
    s.add_argument("--params", default="config/radiomics/ibsi.yaml")
    s.add_argument("--out", default="docs/ibsi_compliance.md")
    s.set_defaults(func=cmd_ibsi_report)

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
    s.add_argument("--robustness", default=None, help="features/robustness.tsv: train only on features kept there")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("robustness", help="ICC(3,1) of each feature under ROI perturbations (training centre)")
    s.add_argument("--features", nargs="+", required=True, help="training centres' raw feature tables")
    s.add_argument("--options", required=True, help="JSON: the config's features section")
    s.add_argument("--segment-options", required=True)
    s.add_argument("--sequences", default="", help="cohort.sequences, comma-separated (empty: one image)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_robustness)

    s = sub.add_parser("train-fusion", help="stage 1: deep and fusion models of one binary endpoint")
    s.add_argument("--config", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--features", required=True, help="training-centre radiomics features")
    s.add_argument("--deep", nargs="+", required=True, help="training centres' deep feature tables")
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--radiomics-bundle", required=True, help="the locked radiomics bundle (its feature list)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--internal", required=True)
    s.set_defaults(func=cmd_train_fusion)

    s = sub.add_parser("explain", help="SHAP values of the locked radiomics and nomogram models on training data")
    s.add_argument("--config", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True)
    s.add_argument("--features", required=True, help="training-centre features")
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables")
    s.add_argument("--out", required=True, help="per-patient SHAP values (long table)")
    s.add_argument("--summary", required=True, help="per-feature mean |SHAP|")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("validate", help="stage 2: score external centres with the locked bundles")
    s.add_argument("--config", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True)
    s.add_argument("--models", nargs="*", default=[], help="model names (default: clinical radiomics nomogram)")
    s.add_argument("--internal", nargs="+", required=True, help="out-of-fold training predictions")
    s.add_argument("--features", nargs="*", default=[])
    s.add_argument("--cohort", nargs="*", default=[])
    s.add_argument("--deep", nargs="*", default=[], help="deep feature tables, one per --features table")
    s.add_argument("--raw-features", nargs="*", default=[], help="the same centres without ComBat")
    s.add_argument("--comparison", nargs="*", default=[], help="write external metrics with and without ComBat here")
    s.add_argument("--metrics", required=True)
    s.add_argument("--predictions", required=True)
    s.add_argument("--paired", required=True, help="paired DeLong tests between models")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("deep-train", help="deep stage: CV deep scores and the final network of one endpoint")
    s.add_argument("--options", required=True, help="JSON: the config's deep section")
    s.add_argument("--preprocess", required=True, help="JSON: the config's preprocess section")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: deep.threads)")
    s.add_argument("--column", required=True, help="endpoint column (0/1) of the cohort tables")
    s.add_argument("--shards", nargs="+", required=True, help="segment shard tables of the training centre(s)")
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--centres", nargs="+", required=True)
    s.add_argument("--out", nargs="+", required=True, help="one deep features table per --centres")
    s.add_argument("--gradcam", nargs="+", required=True, help="one Grad-CAM folder per --centres")
    s.add_argument("--out-dir", required=True, help="folder of the final network (network.pt, network.json)")
    s.add_argument("--curves", required=True)
    s.set_defaults(func=cmd_deep_train)

    s = sub.add_parser("deep-score", help="deep stage: score one centre with the final network")
    s.add_argument("--options", required=True, help="JSON: the config's deep section (device)")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: deep.threads)")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--gradcam", required=True)
    s.set_defaults(func=cmd_deep_score)

    s = sub.add_parser("predict", help="stage 3: score a new cohort with locked bundles, no labels needed")
    s.add_argument("--bundle", nargs="+", required=True, help="bundle folder(s) (models/<endpoint>/<model>)")
    s.add_argument("--features", nargs="+", required=True, help="feature table(s) of the new cohort")
    s.add_argument("--cohort", nargs="*", default=[], help="clinical table(s); only cohort.clinical columns are read")
    s.add_argument("--deep", nargs="*", default=[], help="deep feature table(s), for deep and fusion bundles")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("evaluate", help="stage 3: metrics of `mcrad predict` output once the labels arrive")
    s.add_argument("--config", required=True, help="JSON: endpoints and validate sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--predictions", required=True, help="`mcrad predict` output")
    s.add_argument("--cohort", nargs="+", required=True, help="table(s) with patient_id and the endpoint columns")
    s.add_argument("--out", required=True)
    s.add_argument("--paired", default=None, help="also write paired DeLong tests between models here")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("autoseg-train", help="auto-segmentation: train the UNet on the training centre's masks")
    s.add_argument("--options", required=True, help="JSON: the config's deep section (with autoseg)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--shards", nargs="+", required=True, help="preprocess shard tables of the training centre(s)")
    s.add_argument("--root", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_autoseg_train)

    s = sub.add_parser("autoseg-predict", help="auto-segmentation: masks and Dice of one centre's cases")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--segment-options", required=True, help="JSON: the config's segment section (peritumoral ring)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_autoseg_predict)

    s = sub.add_parser("autoseg-summary", help="auto-segmentation: Dice per centre")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--train", nargs="+", required=True, help="training centres")
    s.add_argument("--use-for-features", action="store_true", help="deep.autoseg.use_for_features is on")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_autoseg_summary)

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
