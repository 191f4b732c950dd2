"""Survival endpoints: penalised Cox models, locked risk groups, C-index and time-dependent AUC."""
import pickle

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.endpoints import endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import load_bundle, save_bundle
from mcrad.model.survival import train_survival
from mcrad.stats import concordance, ipcw_weights, td_auc
from mcrad.validate.metrics import summarise_survival
from mcrad.validate.scoring import score_bundle
from sklearn.metrics import roc_auc_score

CLINICAL = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}]
OPTS = model_options(outer_folds=3, inner_folds=3, cox_penalizer=[0.1, 1.0], cox_l1_ratio=[0.0], cox_max_features=5)
ENDPOINT = {"name": "os", "type": "survival", "column": "os_event", "time": "os_months", "times": [12, 24]}


def cohort(n=90, seed=0, centre="T"):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    feats = {f"CT_tumour_original_firstorder_f{j}": rng.normal(size=n) for j in range(12)}
    feats["CT_tumour_original_firstorder_f0"] = signal + 0.2 * rng.normal(size=n)
    feats["CT_tumour_original_firstorder_copy"] = 2 * feats["CT_tumour_original_firstorder_f0"] + 1e-3
    t = rng.exponential(20 * np.exp(-1.4 * signal))
    c = rng.uniform(12, 48, n)
    return pd.DataFrame({"patient_id": [f"{centre}{i}" for i in range(n)], "centre": centre, **feats,
                         "age": rng.normal(60, 8, n).round(), "sex": rng.choice(["M", "F"], n),
                         "os_months": np.minimum(t, c).round(2), "os_event": (t <= c).astype(int)})


def radiomics_columns(df):
    return [c for c in df.columns if c.startswith("CT_")]


def test_concordance_equals_lifelines_without_ties():
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(1)
    t, e, r = rng.exponential(10, 200), rng.integers(0, 2, 200), rng.normal(size=200)
    # lifelines scores a prediction of survival time: the negated risk
    assert concordance(t, e, r)[0] == pytest.approx(concordance_index(t, -r, e), abs=1e-12)


def test_ipcw_weights_are_the_inverse_left_limit_of_the_censoring_km():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(2)
    t, e = rng.exponential(10, 60).round(1), rng.integers(0, 2, 60)
    km = KaplanMeierFitter().fit(t, 1 - e)
    expected = [1 / km.survival_function_at_times(x - 1e-9).iloc[0] for x in t]
    np.testing.assert_allclose(ipcw_weights(t, e), expected, rtol=1e-12)


def test_td_auc_without_censoring_is_the_auc_of_event_by_the_horizon():
    rng = np.random.default_rng(3)
    r = rng.normal(size=300)
    t = rng.exponential(10 * np.exp(-r))
    e = np.ones(300, int)
    assert td_auc(t, e, r, 8.0) == pytest.approx(roc_auc_score(t <= 8.0, r), abs=1e-12)
    assert np.isnan(td_auc(t, e, r, 1e9))  # nobody event-free after the horizon


def test_td_auc_corrects_for_censoring():
    rng = np.random.default_rng(4)
    n, horizon = 6000, 6.0
    r = rng.normal(size=n)
    t = rng.exponential(10 * np.exp(-r))
    truth = roc_auc_score(t <= horizon, r)
    c = rng.exponential(8, n)  # heavy, independent censoring
    time, event = np.minimum(t, c), (t <= c).astype(int)
    assert td_auc(time, event, r, horizon) == pytest.approx(truth, abs=0.015)


@pytest.fixture(scope="module")
def trained():
    df = cohort()
    return df, train_survival(df, radiomics_columns(df), CLINICAL, "os_months", "os_event", OPTS, seed=5)


@pytest.mark.slow
def test_survival_training_is_deterministic_and_finds_the_signal(trained):
    df, (fitted, internal) = trained
    again, internal2 = train_survival(df, radiomics_columns(df), CLINICAL, "os_months", "os_event", OPTS, seed=5)
    for name in ("clinical", "radiomics", "nomogram"):
        assert pickle.dumps(fitted[name]["model"]) == pickle.dumps(again[name]["model"])
    pd.testing.assert_frame_equal(internal, internal2)
    selected = fitted["radiomics"]["info"]["selected_features"]
    assert "CT_tumour_original_firstorder_f0" in selected
    assert "CT_tumour_original_firstorder_copy" not in selected, "removed by the correlation filter"
    assert set(internal["stage"]) == {"internal"} and len(internal) == 3 * len(df)
    rad = internal[internal["model"] == "radiomics"]
    assert concordance(rad["time"], rad["label"], rad["score"])[0] > 0.7  # out-of-fold


