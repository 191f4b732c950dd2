"""End-to-end: real `snakemake` runs of small studies, checked for what the backbone promises."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import NODAL_MODELS, STUDY, assert_identical, model_options, root, run_study, training_artefacts
from mcrad.files import META
from mcrad.model.registry import MODELS
from mcrad.model.train import train_binary, training_table
from mcrad.stats import auc_ci

pytestmark = pytest.mark.e2e
def test_outputs_tables_and_report(study):
    metrics = pd.read_csv(study / "validation/nodal_metastasis/metrics.tsv", sep="\t")
    expected = {(mod, c, s) for mod in NODAL_MODELS for c, s in
                (("C1", "internal"), ("C2", "external"), ("C3", "external"), ("pooled", "external"))}
    assert set(zip(metrics["model"], metrics["centre"], metrics["stage"], strict=True)) == expected
    assert {"n", "events", "auc", "auc_lo", "auc_hi"} <= set(metrics.columns)
    assert (metrics["auc_lo"] <= metrics["auc"]).all() and (metrics["auc"] <= metrics["auc_hi"]).all()
    pred = pd.read_csv(study / "validation/nodal_metastasis/predictions.tsv", sep="\t")
    assert list(pred.columns) == ["patient_id", "centre", "stage", "model", "label", "score"]
    assert len(pred) == len(NODAL_MODELS) * 160, "every patient scored by every model"
    html = (study / "report/index.html").read_text()
    for section in ("Study design", "Acquisition and quality control", "Harmonisation",
                    "Performance: nodal_metastasis", "Synthetic ground truth", "Provenance"):
        assert section in html
    assert "data:image/png;base64," in html
    qc = pd.read_csv(study / "qc/ingest.tsv", sep="\t")
    assert len(qc) == 160 and set(qc["status"]) == {"ok"}


def test_multiclass_grade_has_every_row_with_intervals(study):
    metrics = pd.read_csv(study / "validation/grade/metrics.tsv", sep="\t")
    expected = {(mod, c, s) for mod in MODELS for c, s in
                (("C1", "internal"), ("C2", "external"), ("C3", "external"), ("pooled", "external"))}
    assert set(zip(metrics["model"], metrics["centre"], metrics["stage"], strict=True)) == expected
    assert (metrics["auc_lo"] <= metrics["auc"]).all() and (metrics["auc"] <= metrics["auc_hi"]).all()
    assert {f"{s}_{c}" for s in ("auc", "sens", "ppv") for c in ("G1", "G2", "G3")} <= set(metrics.columns)
    pred = pd.read_csv(study / "validation/grade/predictions.tsv", sep="\t")
    assert list(pred.columns) == ["patient_id", "centre", "stage", "model", "label", "predicted",
                                  "p_G1", "p_G2", "p_G3"]
    assert len(pred) == 3 * 160
    truth = json.loads((study / "synth/ground_truth.json").read_text())
    rad = metrics[(metrics["model"] == "radiomics") & (metrics["centre"] == "pooled")].iloc[0]
    assert rad["auc_lo"] > 0.5, f"grade not learned from the images: {rad.to_dict()}"
    assert rad["auc"] < truth["bayes_grade_macro_auc"] + 0.05
    paired = pd.read_csv(study / "validation/grade/paired_delong.tsv", sep="\t")
    assert len(paired) == 4 * 3 and paired["p_macro_auc"].between(0, 1).all()
    html = (study / "report/index.html").read_text()
    assert "Performance: grade (multi-class: G1, G2, G3)" in html and "confusion matrices" in html


def test_harmonisation_removes_the_centre_and_keeps_the_signal(study):
    d = json.loads((study / "harmonise/diagnostics.json").read_text())
    assert d["centre_auc_before"] > 0.9  # after ComBat (in-fold): tests/test_guardrails_e2e.py
    assert d["kruskal_p_below_0.05_after_all_cases"] < d["kruskal_p_below_0.05_before"] / 2
    assert not any("outcome" in k for k in d), "the label-free diagnostics read no outcome"
    o = json.loads((study / "harmonise/outcome_check.json").read_text())
    before, after = o["train_outcome_auc_nodal_metastasis_before"], o["train_outcome_auc_nodal_metastasis_after"]
    assert abs(after - before) < 0.02
    comp = pd.read_csv(study / "validation/nodal_metastasis/harmonisation_comparison.tsv", sep="\t")
    assert set(comp["harmonisation"]) == {"combat", "none"}
    assert {"cal_intercept", "cal_slope", "brier"} <= set(comp.columns)
    pooled = comp[(comp["centre"] == "pooled") & (comp["model"] == "radiomics")].set_index("harmonisation")
    # the locked threshold transfers better after ComBat: calibration-in-the-large closer to 0
    assert abs(pooled.loc["combat", "cal_intercept"]) < abs(pooled.loc["none", "cal_intercept"])


def test_radiomics_generalises_but_not_beyond_the_bayes_limit(study):
    truth = json.loads((study / "synth/ground_truth.json").read_text())
    metrics = pd.read_csv(study / "validation/nodal_metastasis/metrics.tsv", sep="\t")
    pooled = metrics[(metrics["model"] == "radiomics") & (metrics["centre"] == "pooled")].iloc[0]
    assert pooled["auc_lo"] > 0.55, f"external AUC not clearly above chance: {pooled.to_dict()}"
    assert pooled["auc"] < truth["bayes_auc"]


def test_permuted_labels_give_chance_level_external_auc(study):
    features = pd.read_csv(study / "features/harmonised/train.tsv", sep="\t")
    cohort = pd.read_csv(study / "cohort/C1.tsv", sep="\t")
    df = training_table(features, cohort, "nodal_metastasis")
    df["nodal_metastasis"] = np.random.default_rng(0).permutation(df["nodal_metastasis"].to_numpy())
    cols = [c for c in features.columns if c not in META]
    opts = model_options(outer_folds=5, inner_folds=3)
    fitted, _ = train_binary(df, cols, [{"name": "age", "type": "numeric"}], "nodal_metastasis", opts, 11)
    ext = pd.concat([pd.read_csv(study / f"features/harmonised/external/{c}.tsv", sep="\t") for c in ("C2", "C3")])
    labels = pd.concat([pd.read_csv(study / f"cohort/{c}.tsv", sep="\t") for c in ("C2", "C3")])
    ext = ext.merge(labels[["patient_id", "nodal_metastasis"]], on="patient_id")
    score = fitted["radiomics"]["model"].predict_proba(ext)[:, 1]
    auc, lo, hi = auc_ci(ext["nodal_metastasis"].to_numpy(), score)
    assert lo <= 0.5 <= hi, (auc, lo, hi)


def test_training_does_not_see_external_centres(study, tmp_path):
    """Training artefacts are byte-identical with no external centre at all."""
    alone = copy.deepcopy(STUDY)
    alone["cohort"]["synthetic"].update(centres=1, patients_per_centre=[80])
    alone["design"]["external"] = []
    run_study(alone, tmp_path, targets=[*training_artefacts(study), Path("validation/nodal_metastasis/metrics.tsv")])
    assert_identical(study, root(tmp_path), training_artefacts(study))
    metrics = pd.read_csv(root(tmp_path) / "validation/nodal_metastasis/metrics.tsv", sep="\t")
    assert set(metrics["stage"]) == {"internal"}


@pytest.mark.parametrize("breakage, expected", [
    (lambda s: s.drop(columns=["hpv"]), r"missing column\(s\) \['hpv'\]"),
    (lambda s: s.assign(centre=s["centre"].replace("C3", "C9")), r"design names centre 'C3'"),
    (lambda s: s.assign(mask=s["mask"].where(s.index != 4, "nowhere.nii.gz")),
     r"line 6 \(patient C1-005\), column 'mask': file not found"),
])
def test_bad_sheet_stops_before_any_job(study, tmp_path, breakage, expected):
    sheet = pd.read_csv(study / "synth/cohort.tsv", sep="\t", dtype=str)
    for col in ("image", "mask"):
        sheet[col] = [str(study / "synth" / p) for p in sheet[col]]
    breakage(sheet).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    cfg = copy.deepcopy(STUDY)
    cfg["cohort"]["sheet"] = str(tmp_path / "bad.tsv")
    proc = run_study(cfg, tmp_path, expect_ok=False)
    assert proc.returncode != 0
    import re
    assert re.search(expected, proc.stderr), proc.stderr[-3000:]
    assert not (tmp_path / "results").exists(), "no job may run"
