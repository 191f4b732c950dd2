"""The model stage's steps as the rules run them: train and lock one endpoint's models, the deep and fusion
models, and their SHAP values. Each reads only the training centre(s)' tables it is given."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.endpoints import endpoint_named
from mcrad.files import META, read_table, read_tables, write_table
from mcrad.model.bundle import load_bundle, save_bundle
from mcrad.model.explain import linear_shap, shap_summary
from mcrad.model.fusion import join_deep, train_fusion
from mcrad.model.registry import DEEP_SCORE
from mcrad.model.train import training_table


def robust_columns(features: pd.DataFrame, robustness: pd.DataFrame | None) -> list[str]:
    """The radiomics feature columns the models may use: all of them, or those features.robustness kept."""
    columns = [c for c in features.columns if c not in META]
    if robustness is None:
        return columns
    dropped = set(robustness.loc[~robustness["kept"].astype(bool), "feature"])
    return [c for c in columns if c not in dropped]


def _training(cfg: dict, n: int, **outcomes) -> dict:
    return {"centres": cfg["design"]["train"], "n": n, **outcomes, "seed": cfg["study"]["seed"],
            "options": cfg["model"]}


def train_stage(cfg: dict, endpoint_name: str, features_file: Path, cohort_files: list[Path],
                robustness_file: Path | None, out_dir: Path, internal_file: Path) -> None:
    """Stage 1 of one endpoint: fit every model of its registry on the training centre(s), lock each as a bundle
    under out_dir/<model>/, and write the out-of-fold internal predictions."""
    ep = endpoint_named(cfg, endpoint_name)
    features = read_table(features_file)
    columns = robust_columns(features, read_table(robustness_file) if robustness_file else None)
    df = training_table(features, read_tables(cohort_files), ep.column, numeric=ep.numeric_label)
    clinical = cfg["cohort"]["clinical"]
    fitted, internal = ep.train(df, columns, clinical, cfg["model"], cfg["study"]["seed"])
    training = _training(cfg, int(len(df)), **ep.training_record(df, internal))
    for name, entry in fitted.items():
        save_bundle(Path(out_dir) / name, name, entry, columns, clinical, ep.spec, training)
    write_table(internal, internal_file)


def train_fusion_stage(cfg: dict, endpoint_name: str, features_file: Path, deep_files: list[Path],
                       cohort_files: list[Path], radiomics_bundle: Path, out_dir: Path, internal_file: Path) -> None:
    """Stage 1, deep and fusion models of one endpoint, on the same radiomics columns as its locked radiomics
    model (after any robustness filter)."""
    ep = endpoint_named(cfg, endpoint_name)
    features = join_deep(read_table(features_file), read_tables(deep_files), "training centre deep features")
    columns = load_bundle(Path(radiomics_bundle))[1]["features"]
    df = training_table(features, read_tables(cohort_files), ep.column)
    no_deep = df[DEEP_SCORE].isna()
    if no_deep.any():  # the deep stage could not crop these cases (logged there)
        print(f"train-fusion: {int(no_deep.sum())} training case(s) without a deep score left out: "
              f"{df.loc[no_deep, 'patient_id'].tolist()}")
        df = df.loc[~no_deep].reset_index(drop=True)
    fitted, internal = train_fusion(df, columns, ep.column, cfg["model"], cfg["study"]["seed"])
    training = _training(cfg, int(len(df)), **ep.training_record(df, internal))
    for name, entry in fitted.items():
        save_bundle(Path(out_dir) / name, name, entry, entry["features"], [], ep.spec, training)
    write_table(internal, internal_file)


SHAP_MODELS = ("radiomics", "nomogram")


def explain_stage(cfg: dict, endpoint_name: str, models_dir: Path, features_file: Path, cohort_files: list[Path],
                  out_file: Path, summary_file: Path) -> None:
    """Exact SHAP values of the locked radiomics and nomogram models on the training rows, and their summary
    (mean |SHAP| per feature; per class for multi-class endpoints). A model that is not linear in its inputs (a
    random forest) gets no SHAP values; its importances are in its meta.json."""
    ep = endpoint_named(cfg, endpoint_name)
    df = training_table(read_table(features_file), read_tables(cohort_files), ep.column, numeric=ep.numeric_label)
    classes = ep.classes
    by_class = ["class"] if classes else []
    frames = []
    for name in SHAP_MODELS:
        try:
            bundle = load_bundle(Path(models_dir) / name)[0]
            frames.append(linear_shap(name, bundle, df, classes).assign(model=name))
        except ValueError as exc:
            print(f"explain: no SHAP values for {name}: {exc}")
    columns = ["model", *by_class, "patient_id", "feature", "value", "shap"]
    shap = pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else pd.DataFrame(columns=columns)
    write_table(shap, out_file)
    summary_columns = ["model", *by_class, "feature", "mean_abs_shap"]
    summaries = [shap_summary(f).assign(model=f["model"].iloc[0]) for f in frames if len(f)]
    write_table(pd.concat(summaries, ignore_index=True).reindex(columns=summary_columns) if summaries
                else pd.DataFrame(columns=summary_columns), summary_file)
