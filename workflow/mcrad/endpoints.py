"""Endpoint types: one class per type (binary, multi-class, survival) owning everything that differs between
them: the config checks, how labels are read and checked, the model family, the prediction columns, the
metrics and paired tests, the curves and the report section. Everything else asks the endpoint; there is no
switch on the type outside this module.

Cheap to import (the Snakefile does): model, validation and report code is imported inside the methods.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mcrad.errors import ConfigError, McradError


# ---- class labels of multi-class endpoints --------------------------------------------------------------------
def class_name(value: Any) -> str:
    """A multi-class label as the text of the config's `classes` (a TSV cell read back as 1 or 1.0 is '1')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def class_index(labels: pd.Series, classes: list[str], patients: pd.Series, source: str) -> np.ndarray:
    """Position of each label in the endpoint's `classes`; a label outside them (or missing) is refused, naming
    the patients."""
    text = labels.map(class_name)
    lookup = {c: i for i, c in enumerate(classes)}
    bad = ~text.isin(list(lookup))
    if bad.any():
        shown = [f"{p} ({v!r})" for p, v in zip(patients[bad], labels[bad], strict=True)][:5]
        raise McradError(f"{source}: patients {shown} have a label outside the endpoint's classes {classes}. Fix: "
                         "correct the labels, or list every class in the endpoint's `classes`.")
    return text.map(lookup).to_numpy(int)


def probability_columns(classes: list[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def class_probabilities(classes: list[str], proba: np.ndarray) -> pd.DataFrame:
    """Multi-class predictions: predicted (the most probable class, the locked decision rule) and p_<class>."""
    proba = np.asarray(proba, float)
    return pd.DataFrame({"predicted": np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)],
                         **dict(zip(probability_columns(classes), proba.T, strict=True))})


