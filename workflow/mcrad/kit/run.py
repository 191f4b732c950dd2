"""`mcrad kit run` at a site: unpack and verify the kit, check this installation against its software lock, run
the study's own Snakemake DAG in locked mode (ingest -> preprocess -> segment -> features -> harmonise apply ->
locked prediction -> stage-2 metrics with labels, stage-3 scoring without), and pack the return."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from mcrad.errors import McradError
from mcrad.kit import lock, manifest
from mcrad.kit.layout import KitPaths
from mcrad.paths import Paths

log = logging.getLogger(__name__)
SNAKEFILE = Path(__file__).resolve().parents[3] / "Snakefile"


def open_kit(archive: Path, workdir: Path) -> KitPaths:
    """Unpack the kit into workdir/kit and verify every member against its manifest (a modified kit is refused)."""
    kit = KitPaths(workdir / "kit")
    if kit.root.exists():  # a previous run's copy: replaced, so nothing of another kit survives in it
        import shutil

        shutil.rmtree(kit.root)
    manifest.unpack(archive, kit.root, "kit")
    manifest.verify(kit.root, f"kit {archive}")
    return kit


def has_labels(sheet: Path, centre: str, cfg: dict) -> bool:
    """Whether every endpoint's outcome columns are present and filled for the centre's rows (stage 2), or
    absent altogether (stage 3); a sheet with some labels only is a sheet error, as in the study."""
    from mcrad.endpoints import endpoints

    df = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    columns = [c for ep in endpoints(cfg) for c in ep.outcome_columns]
    present = [c for c in columns if c in df.columns and (df.loc[df["centre"] == centre, c] != "").any()]
    return bool(present)


def site_config(kit: KitPaths, sheet: Path, centre: str, workdir: Path) -> dict:
    """The site's config: the kit's template with this site's sheet, centre, results folder and kit folder."""
    cfg = yaml.safe_load(kit.config_template.read_text())
    features = cfg["features"]
    features["params"] = str(kit.root / features["params"])
    features["sequence_params"] = {s: str(kit.root / f) for s, f in features["sequence_params"].items()}
    cfg["study"]["results"] = str(workdir / "results")
    cfg["cohort"]["sheet"] = str(sheet.resolve())
    cfg["kit"] = {"locked": True, "dir": str(kit.root)}
    stage = "external" if has_labels(sheet, centre, cfg) else "prospective"
    cfg["design"] = {"train": [], "external": [centre] if stage == "external" else [], "prospective":
                     [centre] if stage == "prospective" else []}
    return cfg


def run_snakemake(config_file: Path, workdir: Path, cores: int, profile: str | None, targets: list[Path] = ()
                  ) -> None:
    """The study's own DAG (profiles apply) in `workdir`: all of it, or what `targets` need."""
    # targets first: --configfile takes every argument after it
    cmd = [sys.executable, "-m", "snakemake", *map(str, targets), "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--cores", str(cores), *(["--profile", profile] if profile else []),
           "--configfile", str(config_file)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=workdir, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise McradError(f"snakemake failed (exit {proc.returncode}); the job logs are under "
                         f"{workdir / 'results'}. Fix what they name and rerun the same command: finished work "
                         "is kept.")


def run_kit(archive: Path, sheet: Path, centre: str, out: Path, workdir: Path, cores: int = 1,
            aggregate_only: bool = False, profile: str | None = None) -> dict:
    """Run the kit on one centre's sheet and write the return to `out`; return the return's record."""
    from mcrad.kit.returns import pack_return
    from mcrad.plan import prepare_study

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    kit = open_kit(Path(archive), workdir)
    trained = json.loads(kit.record.read_text())["train"]
    if centre in trained:  # ComBat would take the site for its reference batch and leave its features unmapped
        raise McradError(f"centre {centre!r} is the name of a training centre of this study ({trained}). Fix: name "
                         "your centre differently (--centre and the sheet's centre column).")
    lock.check(json.loads(kit.lock.read_text()))
    raw = site_config(kit, Path(sheet), centre, workdir)
    cfg, _ = prepare_study(raw)  # a bad sheet stops here with every problem listed, before any job
    config_file = workdir / "site_config.yaml"
    config_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_snakemake(config_file, workdir, cores, profile)
    return pack_return(cfg, kit, Paths.from_config(cfg), centre, Path(out), aggregate_only)
