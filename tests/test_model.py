import json
import pickle

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.endpoints import endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import load_bundle, save_bundle
from mcrad.model.selection import CorrelationFilter
from mcrad.model.train import train_binary, youden_threshold
from mcrad.validate.scoring import score_bundle

CLINICAL = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}]
Y = endpoint({"name": "y", "column": "y"})
OPTS = model_options(outer_folds=3, inner_folds=3, lasso_C=[0.1, 1.0])


def data(n=60, seed=0, centre="T"):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (signal + rng.normal(scale=0.8, size=n) > 0).astype(int)
    feats = {f"CT_tumour_original_firstorder_f{j}": rng.normal(size=n) for j in range(8)}
    feats["CT_tumour_original_firstorder_f0"] = signal + 0.3 * rng.normal(size=n)
    feats["CT_tumour_original_firstorder_copy"] = feats["CT_tumour_original_firstorder_f0"] * 2 + 1e-3
    df = pd.DataFrame({"patient_id": [f"{centre}{i}" for i in range(n)], "centre": centre, **feats,
                       "age": rng.normal(60, 8, n).round(), "sex": rng.choice(["M", "F"], n), "y": y})
    return df


def radiomics_columns(df):
    return [c for c in df.columns if c.startswith("CT_")]


def test_correlation_filter_keeps_the_first_of_a_correlated_pair():
    x = np.random.default_rng(0).normal(size=(50, 3))
    X = np.column_stack([x[:, 0], x[:, 1], 2 * x[:, 0] + 0.01 * x[:, 2]])
    f = CorrelationFilter(0.9).fit(X)
    assert f.keep_.tolist() == [0, 1]
    assert f.transform(X).shape == (50, 2)


def test_youden_threshold_maximises_sensitivity_plus_specificity():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    t = youden_threshold(y, p)
    assert t == 0.7 or t == 0.4
    j = lambda c: ((p >= c) & (y == 1)).sum() / 3 + ((p < c) & (y == 0)).sum() / 3  # noqa: E731
    assert j(t) == max(j(c) for c in p)


@pytest.mark.slow
def test_training_is_deterministic_and_finds_the_signal():
    df = data()
    runs = [train_binary(df, radiomics_columns(df), CLINICAL, "y", OPTS, seed=3) for _ in range(2)]
    for name in ("clinical", "radiomics", "nomogram"):
        assert pickle.dumps(runs[0][0][name]["model"]) == pickle.dumps(runs[1][0][name]["model"])
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])
    selected = runs[0][0]["radiomics"]["info"]["selected_features"]
    assert "CT_tumour_original_firstorder_f0" in selected
    assert "CT_tumour_original_firstorder_copy" not in selected, "removed by the correlation filter"
    internal = runs[0][1]
    assert set(internal["stage"]) == {"internal"} and len(internal) == 3 * len(df)


def test_too_few_events_for_the_folds_is_a_clear_error():
    df = data(n=20)
    df["y"] = 0
    df.loc[:1, "y"] = 1
    with pytest.raises(McradError, match="2 events.*Fix"):
        train_binary(df, radiomics_columns(df), CLINICAL, "y", OPTS, seed=0)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    df = data(n=150)
    fitted, _ = train_binary(df, radiomics_columns(df), CLINICAL, "y", OPTS, seed=0)
    out = tmp_path_factory.mktemp("b") / "nomogram"
    save_bundle(out, "nomogram", fitted["nomogram"], radiomics_columns(df), CLINICAL,
                {"name": "y", "column": "y"}, {"centres": ["T"]})
    return out


def test_bundle_scores_new_data_and_performs(bundle):
    new = data(n=300, seed=9, centre="E")
    scored = score_bundle(bundle, new.drop(columns=["age", "sex", "y"]), new.drop(columns=radiomics_columns(new)), Y)
    assert list(scored.columns) == ["patient_id", "centre", "model", "label", "score"]
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(scored["label"], scored["score"]) > 0.7


def test_bundle_refuses_features_it_was_not_trained_on(bundle):
    new = data(seed=9, centre="E")
    features = new.drop(columns=["age", "sex", "y", "CT_tumour_original_firstorder_f3"])
    with pytest.raises(McradError, match="lack.*firstorder_f3.*Fix"):
        score_bundle(bundle, features, new[["patient_id", "centre", "age", "sex", "y"]], Y)


def test_bundle_refuses_an_unseen_clinical_category(bundle):
    new = data(seed=9, centre="E")
    new.loc[0, "sex"] = "X"
    with pytest.raises(McradError, match="cannot score.*Fix: recode"):
        score_bundle(bundle, new.drop(columns=["age", "sex", "y"]), new.drop(columns=radiomics_columns(new)), Y)


