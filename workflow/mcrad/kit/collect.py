"""`mcrad kit collect`: returns from the sites into the study. Each return's manifest is verified, its members
checked, and its bundle hashes compared with this study's locked bundles (a return from another study's kit is
refused). Site predictions join the study's own predictions, so metrics per centre, pooled and paired comparisons
come from the same code as stage 2; a site that returned aggregates only keeps its own metrics and is marked
unavailable in the pooled rows. Then the report is rebuilt with a section on the sites."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from mcrad.errors import McradError
from mcrad.files import read_table, write_table
from mcrad.kit.layout import ReturnPaths
from mcrad.kit.returns import open_return
from mcrad.paths import Paths


def study_bundles(plan, paths: Paths) -> tuple[dict[str, str], dict[str, dict[str, float | None]]]:
    """({endpoint/model: bundle_sha256}, {endpoint: {model: locked threshold}}) of this study's bundles."""
    from mcrad.model.bundle import load_meta

    hashes, thresholds = {}, {}
    for ep in plan.endpoints:
        thresholds[ep.name] = {}
        for model in plan.models_of(ep.name):
            try:
                meta, man = load_meta(paths.bundle(ep.name, model))
            except McradError as exc:
                raise McradError(f"{exc} Collect needs the study's locked bundles (stage 1).") from None
            hashes[f"{ep.name}/{model}"] = man["bundle_sha256"]
            thresholds[ep.name][model] = meta["threshold"]
    return hashes, thresholds


def check_origin(record: dict, archive: Path, study: str, bundles: dict[str, str]) -> None:
    """Refuse a return made with another study's kit, or with bundles that are not this study's."""
    if record["study"] != study or record["bundles"] != bundles:
        differ = sorted(k for k in set(bundles) | set(record["bundles"])
                        if bundles.get(k) != record["bundles"].get(k))
        raise McradError(f"return {archive} (centre {record['centre']}) was made with the kit of study "
                         f"{record['study']!r}, whose locked bundles differ from this study's {study!r} "
                         f"({', '.join(differ) or 'none'}); refused. Fix: ask the site to run the kit exported from "
                         "this study (`mcrad kit export`).")


def merge(ep, central: pd.DataFrame, sites: list[tuple[dict, Path]], thresholds: dict, alpha: float
          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(predictions, metrics, paired) of the study's centres and the sites'."""
    columns = ep.prediction_columns
    per_patient = [read_table(ReturnPaths(f).predictions(ep.name)) for r, f in sites
                   if r["stage"] == "external" and not r["aggregate_only"]]
    predictions = pd.concat([central, *per_patient], ignore_index=True)
    scored = ep.scored(predictions[columns])
    metrics, paired = ep.summarise(scored, thresholds, alpha), ep.paired(scored)
    site_centres = {r["centre"]: r for r, _ in sites}
    metrics["source"] = [("site-run" if c in site_centres else "central") if c != "pooled" else "pooled"
                         for c in metrics["centre"]]
    aggregate = [(r, f) for r, f in sites if r["stage"] == "external" and r["aggregate_only"]]
    if aggregate:
        names = ", ".join(r["centre"] for r, _ in aggregate)
        site_metrics = [read_table(ReturnPaths(f).metrics(ep.name)).assign(source="site-run, aggregates only")
                        for _, f in aggregate]
        unavailable = pd.DataFrame({"model": sorted(set(scored["model"])), "centre": "pooled (all sites)",
                                    "stage": "external", "source": "unavailable",
                                    "note": f"{names} returned aggregates only: no pooled estimate over every "
                                            "external centre"})
        metrics = pd.concat([metrics, *site_metrics, unavailable], ignore_index=True)
        paired = pd.concat([paired, *[read_table(ReturnPaths(f).paired(ep.name)) for _, f in aggregate]],
                           ignore_index=True)
    prospective = [read_table(ReturnPaths(f).predictions(ep.name)) for r, f in sites
                   if r["stage"] == "prospective" and ReturnPaths(f).predictions(ep.name).is_file()]
    return pd.concat([predictions, *prospective], ignore_index=True), metrics, paired


def shared(record: dict) -> str:
    if record["stage"] == "prospective":
        return "aggregates only (stage 3, no labels)" if record["aggregate_only"] else \
            "per-patient scores (stage 3, no labels)"
    return "metrics and calibration tables only" if record["aggregate_only"] else "per-patient predictions"


def collect(raw_cfg: dict, archives: list[Path]) -> pd.DataFrame:
    """Verify the returns, merge them into sites/ and return the per-centre summary (sites/sites.tsv)."""
    from mcrad.plan import prepare_study

    cfg, plan = prepare_study(raw_cfg)
    paths = Paths.from_config(cfg)
    bundles, thresholds = study_bundles(plan, paths)
    sites: list[tuple[dict, Path]] = []
    with tempfile.TemporaryDirectory(prefix="mcrad-collect-") as tmp:
        for k, archive in enumerate(archives):
            record, folder = open_return(Path(archive), Path(tmp) / str(k))
            check_origin(record, Path(archive), cfg["study"]["name"], bundles)
            centre = record["centre"]
            if centre in plan.centres or centre in {r["centre"] for r, _ in sites}:
                raise McradError(f"return {archive}: centre {centre!r} is already in the study or in another "
                                 "return. Fix: one return per centre, named apart from the study's own centres.")
            dest = paths.site_return(centre)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(folder, dest)
            sites.append((record, dest))
    for ep in plan.endpoints:
        central = read_table(paths.predictions(ep.name)) if paths.predictions(ep.name).is_file() else \
            pd.DataFrame(columns=ep.prediction_columns)
        predictions, metrics, paired = merge(ep, central, sites, thresholds[ep.name], cfg["validate"]["alpha"])
        write_table(predictions, paths.sites_predictions(ep.name))
        write_table(metrics, paths.sites_metrics(ep.name))
        write_table(paired, paths.sites_paired(ep.name))
    rows = [{"centre": c, "run": "central", "stage": stage, "shared": "everything (central)", "cases": int(n)}
            for stage, centres in (("training", plan.train), ("external", plan.external),
                                   ("prospective", plan.prospective))
            for c in centres for n in [(plan.index["centre"] == c).sum()]]
    rows += [{"centre": r["centre"], "run": "site-run", "stage": r["stage"], "shared": shared(r), "cases": r["cases"],
              "kit_sha256": r["kit_sha256"]} for r, _ in sites]
    summary = pd.DataFrame(rows)
    write_table(summary, paths.sites_summary)
    return summary