def test_risk_cut_is_the_median_training_risk(trained):
    df, (fitted, _) = trained
    for name in ("clinical", "radiomics", "nomogram"):
        risk = fitted[name]["model"].decision_function(df)
        assert fitted[name]["threshold"] == pytest.approx(np.median(risk), abs=1e-12)


def test_locked_survival_bundle_scores_an_external_centre(trained, tmp_path):
    df, (fitted, internal) = trained
    save_bundle(tmp_path / "radiomics", "radiomics", fitted["radiomics"], radiomics_columns(df), CLINICAL,
                ENDPOINT, {"centres": ["T"]})
    _, meta = load_bundle(tmp_path / "radiomics")
    new = cohort(n=400, seed=8, centre="E")
    scored = score_bundle(tmp_path / "radiomics", new[["patient_id", "centre", *radiomics_columns(new)]],
                          new.drop(columns=radiomics_columns(new)), endpoint(ENDPOINT))
    assert list(scored.columns) == ["patient_id", "centre", "model", "label", "time", "score"]
    pred = pd.concat([internal[internal["model"] == "radiomics"], scored.assign(stage="external")])
    out = summarise_survival(pred, {"radiomics": meta["threshold"]}, 0.05, [12, 24]).set_index("stage")
    ext = out.loc["external"]
    assert ext["n"] == 400 and ext["c_lo"] < ext["c_index"] < ext["c_hi"] and ext["c_index"] > 0.7
    assert ext["logrank_p"] < 1e-3 and ext["events_high"] > ext["events_low"]
    assert 0.6 < ext["td_auc_12"] < 1 and 0.6 < ext["td_auc_24"] < 1


def test_paired_c_index_tests_cover_every_model_pair_per_centre_and_pooled(trained):
    from mcrad.stats import concordance_paired
    from mcrad.validate.metrics import paired_concordance

    df, (fitted, internal) = trained
    ext = []
    for centre, seed in (("E1", 8), ("E2", 9)):
        new = cohort(n=120, seed=seed, centre=centre)
        for name in ("clinical", "radiomics", "nomogram"):
            ext.append(pd.DataFrame({"patient_id": new["patient_id"], "centre": centre, "stage": "external",
                                     "model": name, "label": new["os_event"], "time": new["os_months"],
                                     "score": fitted[name]["model"].decision_function(new)}))
    pred = pd.concat([internal, *ext], ignore_index=True)
    out = paired_concordance(pred)
    assert list(out.columns) == ["centre", "stage", "model_a", "model_b", "n", "events", "c_difference",
                                 "p_concordance"]
    assert set(zip(out["centre"], out["model_a"], out["model_b"], strict=True)) == {
        (c, a, b) for c in ("T", "E1", "E2", "pooled")
        for a, b in (("clinical", "radiomics"), ("clinical", "nomogram"), ("radiomics", "nomogram"))}
    pooled = out[(out["centre"] == "pooled") & (out["model_a"] == "clinical") & (out["model_b"] == "radiomics")]
    both = pd.concat(ext)
    wide = both.pivot_table(index="patient_id", columns="model", values="score")
    first = both.groupby("patient_id")[["time", "label"]].first().loc[wide.index]
    diff, p = concordance_paired(first["time"], first["label"], wide["clinical"], wide["radiomics"])
    assert pooled["n"].item() == 240 and pooled["c_difference"].item() == pytest.approx(diff, abs=1e-12)
    assert diff < 0 and p < 1e-3, "the radiomics signal beats age and sex"
    # swapping the models flips the sign and keeps the p-value
    assert concordance_paired(first["time"], first["label"], wide["radiomics"], wide["clinical"]) == \
        pytest.approx((-diff, p), abs=1e-12)


