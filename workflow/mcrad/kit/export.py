"""`mcrad kit export`: after stage 1, everything stage 2 needs at a site and nothing else: the locked bundles with
their manifests, the harmoniser's training reference (aggregates only: ComBat's reference means, pooled variances
and covariate effects), Nyul landmarks where used, the pyradiomics parameter files, a site config template with the
study's preprocessing, segmentation, feature, harmonisation and validation settings, the software lock, a README
for the site's IT, and a manifest with the sha256 of every file. No training patient's features, predictions or id.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mcrad import __version__
from mcrad.errors import McradError
from mcrad.files import file_sha256, write_json
from mcrad.kit import KIT_FORMAT, lock, manifest
from mcrad.kit.layout import KitPaths
from mcrad.paths import BUNDLE_FILES, Paths

# study settings a site run needs (design, kit and cohort.sheet are the site's; deep and PACS do not travel)
TEMPLATE_SECTIONS = ("endpoints", "ingest", "preprocess", "segment", "features", "harmonise", "model", "validate",
                     "execution")


def training_levels(cfg: dict, paths: Paths) -> dict[str, list[str]]:
    """Categorical clinical columns without `levels`: the levels of the training centre(s), which the locked
    one-hot encodings were fitted on (a site checks its sheet against them, as the study checks external centres)."""
    specs = [c for c in cfg["cohort"]["clinical"] if c["type"] == "categorical" and "levels" not in c]
    if not specs:
        return {}
    tables = [pd.read_csv(paths.cohort_table(c), sep="\t", dtype=str, keep_default_na=False)
              for c in cfg["design"]["train"]]
    df = pd.concat(tables, ignore_index=True)
    return {s["name"]: sorted(set(df[s["name"]]) - {""} - set(s["missing"])) for s in specs}


def site_template(cfg: dict, levels: dict[str, list[str]], params: dict[str, str]) -> dict[str, Any]:
    """The site's config: the study's settings, with parameter files inside the kit; design, kit.dir and the
    sheet are filled in by `mcrad kit run`."""
    clinical = [{**c, "levels": levels[c["name"]]} if c["name"] in levels else c for c in cfg["cohort"]["clinical"]]
    features = {**cfg["features"], "params": params[cfg["features"]["params"]],
                "sequence_params": {s: params[f] for s, f in cfg["features"]["sequence_params"].items()}}
    return {"study": {k: cfg["study"][k] for k in ("name", "seed", "strict")},
            "cohort": {"sheet": None, "clinical": clinical, "sequences": cfg["cohort"]["sequences"]},
            "design": {"train": [], "external": []},
            "kit": {"locked": True, "dir": None},
            **{s: cfg[s] for s in TEMPLATE_SECTIONS}, "features": features}


def readme(cfg: dict, record: dict) -> str:
    """The README a site's IT reads first (docs/site_kit.md has the full page)."""
    eps = ", ".join(f"{e['name']} (column {e['column']})" for e in cfg["endpoints"])
    clinical = ", ".join(c["name"] for c in cfg["cohort"]["clinical"])
    return f"""# mcrad site kit: study {cfg['study']['name']}

This kit runs the locked models of study `{cfg['study']['name']}` (trained at {', '.join(record['train'])}) on your
centre's images, on your machine. Images, masks and identifiers never leave it: the return holds tables only.

1. Install mcrad {__version__} with its pinned environment (`make demo` sets it up, or
   `pip install -r requirements.lock`); `mcrad kit run` refuses versions that change features.
2. Write a cohort sheet (TSV): patient_id (a pseudonym), centre, image, mask, {clinical}, and the outcome
   column(s) {eps} when your ethics approval lets you validate (leave them out to score only).
   `mcrad discover` writes one from DICOM folders.
3. Run: `mcrad kit run KIT.tar.gz --sheet SITE.tsv --centre NAME --out RETURN.tar.gz [--workdir DIR] [--cores N]
   [--aggregate-only] [--profile PROFILE]`. Check `DIR/results/{cfg['study']['name']}/site/report.html`.
4. Send RETURN.tar.gz back. `mcrad kit list RETURN.tar.gz` shows every member before you do.
"""


def export_kit(raw_cfg: dict, out: Path) -> dict:
    """Write the kit to `out` (a .tar.gz); return its record (kit.json)."""
    from mcrad.model.bundle import verify_bundle
    from mcrad.plan import prepare_study

    cfg, plan = prepare_study(raw_cfg)
    if cfg["kit"]["locked"]:
        raise McradError("this config is a site run (kit.locked); export a kit from the study that trained.")
    if plan.deep or plan.autoseg:
        raise McradError("the site kit does not carry deep networks yet (deep.activate or deep.autoseg.activate is "
                         "on). Fix: export from a study with deep.activate: false and deep.autoseg.activate: false.")
    paths = Paths.from_config(cfg)
    with tempfile.TemporaryDirectory(prefix="mcrad-kit-") as tmp:
        kit = KitPaths(Path(tmp) / "kit")
        bundles = {}
        for ep in plan.endpoints:
            for model in plan.models_of(ep.name):
                src = paths.bundle(ep.name, model)
                try:
                    bundles[f"{ep.name}/{model}"] = verify_bundle(src)["bundle_sha256"]
                except McradError as exc:
                    raise McradError(f"{exc} Stage 1 must be complete before a kit is exported: run "
                                     "`snakemake --cores all --configfile STUDY.yaml` first.") from None
                kit.bundle(ep.name, model).mkdir(parents=True)
                for f in BUNDLE_FILES:
                    shutil.copyfile(src / f, kit.bundle(ep.name, model) / f)
        for src, dst in [(paths.harmoniser, kit.harmoniser)] + ([(paths.nyul_standard, kit.nyul_standard)]
                                                                 if plan.nyul else []):
            if not src.is_file():
                raise McradError(f"{src} is missing: stage 1 is not complete. Fix: run the study first.")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        params = {}
        for f in dict.fromkeys([cfg["features"]["params"], *cfg["features"]["sequence_params"].values()]):
            name = Path(f).name
            if not Path(f).is_file():
                raise McradError(f"pyradiomics parameter file {f} not found. Fix: run `mcrad kit export` from the "
                                 "folder the study runs in (config paths are relative to it).")
            if kit.params(name).exists():
                raise McradError(f"two pyradiomics parameter files are named {name}. Fix: rename one.")
            kit.params(name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, kit.params(name))
            params[f] = kit.params(name).relative_to(kit.root).as_posix()
        record = {"format": KIT_FORMAT, "study": cfg["study"]["name"], "mcrad": __version__,
                  "train": plan.train, "endpoints": [ep.name for ep in plan.endpoints], "bundles": bundles,
                  "harmoniser_sha256": file_sha256(paths.harmoniser)}
        kit.config_template.parent.mkdir(parents=True, exist_ok=True)
        kit.config_template.write_text(yaml.safe_dump(site_template(cfg, training_levels(cfg, paths), params),
                                                      sort_keys=False))
        write_json(lock.current(), kit.lock)
        write_json(record, kit.record)
        kit.readme.write_text(readme(cfg, record))
        files = manifest.build(kit.root)
        manifest.pack(kit.root, Path(out))
    return {**record, "kit_sha256": manifest.digest(files)}
