"""Validate a study config against the schema, fill defaults, and build every output path in one place."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mcrad.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def _schema(name: str) -> dict:
    with open(SCHEMA_DIR / name) as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Return a validated deep copy of `raw` with schema defaults filled in; raise ConfigError otherwise."""
    cfg = copy.deepcopy(raw)
    errors = sorted(_Validator(_schema("config.schema.yaml")).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        lines = [f"  - config.{'.'.join(str(p) for p in e.path) or '<top>'}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)
                          + "\nSee workflow/schemas/config.schema.yaml for every option.")
    design = cfg["design"]
    both = set(design["train"]) & set(design["external"])
    if both:
        raise ConfigError(f"design: centre(s) {sorted(both)} are listed as both train and external; "
                          "a centre plays one stage only.")
    for role in ("train", "external"):
        overlap = set(design[role]) & set(design["prospective"])
        if overlap:
            raise ConfigError(f"design: centre(s) {sorted(overlap)} are listed as both {role} and prospective; "
                              "a centre plays one stage only.")
    clinical = {c["name"] for c in cfg["cohort"]["clinical"]}
    for ep in cfg["endpoints"]:
        if ep["column"] in clinical:
            raise ConfigError(f"endpoint {ep['name']!r}: column {ep['column']!r} is also a clinical predictor; "
                              "an outcome cannot be used to predict itself.")
        if (ep["type"] == "survival") != bool(ep.get("time")):
            raise ConfigError(f"endpoint {ep['name']!r}: a survival endpoint needs `time` (the follow-up column) "
                              "and `column` (the event, 1 = event); a binary endpoint takes no `time`.")
        if (ep["type"] == "multiclass") != ("classes" in ep):
            raise ConfigError(f"endpoint {ep['name']!r}: a multiclass endpoint needs `classes` (its labels as written "
                              "in the sheet, e.g. [G1, G2, G3]); binary and survival endpoints take none.")
        if "classes" in ep:
            ep["classes"] = [str(c) for c in ep["classes"]]  # sheet cells are text: 1 and "1" are one class
            if len(set(ep["classes"])) != len(ep["classes"]):
                raise ConfigError(f"endpoint {ep['name']!r}: classes {ep['classes']} repeat a label.")
    endpoint_columns = {ep["column"] for ep in cfg["endpoints"]}
    for cov in cfg["harmonise"]["covariates"]:
        if cov in endpoint_columns:
            raise ConfigError(f"harmonise.covariates: {cov!r} is an endpoint; ComBat must not see outcomes "
                              "(it would leak them into every centre's features).")
        if cov not in clinical:
            raise ConfigError(f"harmonise.covariates: {cov!r} is not a clinical column; choose from "
                              f"{sorted(clinical)} (cohort.clinical).")
    h = cfg["harmonise"]
    if h["activate"] and h["compare"] and len(design["train"]) > 1:
        raise ConfigError("harmonise.compare needs a single training centre: with several, ComBat changes the "
                          "training features and a no-ComBat comparison would need models of its own. "
                          "Fix: set harmonise.compare: false.")
    seqs, pre = cfg["cohort"]["sequences"], cfg["preprocess"]
    if len(seqs) == 1:
        raise ConfigError(f"cohort.sequences {seqs} names one sequence; list the reference and at least one more "
                          "(e.g. [T1, T2]), or leave it empty for one image per case.")
    if seqs and cfg["cohort"]["sheet"] is None:
        raise ConfigError("cohort.sequences needs a cohort sheet (the synthetic demo cohort has one image per "
                          "case). Fix: set cohort.sheet, or cohort.sequences: [].")
    if seqs and (pre["modality"] != "MR" or pre["mr_normalise"] == "nyul"):
        raise ConfigError(f"cohort.sequences {seqs} needs preprocess.modality MR with mr_normalise zscore or none "
                          f"(got {pre['modality']}, {pre['mr_normalise']}): Nyul landmarks are learned for the "
                          "reference sequence only.")
    names = [ep["name"] for ep in cfg["endpoints"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"endpoints: names must be unique, got {names}")
    return cfg


def load_config_file(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return load_config(yaml.safe_load(fh))


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-able object, independent of dict order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Paths:
    """Every path the workflow writes, built here and nowhere else."""

    root: Path

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Paths:
        return cls(Path(cfg["study"]["results"]) / cfg["study"]["name"])

    # synthetic demo cohort
    @property
    def synth_dir(self) -> Path:
        return self.root / "synth"

    @property
    def synth_sheet(self) -> Path:
        return self.synth_dir / "cohort.tsv"

    @property
    def synth_truth(self) -> Path:
        return self.synth_dir / "ground_truth.json"

    # cohort tables split by centre, so a training rule can only ever see training rows
    def cohort_table(self, centre: str) -> Path:
        return self.root / "cohort" / f"{centre}.tsv"

    # label-free: patient_id, centre and cohort.clinical only, for rules that must not rerun when outcomes change
    def predictors_table(self, centre: str) -> Path:
        return self.root / "cohort" / "predictors" / f"{centre}.tsv"

    # per-case stages: one table per shard, per-case files under cases/
    def shard_table(self, stage: str, shard: str) -> Path:
        return self.root / "shards" / stage / f"{shard}.tsv"

    def case_dir(self, centre: str, patient_id: str) -> Path:
        return self.root / "cases" / centre / patient_id

    @property
    def qc_ingest(self) -> Path:
        return self.root / "qc" / "ingest.tsv"

    @property
    def qc_preprocess(self) -> Path:
        """Per case: the ingest QC columns plus preprocessing (size, ROI voxels, registration MI and Dice)."""
        return self.root / "qc" / "preprocess.tsv"

    def quarantine_centre(self, centre: str) -> Path:
        return self.root / "qc" / "quarantine" / f"{centre}.tsv"

    @property
    def qc_quarantine(self) -> Path:
        return self.root / "qc" / "quarantine.tsv"

    def raw_features(self, centre: str | None = None) -> Path:
        return self.root / "features" / ("raw.tsv" if centre is None else f"raw/{centre}.tsv")

    def feature_flags(self, centre: str | None = None) -> Path:
        """Per case and feature class: why a feature is NaN (ROI too small, flat region, pyradiomics NaN)."""
        return self.root / "qc" / ("feature_flags.tsv" if centre is None else f"feature_flags/{centre}.tsv")

    def robustness_case(self, centre: str, patient_id: str) -> Path:
        return self.case_dir(centre, patient_id) / "robustness" / "features.tsv"

    @property
    def robustness(self) -> Path:
        return self.root / "features" / "robustness.tsv"

    @property
    def harmoniser(self) -> Path:
        return self.root / "harmonise" / "combat.json"

    @property
    def nyul_standard(self) -> Path:
        return self.root / "preprocess" / "nyul.json"

    @property
    def harmonised_features(self) -> Path:
        return self.root / "features" / "harmonised.tsv"

    def harmonised_external(self, centre: str) -> Path:
        return self.root / "features" / "harmonised" / "external" / f"{centre}.tsv"

    def harmonise_file(self, name: str) -> Path:
        return self.root / "harmonise" / name

    @property
    def excluded_features(self) -> Path:
        return self.root / "harmonise" / "excluded_features.tsv"

    @property
    def harmonised_train(self) -> Path:
        return self.root / "features" / "harmonised" / "train.tsv"

    def bundle(self, endpoint: str, model: str) -> Path:
        return self.root / "models" / endpoint / model

    def internal_predictions(self, endpoint: str) -> Path:
        return self.root / "models" / endpoint / "internal_predictions.tsv"

    def paired(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "paired_delong.tsv"

    def comparison(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "harmonisation_comparison.tsv"

    def metrics(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "metrics.tsv"

    def predictions(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "predictions.tsv"

    def internal_predictions_fusion(self, endpoint: str) -> Path:
        return self.root / "models" / endpoint / "internal_predictions_fusion.tsv"

    def shap(self, endpoint: str) -> Path:
        return self.root / "models" / endpoint / "shap_values.tsv"

    def shap_summary(self, endpoint: str) -> Path:
        return self.root / "models" / endpoint / "shap_summary.tsv"

    # stage 3: the held-back centres, scored without labels, evaluated once labels arrive
    def prospective_predictions(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "prospective_predictions.tsv"

    def prospective_metrics(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "prospective_metrics.tsv"

    def prospective_paired(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint / "prospective_paired_delong.tsv"

    # deep stage (MONAI): per-endpoint, per-centre deep_score + penultimate embeddings
    def deep_features(self, endpoint: str, centre: str) -> Path:
        return self.root / "deep" / endpoint / f"features_{centre}.tsv"

    def deep_dir(self, endpoint: str) -> Path:
        return self.root / "deep" / endpoint

    @property
    def autoseg_dice(self) -> Path:
        return self.root / "segment" / "autoseg_dice.tsv"

    @property
    def report(self) -> Path:
        return self.root / "report" / "index.html"

    def figure(self, name: str) -> Path:
        return self.root / "report" / "figures" / f"{name}.png"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"
