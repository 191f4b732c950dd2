"""Validate a study config against the schema and fill its defaults: the one place options are read."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mcrad.endpoints import check_specs
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
    kit = cfg["kit"]
    if not design["train"] and not kit["locked"]:
        raise ConfigError("design.train is empty: name the centre(s) that train the models. Only a site run from a "
                          "kit (kit.locked: true, written by `mcrad kit run`) has no training centre.")
    if kit["locked"] and (design["train"] or not kit["dir"]):
        raise ConfigError("kit.locked: a site run takes its models from the kit: leave design.train empty and set "
                          "kit.dir to the unpacked kit (`mcrad kit run` does both).")
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
    check_specs(cfg["endpoints"])
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
    if seqs and cfg["cohort"]["sheet"] is None and cfg["cohort"]["discover"] is None:
        raise ConfigError("cohort.sequences needs a cohort sheet (the synthetic demo cohort has one image per "
                          "case). Fix: set cohort.sheet, or cohort.sequences: [].")
    if seqs and pre["modality"] == "MR" and pre["mr_normalise"] == "nyul":
        raise ConfigError(f"cohort.sequences {seqs} needs mr_normalise zscore or none (got nyul): Nyul landmarks are "
                          "learned for the reference sequence only.")
    if seqs and pre["modality"] == "CT" and pre["registration"]["method"] != "none":
        raise ConfigError(f"cohort.sequences {seqs} with preprocess.modality CT is a hybrid scan (PET/CT): set "
                          "preprocess.registration.method: none (the scanner aligned the series; they are resampled "
                          "onto the CT's grid). Multi-sequence MRI takes preprocess.modality MR.")
    unknown = sorted(set(cfg["features"]["sequence_params"]) - set(seqs))
    if unknown:
        raise ConfigError(f"features.sequence_params names sequence(s) {unknown} that cohort.sequences {seqs} lacks.")
    names = [ep["name"] for ep in cfg["endpoints"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"endpoints: names must be unique, got {names}")
    return cfg


def load_config_file(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return load_config(yaml.safe_load(fh))


def load_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """Some top-level sections of a study config (e.g. an IBSI configuration's preprocess and features), validated
    against their part of the schema with its defaults filled in; raise ConfigError otherwise."""
    full = _schema("config.schema.yaml")
    schema = {**{k: v for k, v in full.items() if k not in ("properties", "required")}, "required": []}
    schema["properties"] = full["properties"]
    cfg = copy.deepcopy(raw)
    errors = sorted(_Validator(schema).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        raise ConfigError("invalid configuration sections:\n" + "\n".join(
            f"  - config.{'.'.join(str(p) for p in e.path) or '<top>'}: {e.message}" for e in errors))
    return {k: cfg[k] for k in raw}