def test_a_changed_bundle_is_refused(bundle, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["threshold"] = 0.01
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(McradError, match="does not match its manifest"):
        load_bundle(copy)
    load_bundle(bundle)  # the original still loads


def test_one_standard_error_rule_prefers_the_sparser_model():
    from mcrad.model.selection import one_standard_error

    res = {"mean_test_score": [0.70, 0.74, 0.75], "std_test_score": [0.05, 0.05, 0.06],
           "param_lasso__C": [0.1, 0.3, 1.0], "split0_test_score": [0] * 3, "split1_test_score": [0] * 3,
           "split2_test_score": [0] * 3, "split3_test_score": [0] * 3}
    # best 0.75, SE = 0.06 / 2 = 0.03: C=0.3 (0.74) is within, C=0.1 (0.70) is not
    assert one_standard_error(res) == 1
    res["mean_test_score"] = [np.nan] * 3
    assert one_standard_error(res) == 0


def brute_force_shapley(f, z: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Interventional Shapley values by enumerating every coalition (exponential: a handful of inputs only)."""
    from itertools import combinations
    from math import factorial

    p = len(z)

    def value(coalition):
        x = background.copy()
        x[:, list(coalition)] = z[list(coalition)]
        return f(x).mean()

    phi = np.zeros(p)
    for j in range(p):
        others = [k for k in range(p) if k != j]
        for size in range(p):
            for s in combinations(others, size):
                weight = factorial(size) * factorial(p - size - 1) / factorial(p)
                phi[j] += weight * (value((*s, j)) - value(s))
    return phi


@pytest.mark.parametrize("name", ["radiomics", "nomogram"])
def test_linear_shap_equals_brute_force_shapley_and_adds_up(name):
    from mcrad.model.explain import linear_design, linear_shap, shap_summary

    df = data(n=80, seed=4)
    weak_penalty = {**OPTS, "lasso_C": [10.0], "nomogram_clinical_p": 1.0}  # several non-zero coefficients
    fitted, _ = train_binary(df, radiomics_columns(df), CLINICAL, "y", weak_penalty, seed=0)
    model = fitted[name]["model"]
    shap = linear_shap(name, model, df)
    names, Z, coef = linear_design(name, model, df)
    keep = coef != 0
    assert keep.sum() >= 2 and shap["feature"].nunique() == keep.sum()

    def linear_predictor(z):
        full = np.zeros((len(z), len(coef)))
        full[:, keep] = z
        return full @ coef

    for i in (0, 7):
        phi = shap[shap["patient_id"] == df["patient_id"][i]].set_index("feature")["shap"]
        expected = brute_force_shapley(linear_predictor, Z[i, keep], Z[:, keep])
        np.testing.assert_allclose(phi.loc[np.asarray(names)[keep]].to_numpy(), expected, atol=1e-10)
    # efficiency: the values add up to the model's log-odds minus its training mean
    logit = np.log(model.predict_proba(df)[:, 1] / model.predict_proba(df)[:, 0])
    total = shap.groupby("patient_id", sort=False)["shap"].sum().loc[df["patient_id"]].to_numpy()
    np.testing.assert_allclose(total, logit - logit.mean(), atol=1e-8)
    summary = shap_summary(shap)
    assert summary["mean_abs_shap"].is_monotonic_decreasing and len(summary) == keep.sum()


def test_mrmr_prefers_relevant_features_that_are_not_redundant():
    from mcrad.model.selection import MRMR

    rng = np.random.default_rng(0)
    n = 300
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + b + 0.5 * rng.normal(size=n) > 0).astype(int)
    X = np.column_stack([a, a + 0.05 * rng.normal(size=n), b, rng.normal(size=n)])  # 1 is a near copy of 0
    sel = MRMR(k=2).fit(X, y)
    assert sorted(sel.keep_.tolist()) in ([0, 2], [1, 2])
    assert sel.transform(X).shape == (n, 2)
    assert MRMR(k=10).fit(X, y).keep_.size == 4  # k larger than the features: all of them, no error


@pytest.mark.slow
@pytest.mark.parametrize("selector, classifier", [("mrmr", "logistic"), ("lasso", "svm"), ("mrmr", "rf")])
def test_selectors_and_classifiers_from_config(selector, classifier):
    df = data(n=90, seed=2)
    opts = {**OPTS, "selector": selector, "classifier": classifier, "mrmr_k": [2, 4], "svm_C": [0.1, 1.0],
            "rf_trees": 25, "rf_max_depth": [2]}
    runs = [train_binary(df, radiomics_columns(df), CLINICAL, "y", opts, seed=1) for _ in range(2)]
    for name in ("radiomics", "nomogram"):
        assert pickle.dumps(runs[0][0][name]["model"]) == pickle.dumps(runs[1][0][name]["model"])
    info = runs[0][0]["radiomics"]["info"]
    assert "CT_tumour_original_firstorder_f0" in info["selected_features"]
    from sklearn.metrics import roc_auc_score
    internal = runs[0][1]
    rad = internal[internal["model"] == "radiomics"]
    assert roc_auc_score(rad["label"], rad["score"]) > 0.7


@pytest.mark.parametrize("classifier", ["svm", "rf"])
def test_a_lasso_penalty_that_zeroes_every_feature_still_scores_in_inner_cv(classifier):
    import warnings

    from mcrad.model.selection import LassoSelector, radiomics_pipeline

    df = data(n=90, seed=2)
    X, y = df[radiomics_columns(df)], df["y"].to_numpy()
    tiny = 1e-4  # strong enough that the L1 logistic zeroes every coefficient
    Z = (X - X.mean()) / X.std()
    assert LassoSelector(C=tiny).fit(Z.drop(columns=X.columns[-1]), y).keep_.tolist() == [0], \
        "the first feature to enter the LASSO path: f0, the signal (the last column is its copy)"
    opts = {**OPTS, "lasso_C": [tiny, 1.0], "selector": "lasso", "classifier": classifier, "svm_C": [1.0],
            "rf_trees": 25, "rf_max_depth": [2]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # sklearn: "One or more of the test scores are non-finite"
        searches = [radiomics_pipeline(opts, seed=1).fit(X, y) for _ in range(2)]
    scores = searches[0].cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, searches[1].cv_results_["mean_test_score"])
    assert pickle.dumps(searches[0].best_estimator_) == pickle.dumps(searches[1].best_estimator_)


def test_nomogram_keeps_the_clinical_predictors_independent_of_the_rad_score():
    """Backward elimination inside the nomogram: a 3-level predictor that carries risk stays (all its levels),
    noise goes; with nomogram_clinical_p 1 every predictor stays."""
    from mcrad.model.nomogram import clinical_groups
    from mcrad.model.train import build_model

    rng = np.random.default_rng(8)
    df = data(n=200, seed=8)
    df["smoking"] = rng.choice(["never", "former", "current"], len(df))
    risk = df["CT_tumour_original_firstorder_f0"] + 1.5 * (df["smoking"] == "current") + rng.normal(0, 0.7, len(df))
    df["y"] = (risk > 0.5).astype(int)
    clinical = [*CLINICAL, {"name": "smoking", "type": "categorical"}]
    nomogram = build_model("nomogram", radiomics_columns(df), clinical, OPTS, seed=0).fit(df, df["y"])
    assert nomogram.kept_clinical_ == ["smoking"]
    assert nomogram.clinical_names() == ["smoking_current", "smoking_former", "smoking_never"]
    groups = clinical_groups(nomogram.clinical_)
    assert {k: v.tolist() for k, v in groups.items()} == {"age": [0], "sex": [1], "smoking": [2, 3, 4]}
    every = build_model("nomogram", radiomics_columns(df), clinical, {**OPTS, "nomogram_clinical_p": 1.0},
                        seed=0).fit(df, df["y"])
    assert every.kept_clinical_ == ["age", "sex", "smoking"] and len(every.logit_.coef_[0]) == 1 + 5
    info = train_binary(df, radiomics_columns(df), clinical, "y", OPTS, seed=0)[0]["nomogram"]["info"]
    assert set(info["coefficients"]) == {"radscore", "smoking_current", "smoking_former", "smoking_never"}
    assert [t["name"] for t in info["scales"]["terms"]] == ["rad-score", "smoking"]
    numeric_only = build_model("nomogram", radiomics_columns(df), CLINICAL[:1], OPTS, seed=0).fit(df, df["y"])
    assert numeric_only.kept_clinical_ in ([], ["age"])  # no categorical predictor: an empty one-hot step


def test_backward_elimination_tests_each_predictor_on_its_degrees_of_freedom():
    from mcrad.model.nomogram import backward_elimination

    cost = {"smoking": 2.5, "age": 0.1}  # log-likelihood lost without each: statistic 5.0 and 0.2

    def loglik(kept):
        return -sum(c for g, c in cost.items() if g not in kept)

    assert backward_elimination(loglik, {"smoking": 1, "age": 1}, 0.05) == ["smoking"]  # p 0.025 with 1 df
    assert backward_elimination(loglik, {"smoking": 2, "age": 1}, 0.05) == []  # p 0.082 with 2 df
    assert backward_elimination(loglik, {"smoking": 2, "age": 1}, 1.0) == ["smoking", "age"]
