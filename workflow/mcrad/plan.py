"""Plan the DAG from a validated config: which cases, which shards, which centres play which stage.

Runs when Snakemake parses the workflow, so a bad cohort sheet stops the study before any job runs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mcrad import synth
from mcrad.cohort import load_sheet, make_shards, resolve_path
from mcrad.config import Paths
from mcrad.errors import ConfigError


@dataclass(frozen=True)
class StudyPlan:
    sheet: Path
    synthetic: bool
    index: pd.DataFrame            # patient_id, centre of every case
    shards: dict[str, list[str]]   # shard id -> patient ids
    train: list[str]
    external: list[str]
    prospective: list[str]         # held back: scored by the locked models, labels only later (stage 3)
    case_files: dict[str, list[str]]  # patient id -> image and mask paths (user sheets; empty for synthetic)

    @property
    def centres(self) -> list[str]:
        return self.train + self.external + self.prospective

    def shards_of(self, centre: str) -> list[str]:
        return [s for s in self.shards if s.rsplit(".", 1)[0] == centre]


def plan_study(cfg: dict) -> StudyPlan:
    paths = Paths.from_config(cfg)
    design = cfg["design"]
    if cfg["cohort"]["sheet"] is None:
        index = synth.planned_cases(cfg["cohort"]["synthetic"])
        present = set(index["centre"])
        unknown = [c for c in design["train"] + design["external"] + design["prospective"] if c not in present]
        if unknown:
            raise ConfigError(f"design names centre(s) {unknown}, but the synthetic cohort has centres "
                              f"{sorted(present)}. Fix: change design or cohort.synthetic.centres.")
        idle = sorted(present - set(design["train"]) - set(design["external"]) - set(design["prospective"]))
        if idle:
            raise ConfigError(f"synthetic centre(s) {idle} have no role in the design. Fix: add them to "
                              "design.external, or lower cohort.synthetic.centres.")
        sheet, case_files = paths.synth_sheet, {}
    else:
        sheet = Path(cfg["cohort"]["sheet"])
        df = load_sheet(sheet, cfg)
        index = df[["patient_id", "centre"]]
        case_files = {r.patient_id: [str(resolve_path(r.image, sheet)), str(resolve_path(r.mask, sheet))]
                      for r in df.itertuples()}
    return StudyPlan(sheet=sheet, synthetic=cfg["cohort"]["sheet"] is None, index=index,
                     shards=make_shards(index, cfg["execution"]["shard_size"]), train=list(design["train"]),
                     external=list(design["external"]), prospective=list(design["prospective"]), case_files=case_files)


def options(cfg: dict, *sections: str) -> str:
    """The named config sections as compact JSON: what a rule passes to its `mcrad` step (and reruns on)."""
    return json.dumps({s: cfg[s] for s in sections} if len(sections) > 1 else cfg[sections[0]],
                      sort_keys=True, separators=(",", ":"))


def code_hash(*modules: str) -> str:
    """sha256 of the named mcrad modules (plus the CLI that calls them). Passed to a rule as a param so that
    Snakemake reruns the rule when the package code it runs changes, not only when the rule text does."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in sorted({*modules, "cli"}):
        h.update((package / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]
