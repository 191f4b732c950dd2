"""Multi-class endpoints (grade, stage): multinomial models inside nested CV, locked bundles, macro one-vs-rest and
Hand-Till AUCs against R pROC, per-class metrics, paired tests and the prospective stage."""
import json
import pickle
import subprocess

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.cli import main
from mcrad.endpoints import class_index, endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import save_bundle
from mcrad.model.explain import linear_shap
from mcrad.model.registry import MODELS
from mcrad.model.selection import LassoSelector
from mcrad.model.train import train_multiclass
from mcrad.paths import Paths
from mcrad.prospective import evaluate, predict
from mcrad.stats import delong, delong_paired, hand_till, macro_auc, ovr_influence
from mcrad.validate.metrics import multiclass_metric_row, paired_macro_auc, summarise_multiclass
from mcrad.validate.scoring import score_bundle

CLASSES = ["G1", "G2", "G3"]
CLINICAL = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}]
OPTS = model_options(outer_folds=3, inner_folds=3, lasso_C=[0.1, 1.0])
ENDPOINT = {"name": "grade", "type": "multiclass", "column": "grade", "classes": CLASSES, "ordinal": True}
FEATURES = [f"CT_tumour_original_firstorder_f{j}" for j in range(8)]


def data(n: int, seed: int, centre: str) -> pd.DataFrame:
    """Grade from an ordinal latent of features f0 and f1 (the other features are noise)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    latent = X[:, 0] + 0.7 * X[:, 1] + rng.normal(scale=0.6, size=n)
    grade = np.asarray(CLASSES)[np.searchsorted([-0.6, 0.6], latent)]
    return pd.DataFrame({"patient_id": [f"{centre}-{i:03d}" for i in range(n)], "centre": centre,
                         **dict(zip(FEATURES, X.T, strict=True)), "age": rng.normal(60, 8, n).round(),
                         "sex": rng.choice(["M", "F"], n), "grade": grade})


def proba_table(n: int, seed: int, signal: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0..2 and class probabilities (rows sum to 1, rounded so that ties occur)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + signal * np.eye(3)[y]
    p = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 2)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def trained():
    return train_multiclass(data(120, 0, "T"), FEATURES, CLINICAL, "grade", CLASSES, OPTS, seed=0)


@pytest.fixture(scope="module")
def bundles(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    for name in MODELS:
        save_bundle(out / name, name, trained[0][name], FEATURES, CLINICAL, ENDPOINT, {"centres": ["T"]})
    return [out / name for name in MODELS]


@pytest.mark.slow
def test_multinomial_models_are_deterministic_and_find_the_signal(trained):
    fitted, internal = trained
    again, _ = train_multiclass(data(120, 0, "T"), FEATURES, CLINICAL, "grade", CLASSES, OPTS, seed=0)
    for name in MODELS:
        assert pickle.dumps(fitted[name]["model"]) == pickle.dumps(again[name]["model"])
        assert fitted[name]["threshold"] is None  # the locked decision is the most probable class
    assert list(internal.columns) == ["patient_id", "centre", "stage", "model", "label", "predicted",
                                      "p_G1", "p_G2", "p_G3"]
    proba = internal[["p_G1", "p_G2", "p_G3"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (internal["predicted"] == np.asarray(CLASSES)[proba.argmax(axis=1)]).all()
    metrics = summarise_multiclass(internal, CLASSES, 0.05, ordinal=True).set_index("model")
    assert metrics.loc["radiomics", "auc"] > 0.75 and metrics.loc["nomogram", "auc"] > 0.75
    assert metrics.loc["radiomics", "auc_lo"] > 0.6
    assert 0.35 < metrics.loc["clinical", "auc"] < 0.65  # age and sex carry no information on grade
    selected = fitted["radiomics"]["info"]["selected_features"]
    assert FEATURES[0] in selected and set(selected[FEATURES[0]]) == set(CLASSES)
    assert selected[FEATURES[0]]["G3"] > 0 > selected[FEATURES[0]]["G1"], "f0 raises the grade"
    coefficients = fitted["nomogram"]["info"]["coefficients"]
    assert set(coefficients) == {"radscore_G2", "radscore_G3"}  # age and sex: noise, left out of the nomogram
    assert all(set(w) == set(CLASSES) for w in coefficients.values())


@pytest.mark.slow
@pytest.mark.parametrize("selector, classifier", [("mrmr", "svm"), ("lasso", "rf"), ("mrmr", "logistic")])
def test_selectors_and_classifiers_take_several_classes(selector, classifier):
    opts = {**OPTS, "selector": selector, "classifier": classifier, "mrmr_k": [2, 4], "svm_C": [0.1, 1.0],
            "rf_trees": 25, "rf_max_depth": [2]}
    fitted, internal = train_multiclass(data(120, 1, "T"), FEATURES, CLINICAL, "grade", CLASSES, opts, seed=1)
    rad = internal[internal["model"] == "radiomics"]
    assert summarise_multiclass(rad, CLASSES, 0.05)["auc"].iloc[0] > 0.7
    weights = fitted["radiomics"]["info"]["selected_features"]
    expected = {"svm": {"G1 vs G2", "G1 vs G3", "G2 vs G3"}, "logistic": set(CLASSES)}.get(classifier)
    if expected:  # linear: a weight per class (multinomial) or per pair of classes (SVM one-vs-one)
        assert all(set(w) == expected for w in weights.values())
    else:  # random forest: one impurity importance per feature
        assert all(isinstance(w, float) for w in weights.values())


def test_lasso_selector_keeps_the_first_feature_of_the_multinomial_path():
    df = data(120, 2, "T")
    X = df[FEATURES].to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = class_index(df["grade"], CLASSES, df["patient_id"], "test")
    assert LassoSelector(C=1e-4).fit(X, y).keep_.tolist() == [0], "f0, the strongest signal, enters first"
    assert 0 in LassoSelector(C=1.0).fit(X, y).keep_


def test_labels_outside_the_classes_are_refused_naming_the_patient():
    df = data(30, 3, "T")
    df.loc[4, "grade"] = "G4"
    with pytest.raises(McradError, match=r"T-004 \('G4'\).*classes \['G1', 'G2', 'G3'\]"):
        class_index(df["grade"], CLASSES, df["patient_id"], "training centre")
    numbers = pd.Series([1, 2.0, "3"])  # a TSV cell read back as a number is the class written in the config
    assert class_index(numbers, ["1", "2", "3"], pd.Series(["a", "b", "c"]), "x").tolist() == [0, 1, 2]


def test_too_few_patients_in_a_class_is_a_clear_error():
    df = data(60, 4, "T")
    df["grade"] = np.where(np.arange(60) < 2, "G3", np.where(np.arange(60) % 2, "G1", "G2"))
    with pytest.raises(McradError, match=r"'G3': 2.*at least 3 of each"):
        train_multiclass(df, FEATURES, CLINICAL, "grade", CLASSES, OPTS, seed=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_hand_till_and_one_vs_rest_delong_equal_proc(rscript, tmp_path, seed):
    y, p = proba_table(90, seed)
    d = pd.DataFrame({"label": np.asarray(CLASSES)[y], **{f"p_{c}": p[:, k] for k, c in enumerate(CLASSES)}})
    d.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    subprocess.run([rscript, "tests/r/multiclass.R", tmp_path / "in.tsv", tmp_path / "out.tsv"], check=True)
    ref = pd.read_csv(tmp_path / "out.tsv", sep="\t", skipinitialspace=True).set_index("class")
    assert hand_till(y, p) == pytest.approx(ref.loc["hand_till", "auc"], abs=1e-9)
    row = multiclass_metric_row(d.assign(patient_id=[str(i) for i in range(90)]), CLASSES, 0.05, ordinal=False)
    assert row["hand_till"] == pytest.approx(ref.loc["hand_till", "auc"], abs=1e-9)
    for c in CLASSES:
        assert row[f"auc_{c}"] == pytest.approx(ref.loc[c, "auc"], abs=1e-9)
        assert row[f"auc_{c}_lo"] == pytest.approx(ref.loc[c, "lo"], abs=1e-6)
        assert row[f"auc_{c}_hi"] == pytest.approx(ref.loc[c, "hi"], abs=1e-6)


def test_delong_influences_reproduce_delong_for_one_class_and_one_pair():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 70)
    a, b = np.round(rng.normal(y, 1.0), 1), rng.normal(0.5 * y, 1.0)
    auc, psi = ovr_influence(y, a)
    assert auc == delong(y, a)[0]
    assert np.sum(psi ** 2) == pytest.approx(delong(y, a)[1], rel=1e-12)
    _, psi_b = ovr_influence(y, b)
    diff, p = delong_paired(y, a, b)
    z = diff / np.sqrt(np.sum((psi - psi_b) ** 2))
    assert 2 * __import__("scipy").stats.norm.sf(abs(z)) == pytest.approx(p, rel=1e-10)


def test_macro_auc_interval_matches_the_bootstrap():
    """The DeLong-influence standard error of the macro AUC (class AUCs' covariance included) against 2000
    bootstrap resamples of the patients."""
    y, p = proba_table(300, 7, signal=0.8)
    auc, psi, present = macro_auc(y, p)
    assert present == [0, 1, 2]
    from sklearn.metrics import roc_auc_score
    assert auc == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=1e-12)
    rng = np.random.default_rng(0)
    boot = [macro_auc(y[i], p[i])[0] for i in (rng.integers(0, 300, 300) for _ in range(2000))]
    assert np.sqrt(np.sum(psi ** 2)) == pytest.approx(np.std(boot), rel=0.1)


def test_metric_row_accuracy_kappa_brier_and_an_absent_class():
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    y, p = proba_table(120, 3)
    pred = pd.DataFrame({"patient_id": [str(i) for i in range(120)], "label": np.asarray(CLASSES)[y],
                         **{f"p_{c}": p[:, k] for k, c in enumerate(CLASSES)}})
    row = multiclass_metric_row(pred, CLASSES, 0.05, ordinal=True)
    called = p.argmax(axis=1)
    assert row["accuracy"] == pytest.approx((called == y).mean())
    assert row["acc_lo"] < row["accuracy"] < row["acc_hi"]
    assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, called))
    assert row["kappa"] == pytest.approx(cohen_kappa_score(y, called, weights="quadratic"))
    assert row["brier"] == pytest.approx(np.mean(np.sum((p - np.eye(3)[y]) ** 2, axis=1)))
    assert row["sens_G2"] == pytest.approx(((called == 1) & (y == 1)).sum() / (y == 1).sum())
    assert row["ppv_G2"] == pytest.approx(((called == 1) & (y == 1)).sum() / (called == 1).sum())
    assert (row["n_G1"], row["n_G2"], row["n_G3"]) == tuple(np.bincount(y)) and row["note"] == ""
    without_g3 = multiclass_metric_row(pred[y != 2], CLASSES, 0.05, ordinal=True)
    assert np.isnan(without_g3["auc_G3"]) and "['G3'] absent" in without_g3["note"]
    assert np.isfinite(without_g3["auc"])  # macro over the classes present
    one_g3 = pred[(y != 2) | (np.arange(120) == np.flatnonzero(y == 2)[0])]
    single = multiclass_metric_row(one_g3, CLASSES, 0.05, ordinal=True)
    assert np.isfinite(single["auc"]) and np.isnan(single["auc_lo"]) and np.isnan(single["auc_G3_lo"])
    assert single["note"] == "class(es) ['G3'] with one patient: no interval"


def test_paired_macro_auc_tests_per_centre_and_pooled(trained, bundles):
    _, internal = trained
    ext = pd.concat([data(60, 8, "E1"), data(60, 9, "E2")], ignore_index=True)
    scored = pd.concat([score_bundle(b, ext[["patient_id", "centre", *FEATURES]], ext.drop(columns=FEATURES),
                                     endpoint(ENDPOINT)).assign(stage="external") for b in bundles], ignore_index=True)
    paired = paired_macro_auc(pd.concat([internal, scored], ignore_index=True), CLASSES)
    assert set(paired["centre"]) == {"T", "E1", "E2", "pooled"} and len(paired) == 4 * 3
    pooled = paired[(paired["centre"] == "pooled") & (paired["model_a"] == "clinical")
                    & (paired["model_b"] == "radiomics")].iloc[0]
    assert pooled["n"] == 120 and pooled["auc_difference"] < 0 and pooled["p_macro_auc"] < 0.01


def test_prospective_scores_without_labels_and_evaluates_later(bundles):
    new = pd.concat([data(60, 10, "P1"), data(50, 11, "P2")], ignore_index=True)
    features, clinical = new[["patient_id", "centre", *FEATURES]], new[["patient_id", "age", "sex"]]
    out = predict(bundles, features, clinical)
    assert list(out.columns) == ["patient_id", "centre", "stage", "model", "predicted", "p_G1", "p_G2", "p_G3"]
    assert len(out) == 3 * 110
    shuffled = new.drop(columns=FEATURES).assign(grade=np.random.default_rng(0).permutation(new["grade"]))
    pd.testing.assert_frame_equal(out, predict(bundles, features, shuffled))
    metrics, paired = evaluate(out, new.drop(columns=FEATURES), endpoint(ENDPOINT), 0.05)
    assert set(zip(metrics["model"], metrics["centre"], strict=True)) == {
        (m, c) for m in MODELS for c in ("P1", "P2", "pooled")}
    assert set(metrics["stage"]) == {"prospective"} == set(paired["stage"])
    rad = metrics[(metrics["model"] == "radiomics") & (metrics["centre"] == "pooled")].iloc[0]
    assert rad["auc_lo"] > 0.6 and rad["n"] == 110
    with pytest.raises(McradError, match=r"lacks column\(s\) \['p_G3'\]"):
        evaluate(out.drop(columns=["p_G3"]), new, endpoint(ENDPOINT), 0.05)


def test_shap_of_the_multinomial_models_adds_up_per_class(trained):
    fitted, _ = trained
    df = data(120, 0, "T")
    for name in ("radiomics", "nomogram"):
        shap = linear_shap(name, fitted[name]["model"], df, CLASSES)
        assert set(shap["class"]) <= set(CLASSES) and len(shap)
        model = fitted[name]["model"]
        if name == "radiomics":
            pipe = model.named_steps["model"]
            lp = pipe.decision_function(df[model.named_steps["select"].columns])
        else:
            lp = model.logit_.decision_function(model._design(model.radscore(df), df))
        for k, c in enumerate(CLASSES):  # SHAP values of a class sum to its linear predictor minus the mean
            total = shap[shap["class"] == c].groupby("patient_id", sort=False)["shap"].sum()
            expected = pd.Series(lp[:, k] - lp[:, k].mean(), index=df["patient_id"])
            np.testing.assert_allclose(total.reindex(df["patient_id"]).fillna(0.0), expected, atol=1e-9)


@pytest.mark.slow
def test_train_validate_and_report_tables_from_the_command_line(tmp_path):
    train, ext = data(90, 12, "C1"), data(40, 13, "C2")
    for name, df in (("train", train), ("ext", ext)):
        df[["patient_id", "centre", *FEATURES]].to_csv(tmp_path / f"f_{name}.tsv", sep="\t", index=False)
        df.drop(columns=FEATURES).to_csv(tmp_path / f"c_{name}.tsv", sep="\t", index=False)
    model = {**OPTS, "selector": "lasso", "classifier": "logistic"}
    cfg = json.dumps({"study": {"seed": 0}, "design": {"train": ["C1"]}, "endpoints": [ENDPOINT],
                      "cohort": {"clinical": CLINICAL}, "model": model,
                      "validate": {"alpha": 0.05, "permutations": 200}})
    assert main(["train", "--config", cfg, "--endpoint", "grade", "--features", str(tmp_path / "f_train.tsv"),
                 "--cohort", str(tmp_path / "c_train.tsv"), "--out-dir", str(tmp_path / "models"),
                 "--internal", str(tmp_path / "internal.tsv")]) == 0
    meta = json.loads((tmp_path / "models/radiomics/meta.json").read_text())
    assert meta["threshold"] is None and meta["training"]["per_class"] == train["grade"].value_counts().to_dict()
    results = Paths(tmp_path / "results")
    assert main(["validate", "--config", cfg, "--endpoint", "grade", "--models-dir", str(tmp_path / "models"),
                 "--models", *MODELS, "--internal", str(tmp_path / "internal.tsv"),
                 "--features", str(tmp_path / "f_ext.tsv"), "--cohort", str(tmp_path / "c_ext.tsv"),
                 "--root", str(results.root)]) == 0
    metrics = pd.read_csv(results.metrics("grade"), sep="\t")
    assert set(zip(metrics["model"], metrics["centre"], metrics["stage"], strict=True)) == {
        (m, c, s) for m in MODELS for c, s in (("C1", "internal"), ("C2", "external"))}
    assert {"auc", "auc_lo", "auc_hi", "hand_till", "kappa", "auc_G2_lo", "sens_G3", "ppv_G1_hi"} <= set(metrics)
    assert len(pd.read_csv(results.paired("grade"), sep="\t")) == 2 * 3
    confusion = pd.read_csv(results.curves("grade", "confusion"), sep="\t")  # the table the report draws
    assert set(confusion["model"]) == set(MODELS)