def test_survival_nomogram_rad_scores_choose_the_penalty_within_each_fold():
    from mcrad.model.survival import CoxModel, CoxSearch, build_survival_model, survival_splits

    opts = {**OPTS, "cox_penalizer": [0.01, 0.1, 1.0]}
    df = cohort(seed=0)
    y = np.column_stack([df["os_months"], df["os_event"]]).astype(float)
    Xr = df[radiomics_columns(df)]
    nomogram = build_survival_model("nomogram", radiomics_columns(df), CLINICAL, opts, seed=5).fit(df, y)
    oof, chosen = np.empty(len(y)), []
    for train, test in survival_splits(y, opts["inner_folds"], 5):
        search = CoxSearch(opts, 5).fit(Xr.iloc[train], y[train])
        oof[test] = search.decision_function(Xr.iloc[test])
        chosen.append(search.best_params_["penalizer"])
    assert set(chosen) != {nomogram.radiomics_.best_params_["penalizer"]}, "folds choose another penalty here"
    design = nomogram._design(oof, df)  # the rad-score and the clinical predictors the elimination kept
    np.testing.assert_allclose(nomogram.cox_.coef_, CoxModel(0.01).fit(design, y).coef_, rtol=1e-10, atol=1e-12)


def test_prospective_survival_evaluation_compares_the_models_pairwise(trained):
    from mcrad.prospective import evaluate
    from mcrad.validate.metrics import paired_concordance

    df, (fitted, _) = trained
    new = cohort(n=150, seed=12, centre="P")
    pred = pd.concat([pd.DataFrame({"patient_id": new["patient_id"], "centre": "P", "stage": "prospective",
                                    "model": name, "score": fitted[name]["model"].decision_function(new),
                                    "threshold": fitted[name]["threshold"]})
                      for name in ("clinical", "radiomics", "nomogram")], ignore_index=True)
    _, paired = evaluate(pred, new[["patient_id", "os_event", "os_months"]], endpoint(ENDPOINT), 0.05)
    ref = paired_concordance(pred.merge(new[["patient_id", "os_event", "os_months"]]).rename(
        columns={"os_event": "label", "os_months": "time"}).assign(stage="external"))
    assert len(paired) == 3 and set(paired["stage"]) == {"prospective"}
    pd.testing.assert_frame_equal(paired.drop(columns="stage"), ref.drop(columns="stage"))


def test_too_few_events_for_the_folds_is_a_clear_error():
    df = cohort(n=30)
    df["os_event"] = 0
    df.loc[:1, "os_event"] = 1
    with pytest.raises(McradError, match="2 events.*Fix"):
        train_survival(df, radiomics_columns(df), CLINICAL, "os_months", "os_event", OPTS, seed=0)


@pytest.mark.parametrize("name", ["radiomics", "nomogram"])
def test_shap_of_cox_models_adds_up_to_the_log_hazard(trained, name):
    from mcrad.model.explain import linear_shap

    df, (fitted, _) = trained
    model = fitted[name]["model"]
    shap = linear_shap(name, model, df)
    risk = model.decision_function(df)
    total = shap.groupby("patient_id", sort=False)["shap"].sum().loc[df["patient_id"]].to_numpy()
    np.testing.assert_allclose(total, risk - risk.mean(), atol=1e-8)
    if name == "nomogram":
        assert set(shap["feature"]) == {"rad-score", *model.clinical_names()}  # age and sex: noise, dropped


def test_survival_endpoint_needs_a_time_column(demo_config):
    from mcrad.config import load_config
    from mcrad.errors import ConfigError

    demo_config["endpoints"] = [{"name": "os", "type": "survival", "column": "os_event"}]
    with pytest.raises(ConfigError, match="survival endpoint needs `time`"):
        load_config(demo_config)
    demo_config["endpoints"][0]["time"] = "os_months"
    assert load_config(demo_config)["endpoints"][0]["times"] == []


def test_survival_nomogram_keeps_a_clinical_predictor_that_carries_hazard():
    from mcrad.model.survival import build_survival_model

    df = cohort(n=200, seed=3)
    rng = np.random.default_rng(3)
    hazard = np.exp(-1.4 * df["CT_tumour_original_firstorder_f0"] + 0.08 * (df["age"] - 60))
    t, c = rng.exponential(20 / hazard), rng.uniform(12, 48, len(df))
    df["os_months"], df["os_event"] = np.minimum(t, c).round(2), (t <= c).astype(int)
    y = df[["os_months", "os_event"]].to_numpy(float)
    nomogram = build_survival_model("nomogram", radiomics_columns(df), CLINICAL, OPTS, seed=0).fit(df, y)
    assert nomogram.kept_clinical_ == ["age"] and nomogram.clinical_names() == ["age"]
    assert nomogram.cox_.coef_[1] > 0, "older: higher hazard"
