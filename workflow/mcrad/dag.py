"""The file lists the Snakemake rules name as inputs and outputs, beyond a single Paths entry: which shard tables
a centre has, which bundles an endpoint locks, which benchmark files the report sums. Kept here (not as
functions in the rule files) so that every rule file reads them the same way and they are unit-tested."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcrad.kit.layout import KitPaths
from mcrad.paths import Paths
from mcrad.plan import StudyPlan

# report figures shown under "Models" in Snakemake's report; the others under "Validation"
MODEL_FIGURES = ("nomogram", "shap")
# per-case stages: one benchmark file per shard
CASE_STAGES = ("ingest", "preprocess", "segment", "features")


def alternatives(values: list[str]) -> str:
    """A wildcard constraint that matches exactly these values (nothing when there are none)."""
    return "|".join(re.escape(v) for v in values) or "$^"


def job_environment(python: str, package_dir: Path) -> None:
    """Jobs run `python -m mcrad.cli`: this interpreter's (its folder first on PATH), or with `--sdm conda` the
    env's (envs/mcrad.yaml; activation puts it first), with the mcrad package read from workflow/ either way."""
    os.environ["PATH"] = os.pathsep.join(filter(None, [str(Path(python).parent), os.environ.get("PATH")]))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_dir), os.environ.get("PYTHONPATH")]))