# ---- the endpoint types ---------------------------------------------------------------------------------------
class Endpoint:
    """What every endpoint type provides. `spec` is the endpoint's validated config entry (also stored in each
    locked bundle's meta.json)."""

    type: ClassVar[str]
    # the bundles lock a decision threshold (binary probability, survival risk group); multi-class: most probable
    locks_threshold: ClassVar[bool] = True
    # the deep stage and the fusion models exist for this type
    supports_deep: ClassVar[bool] = False
    # tables under validation/<endpoint>/curves/ written by validate and drawn by the report
    curve_kinds: ClassVar[tuple[str, ...]] = ()
    # report figures (report/figures/<kind>_<endpoint>.png)
    figure_kinds: ClassVar[tuple[str, ...]] = ()
    # a short description of the metrics, for the report and the methods text
    label_text: ClassVar[str] = ""
    # multi-class endpoints: the class labels in order
    classes: list[str] | None = None
    # validate.reader (a radiologist's score) can be compared with the models
    reader_comparable: ClassVar[bool] = False
    # the discrimination column of metrics.tsv that permutation nulls test against chance (0.5)
    statistic: ClassVar[str] = "auc"
    statistic_interval: ClassVar[tuple[str, str]] = ("auc_lo", "auc_hi")  # its confidence limits in metrics.tsv

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.name: str = spec["name"]
        self.column: str = spec["column"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---- config and cohort sheet ----
    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> None:
        """Raise ConfigError for options this type does not take or lacks; normalise what it reads."""
        if spec.get("time"):
            raise ConfigError(f"endpoint {spec['name']!r}: `time` is for survival endpoints only (type: survival).")
        if "classes" in spec:
            raise ConfigError(f"endpoint {spec['name']!r}: `classes` is for multiclass endpoints only "
                              "(type: multiclass).")

    @property
    def outcome_columns(self) -> list[str]:
        """Sheet columns holding this endpoint's outcome."""
        return [self.column]

    def sheet_problems(self, df: pd.DataFrame) -> list[tuple[int, str, str]]:
        """(row index, column, problem) for every cell of the sheet this endpoint cannot read."""
        return [(i, self.column, f"label {df.at[i, self.column]!r} is not 0 or 1")
                for i in df.index[~df[self.column].isin(["0", "1"])]]

    # ---- stage 1 ----
    def model_names(self, deep_active: bool) -> tuple[str, ...]:
        """The model registry of this endpoint: every name here is trained, locked, validated and compared."""
        from mcrad.model.registry import FUSION_MODELS, MODELS

        return MODELS + FUSION_MODELS if deep_active and self.supports_deep else MODELS

    @property
    def numeric_label(self) -> bool:
        """Whether the label column is read as a number in the training table."""
        return True

    def train(self, df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], opts: dict,
              seed: int, models: tuple[str, ...] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
        """Fit and lock every model of the registry, or only `models`: ({model: {model, threshold, info}},
        internal predictions)."""
        raise NotImplementedError

    def training_record(self, df: pd.DataFrame, internal: pd.DataFrame) -> dict[str, Any]:
        """What the bundles record of the training outcomes (events; patients per class)."""
        return {"events": int(pd.to_numeric(df[self.column]).sum())}

    def harmonisation_outcome(self, cohort: pd.DataFrame) -> pd.Series | None:
        """The 0/1 outcome whose signal the harmonisation check follows before/after ComBat (None: no check)."""
        return pd.to_numeric(cohort[self.column])

    def sample_size(self, internal: pd.DataFrame, parameters: int, opts: dict) -> dict[str, Any]:
        """Riley's minimum sample size for a model with `parameters` candidate parameters, at the training outcome
        frequency of its internal predictions (guardrails.sample_size options): a row of sample_size.tsv."""
        from mcrad.model.sample_size import binary_requirement

        return binary_requirement(internal["label"].to_numpy(int), parameters, opts)
    # ---- permutation nulls ----
    def permuted_statistic(self, pred: pd.DataFrame, index: np.ndarray) -> np.ndarray:
        """`statistic` of one model's predictions on one group of patients with the outcomes of row index[p, i]
        beside the scores of row i, for each row p of index (binary: AUC of the score)."""
        from mcrad.stats import permuted_auc

        return permuted_auc(pred["label"].to_numpy(int), pred["score"].to_numpy(float), index)

    def discrimination(self, pred: pd.DataFrame) -> float:
        """`statistic` of predictions as they are (the identity permutation)."""
        return float(self.permuted_statistic(pred, np.arange(len(pred))[None, :])[0])

    # ---- scoring and stage 2 ----
    def score(self, model, df: pd.DataFrame) -> pd.DataFrame:
        """A locked model's output columns for the rows of df (binary: score = probability)."""
        return pd.DataFrame({"score": model.predict_proba(df)[:, 1]})

    @property
    def score_columns(self) -> list[str]:
        return ["score"]

    @property
    def prediction_columns(self) -> list[str]:
        """Columns of predictions.tsv."""
        return ["patient_id", "centre", "stage", "model", "label", *self.score_columns]

    def attach_outcomes(self, scored: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
        """Add `label` (and survival `time`) to scored patients; every one must have an outcome."""
        cols = ["patient_id", *self.outcome_columns]
        missing = [c for c in cols if c not in cohort.columns]
        if missing:
            raise McradError(f"the outcome table lacks column(s) {missing} of endpoint {self.name!r}. "
                             "Fix: add them to the cohort table of these patients.")
        df = scored.merge(cohort[cols], on="patient_id", how="left", validate="many_to_one")
        absent = df.loc[df[self.column].isna() | (df[self.column].astype(str) == ""), "patient_id"]
        if len(absent):
            raise McradError(f"patients {sorted(absent.unique())[:5]} were scored but have no {self.column!r} "
                             "outcome. Fix: add their outcomes, or remove them from the predictions table.")
        out = self._with_label(df)
        return out.drop(columns=[c for c in cols[1:] if c not in ("label", "time")])

    def _with_label(self, df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(label=pd.to_numeric(df[self.column]).astype(int))

    def locked_call(self, scored: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
        """Stage 3 without labels: the bundle's locked threshold and the call it makes."""
        return scored.assign(threshold=threshold, positive=(scored["score"] >= threshold).astype(int))

    @property
    def prospective_columns(self) -> list[str]:
        return ["patient_id", "centre", "stage", "model", "score", "threshold", "positive"]

    def scored(self, predictions: pd.DataFrame) -> pd.DataFrame:
        """The rows of the predictions table with a score: a case a model could not score (no deep score) stays
        in predictions.tsv with an empty score and is left out of that model's metrics, with a log line."""
        missing = predictions[self.score_columns].isna().any(axis=1)
        for model, n in predictions.loc[missing].groupby("model").size().items():
            print(f"mcrad: {self.name}: model {model} could not score {n} case(s) (listed in predictions.tsv with an "
                  "empty score); its metrics leave them out")
        return predictions.loc[~missing]

    def summarise(self, predictions: pd.DataFrame, thresholds: dict[str, float | None], alpha: float
                  ) -> pd.DataFrame:
        """metrics.tsv: one row per model x centre x stage, plus pooled external centres."""
        from mcrad.validate.metrics import summarise_binary

        return summarise_binary(predictions, thresholds, alpha)

    def paired(self, predictions: pd.DataFrame) -> pd.DataFrame:
        """Paired tests between every pair of models on the same patients."""
        from mcrad.validate.metrics import paired_delong

        return paired_delong(predictions)

    def curves(self, predictions: pd.DataFrame, thresholds: dict[str, float | None]) -> dict[str, pd.DataFrame]:
        """The curve tables of curve_kinds, from the predictions table."""
        from mcrad.validate import curves

        return {kind: getattr(curves, f"{kind}_table")(predictions, thresholds) for kind in self.curve_kinds}

    # ---- report ----
    def design_counts(self, g: pd.DataFrame) -> dict[str, Any]:
        """Outcome counts of one centre for the study-design table."""
        return {f"{self.name} events": int(pd.to_numeric(g[self.column]).sum())}

    def report_sections(self, rep, inputs) -> None:
        """Add this endpoint's performance and comparison sections to the report."""
        raise NotImplementedError


class Binary(Endpoint):
    type = "binary"
    supports_deep = True
    reader_comparable = True
    curve_kinds = ("roc", "calibration", "decision")
    figure_kinds = ("forest", "roc", "calibration", "decision", "nomogram")
    label_text = "0/1 labels"

    def train(self, df, radiomics_columns, clinical, opts, seed, models=None):
        from mcrad.model.registry import MODELS
        from mcrad.model.train import train_binary

        return train_binary(df, radiomics_columns, clinical, self.column, opts, seed, models or MODELS)

    def report_sections(self, rep, inputs) -> None:
        from mcrad.report.performance import binary_sections

        binary_sections(rep, self, inputs)


class Multiclass(Endpoint):
    type = "multiclass"
    locks_threshold = False
    curve_kinds = ("confusion",)
    figure_kinds = ("forest", "confusion")
    label_text = "class labels"

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.classes: list[str] = [str(c) for c in spec["classes"]]
        self.ordinal: bool = bool(spec.get("ordinal", False))

    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> None:
        if "classes" not in spec:
            raise ConfigError(f"endpoint {spec['name']!r}: a multiclass endpoint needs `classes` (its labels as "
                              "written in the sheet, e.g. [G1, G2, G3]).")
        if spec.get("time"):
            raise ConfigError(f"endpoint {spec['name']!r}: `time` is for survival endpoints only.")
        spec["classes"] = [str(c) for c in spec["classes"]]  # sheet cells are text: 1 and "1" are one class
        if len(set(spec["classes"])) != len(spec["classes"]):
            raise ConfigError(f"endpoint {spec['name']!r}: classes {spec['classes']} repeat a label.")

    def sheet_problems(self, df):
        expected = f"one of the classes {self.classes} of endpoint {self.name!r}"
        return [(i, self.column, f"label {df.at[i, self.column]!r} is not {expected}")
                for i in df.index[~df[self.column].isin(self.classes)]]

    @property
    def numeric_label(self) -> bool:
        return False

    def index(self, labels: pd.Series, patients: pd.Series, source: str) -> np.ndarray:
        return class_index(labels, self.classes, patients, source)

    def train(self, df, radiomics_columns, clinical, opts, seed, models=None):
        from mcrad.model.registry import MODELS
        from mcrad.model.train import train_multiclass

        return train_multiclass(df, radiomics_columns, clinical, self.column, self.classes, opts, seed,
                                models or MODELS)

    def training_record(self, df, internal):
        counts = internal.drop_duplicates("patient_id")["label"].value_counts()
        return {"per_class": counts.reindex(self.classes).astype(int).to_dict()}

    def harmonisation_outcome(self, cohort):
        return None  # the 0/1 outcome-signal check has no single label here

    def sample_size(self, internal, parameters, opts):
        from mcrad.model.sample_size import multiclass_requirement

        return multiclass_requirement(internal["label"], self.classes, parameters, opts)
    def permuted_statistic(self, pred, index):
        from mcrad.stats import permuted_macro_auc

        y = self.index(pred["label"], pred["patient_id"], "predictions table, column 'label'")
        return permuted_macro_auc(y, pred[probability_columns(self.classes)].to_numpy(float), index)

    def score(self, model, df):
        return class_probabilities(self.classes, model.predict_proba(df))

    @property
    def score_columns(self) -> list[str]:
        return ["predicted", *probability_columns(self.classes)]

    def _with_label(self, df):
        index = self.index(df[self.column], df["patient_id"], f"outcome table, column {self.column!r}")
        return df.assign(label=np.asarray(self.classes, dtype=object)[index])

    def locked_call(self, scored, threshold):
        return scored  # the locked decision is the most probable class, already in `predicted`

    @property
    def prospective_columns(self) -> list[str]:
        return ["patient_id", "centre", "stage", "model", *self.score_columns]

    def summarise(self, predictions, thresholds, alpha):
        from mcrad.validate.metrics import summarise_multiclass

        return summarise_multiclass(predictions, self.classes, alpha, self.ordinal)

    def paired(self, predictions):
        from mcrad.validate.metrics import paired_macro_auc

        return paired_macro_auc(predictions, self.classes)

    def curves(self, predictions, thresholds):
        from mcrad.validate.curves import confusion_table

        return {"confusion": confusion_table(predictions, self.classes)}

    def design_counts(self, g):
        counts = g[self.column].map(class_name).value_counts()
        return {f"{self.name} ({'/'.join(self.classes)})": "/".join(str(int(counts.get(c, 0))) for c in self.classes)}

    def report_sections(self, rep, inputs) -> None:
        from mcrad.report.multiclass import multiclass_sections

        multiclass_sections(rep, self, inputs)


class Survival(Endpoint):
    type = "survival"
    curve_kinds = ("km",)
    figure_kinds = ("km",)
    label_text = "event indicator and follow-up time"
    statistic = "c_index"
    statistic_interval = ("c_lo", "c_hi")

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.time: str = spec["time"]
        self.times: list[float] = list(spec.get("times", []))

    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> None:
        if not spec.get("time"):
            raise ConfigError(f"endpoint {spec['name']!r}: a survival endpoint needs `time` (the follow-up column) "
                              "and `column` (the event, 1 = event).")
        if "classes" in spec:
            raise ConfigError(f"endpoint {spec['name']!r}: `classes` is for multiclass endpoints only.")

    @property
    def outcome_columns(self) -> list[str]:
        return [self.column, self.time]

    def sheet_problems(self, df):
        problems = super().sheet_problems(df)
        times = pd.to_numeric(df[self.time], errors="coerce")
        return problems + [(i, self.time, f"follow-up time {df.at[i, self.time]!r} is not a number >= 0")
                           for i in df.index[~(times >= 0)]]

    def train(self, df, radiomics_columns, clinical, opts, seed, models=None):
        from mcrad.model.registry import MODELS
        from mcrad.model.survival import train_survival

        return train_survival(df, radiomics_columns, clinical, self.time, self.column, opts, seed, models or MODELS)

    def score(self, model, df):
        return pd.DataFrame({"score": model.decision_function(df)})  # the Cox linear predictor (log hazard)

    def sample_size(self, internal, parameters, opts):
        from mcrad.model.sample_size import survival_requirement

        return survival_requirement(internal["label"].to_numpy(int), internal["time"].to_numpy(float), parameters,
                                    opts, self.times)
    def permuted_statistic(self, pred, index):
        from mcrad.stats import permuted_concordance

        return permuted_concordance(pred["time"].to_numpy(float), pred["label"].to_numpy(int),
                                    pred["score"].to_numpy(float), index)

    @property
    def prediction_columns(self) -> list[str]:
        return ["patient_id", "centre", "stage", "model", "label", "time", "score"]

    def _with_label(self, df):
        return df.assign(label=pd.to_numeric(df[self.column]).astype(int),
                         time=pd.to_numeric(df[self.time]).astype(float))

    def summarise(self, predictions, thresholds, alpha):
        from mcrad.validate.metrics import summarise_survival

        return summarise_survival(predictions, thresholds, alpha, self.times)

    def paired(self, predictions):
        from mcrad.validate.metrics import paired_concordance

        return paired_concordance(predictions)

    def report_sections(self, rep, inputs) -> None:
        from mcrad.report.survival import survival_sections

        survival_sections(rep, self, inputs)


TYPES: dict[str, type[Endpoint]] = {t.type: t for t in (Binary, Multiclass, Survival)}


def endpoint(spec: dict[str, Any]) -> Endpoint:
    """The endpoint object of a config (or bundle meta.json) entry; type binary when not given."""
    kind = spec.get("type", "binary")
    if kind not in TYPES:
        raise ConfigError(f"endpoint {spec.get('name')!r}: unknown type {kind!r}; choose from {sorted(TYPES)}.")
    return TYPES[kind](spec)


def endpoints(cfg: dict[str, Any]) -> list[Endpoint]:
    return [endpoint(spec) for spec in cfg["endpoints"]]


def endpoint_named(cfg: dict[str, Any], name: str) -> Endpoint:
    for spec in cfg["endpoints"]:
        if spec["name"] == name:
            return endpoint(spec)
    raise McradError(f"no endpoint named {name!r} in the config (endpoints: {[e['name'] for e in cfg['endpoints']]}).")


def check_specs(specs: list[dict[str, Any]]) -> None:
    """Config checks of every endpoint entry (called by load_config)."""
    for spec in specs:
        kind = spec.get("type", "binary")
        if kind not in TYPES:
            raise ConfigError(f"endpoint {spec['name']!r}: unknown type {kind!r}.")
        TYPES[kind].check_spec(spec)