@dataclass(frozen=True)
class StudyFiles:
    cfg: dict[str, Any]
    plan: StudyPlan
    paths: Paths

    def root(self, wildcards: Any = None) -> str:
        """--root of a job: the study's results folder. Jobs read case folders and shard tables under it through
        Paths, so every job needs the shared filesystem (as on SLURM)."""
        return str(self.paths.root)

    @property
    def locked(self) -> bool:
        """A site run from a kit (kit.locked): no training rule; bundles and references come from the kit."""
        return self.cfg["kit"]["locked"]

    @property
    def artefacts(self) -> Paths | KitPaths:
        """Where the locked artefacts (bundles, harmoniser, Nyul landmarks) are read: the study or the kit."""
        return KitPaths(Path(self.cfg["kit"]["dir"])) if self.locked else self.paths

    @property
    def targets(self) -> list[Path]:
        """What `snakemake` makes by default: the report (and deep outputs), or a site run's summaries."""
        if self.locked:
            return [self.paths.site_report]
        return [self.paths.report, *self.deep_outputs, *self.autoseg_outputs]

    @property
    def site_files(self) -> list[Path]:
        """After `mcrad kit collect`: the site-run centres' merged tables the report shows (none before)."""
        if not self.paths.sites_summary.is_file():
            return []
        return [self.paths.sites_summary] + [f(ep) for ep in self.endpoints
                                             for f in (self.paths.sites_metrics, self.paths.sites_paired)]

    @property
    def endpoints(self) -> list[str]:
        return [ep.name for ep in self.plan.endpoints]

    def shard_tables(self, stage: str, centres: list[str] | None = None) -> list[Path]:
        """The shard tables of a per-case stage, for some centres (default: all)."""
        return [self.paths.shard_table(stage, s) for c in (centres or self.plan.centres)
                for s in self.plan.shards_of(c)]

    def bundle_manifests(self, endpoint: str) -> list[Path]:
        return [self.artefacts.bundle_manifest(endpoint, m) for m in self.plan.models_of(endpoint)]

    def internal_of(self, endpoint: str) -> list[Path]:
        """Out-of-fold training predictions of every model of the endpoint (none in a site run: they are training
        patients' data and stay at the centre that trained)."""
        if self.locked:
            return []
        return [self.paths.internal_predictions(endpoint)] + (
            [self.paths.internal_predictions_fusion(endpoint)] if self.plan.fused(endpoint) else [])

    def deep_of(self, endpoint: str, centres: list[str]) -> list[Path]:
        """The deep stage's tables the endpoint's deep and fusion models read for these centres."""
        return [self.paths.deep_features(endpoint, c) for c in centres] if self.plan.fused(endpoint) else []

    def autoseg_of(self, shard: str) -> list[Path]:
        """The auto-segmentation output the features of `shard` wait for: none when off or for a training centre."""
        return [self.paths.autoseg_centre(self.plan.centre_of(shard))] if self.plan.autoseg_masks(shard) else []

    @property
    def deep_outputs(self) -> list[Path]:
        eps, centres = self.plan.deep_endpoints, self.plan.centres
        return ([self.paths.deep_features(ep, c) for ep in eps for c in centres]
                + [f(ep) for ep in eps for f in (self.paths.deep_curves, self.paths.deep_network_meta)]
                + [self.paths.deep_gradcam(ep, c) for ep in eps for c in centres])

    @property
    def autoseg_outputs(self) -> list[Path]:
        return [self.paths.autoseg_dice] if self.plan.autoseg else []

    @property
    def y_randomisation(self) -> list[str]:
        """The models guardrails.y_randomisation retrains on shuffled outcomes (none when it is off)."""
        opts = self.cfg["guardrails"]["y_randomisation"]
        return list(opts["models"]) if opts["activate"] else []

    @property
    def y_randomisation_outputs(self) -> list[Path]:
        """Every endpoint's gathered null and its summary (what the report reads)."""
        return [f(ep) for ep in self.endpoints if self.y_randomisation
                for f in (self.paths.y_randomisation, self.paths.y_randomisation_summary)]

    @property
    def compare(self) -> bool:
        """harmonise.compare: the external centres are scored with and without ComBat."""
        h = self.cfg["harmonise"]
        return h["activate"] and h["compare"] and bool(self.plan.external)

    @property
    def guardrail_outputs(self) -> list[Path]:
        """The guardrails' tables the report reads: sample size per model, volume confounding (when active)."""
        g, eps = self.cfg["guardrails"], self.endpoints
        files = [self.paths.sample_size(ep) for ep in eps] if g["sample_size"]["activate"] else []
        if g["volume_check"]["activate"]:
            files += [f(ep) for ep in eps for f in (self.paths.volume_confounding, self.paths.volume_correlation)]
        return files
    # ---- negative controls (negative_controls.activate) ----
    @property
    def controls_active(self) -> bool:
        return bool(self.cfg["negative_controls"]["activate"] and self.plan.external)

    @property
    def control_kinds(self) -> list[str]:
        return list(self.cfg["negative_controls"]["kinds"]) if self.controls_active else []

    @property
    def control_runs(self) -> list[str]:
        """What controls-validate runs per endpoint: each kind, and `none` (the real features) for the families
        the real models do not cover (every family but all)."""
        real = [] if self.cfg["negative_controls"]["families"] == ["all"] else ["none"]
        return self.control_kinds + real if self.controls_active else []

    @property
    def control_centres(self) -> list[str]:
        """The centres whose cases get controls: training and external (prospective ones are not validated)."""
        return self.plan.train + self.plan.external

    def control_shard_tables(self, kind: str, centre: str) -> list[Path]:
        return [self.paths.controls(kind).shard_table("features", s) for s in self.plan.shards_of(centre)]

    def control_features(self, control: str) -> list[Path]:
        """Raw feature tables of a control (or of the real cases, control none), training then external centres."""
        paths = self.paths if control == "none" else self.paths.controls(control)
        return [paths.raw_features(c) for c in self.control_centres]

    def control_tables(self, endpoint: str) -> list[Path]:
        return [self.paths.controls(c).negative_controls(endpoint) for c in self.control_runs]

    @property
    def negative_controls(self) -> list[Path]:
        """The report's negative-control inputs: the tables, and each kind's quarantine per centre."""
        if not self.controls_active:
            return []
        return ([self.paths.negative_controls(ep) for ep in self.endpoints]
                + [self.paths.controls(k).quarantine_centre(c) for k in self.control_kinds
                   for c in self.control_centres])

    def benchmark_files(self) -> list[Path]:
        """The benchmark file of every job that has one (what the report's runtime table sums)."""
        plan, bench, eps = self.plan, self.paths.benchmark, self.endpoints
        files = [bench(stage, s) for stage in CASE_STAGES for s in plan.shards]
        files += [bench(rule) for rule in ("harmonise_fit", "harmonise_diagnostics")]
        files += [bench("robustness")] if self.cfg["features"]["robustness"]["activate"] else []
        files += [bench(rule, ep) for rule in ("train", "explain", "validate") for ep in eps]
        files += [bench("volume_check", ep) for ep in eps] if self.cfg["guardrails"]["volume_check"]["activate"] else []
        files += [bench("train_fusion", ep) for ep in eps if plan.fused(ep)]
        files += [bench("y_randomisation", f"{ep}.{m}") for ep in eps for m in self.y_randomisation]
        files += [bench("predict_prospective", ep) for ep in eps] if plan.prospective else []
        files += [bench("deep_train", ep) for ep in plan.deep_endpoints]
        files += [bench("deep_score", f"{ep}.{c}") for ep in plan.deep_endpoints for c in plan.centres
                  if c not in plan.train]
        if plan.autoseg:
            files += [bench("autoseg_train")] + [bench("autoseg_predict", c) for c in plan.centres]
        files += [bench("controls", f"{k}.{s}") for k in self.control_kinds for c in self.control_centres
                  for s in plan.shards_of(c)]
        files += [bench("controls_validate", f"{ep}.{c}") for ep in eps for c in self.control_runs]
        return files

    def failure_line(self) -> str:
        """The end-of-run log line on quarantined cases (when the run got as far as the study's QC)."""
        from mcrad.cases import failure_line
        from mcrad.files import read_table

        quarantine = self.paths.qc_quarantine
        return failure_line(read_table(quarantine)) if quarantine.is_file() else ""

    def report_figures(self) -> list[dict[str, Any]]:
        """The report's per-endpoint figures with their Snakemake-report caption, category and labels."""
        figures = []
        for ep in self.plan.endpoints:
            for kind in (*ep.figure_kinds, "shap"):
                category = "Models" if kind in MODEL_FIGURES else "Validation"
                figures.append({"path": self.paths.figure(f"{kind}_{ep.name}"), "caption": f"../report/{kind}.rst",
                                "category": category, **({} if category == "Models" else {"subcategory": ep.name}),
                                "labels": {"endpoint": ep.name, "figure": kind}})
            if self.y_randomisation:
                figures.append({"path": self.paths.figure(f"y_randomisation_{ep.name}"),
                                "caption": "../report/y_randomisation.rst", "category": "Models",
                                "labels": {"endpoint": ep.name, "figure": "y_randomisation"}})
        return figures
