"""Permutation nulls: the vectorised permuted statistics (against their scalar definitions and exact permutation
distributions from scipy), the external permutation p in metrics.tsv, and the y-randomisation of stage 1 (a
leaky pipeline is caught; the real one centres on chance)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.endpoints import endpoint
from mcrad.model.nulls import (
    shuffled_outcomes,
    stage1_pipeline,
    summarise_null,
    y_randomisation,
    y_randomisation_gather,
)
from mcrad.stats import (
    concordance,
    delong,
    macro_auc,
    permutation_indices,
    permutation_p,
    permuted_auc,
    permuted_concordance,
    permuted_macro_auc,
    univariate_auc,
)
from mcrad.validate.metrics import summarise_binary
from mcrad.validate.permutation import with_permutation_p
from scipy import stats as sps

BINARY = endpoint({"name": "y", "column": "y"})
GRADE = endpoint({"name": "g", "type": "multiclass", "column": "g", "classes": ["G1", "G2", "G3"]})
OS = endpoint({"name": "os", "type": "survival", "column": "event", "time": "months"})


# ---- the statistics ---------------------------------------------------------------------------------------------
def test_permutation_indices_move_rows_only_within_their_group():
    groups = np.array(["a", "b", "a", "c", "b", "a"])
    index = permutation_indices(groups, 200, np.random.default_rng(0))
    assert index.shape == (200, 6)
    assert (np.sort(index, axis=1) == np.arange(6)).all(), "each row is a permutation"
    assert (groups[index] == groups).all(), "a row's outcome comes from its own group"
    assert len({tuple(r) for r in index}) > 1


@pytest.mark.parametrize("seed", range(3))
def test_permuted_auc_equals_delong_on_each_permuted_label_vector(seed):
    rng = np.random.default_rng(seed)
    y, score = rng.integers(0, 2, 30), rng.integers(0, 6, 30).astype(float)  # ties in the score
    index = permutation_indices(np.zeros(30), 25, rng)
    expected = [delong(y[row], score)[0] for row in index]
    np.testing.assert_allclose(permuted_auc(y, score, index), expected, rtol=0, atol=1e-12)
    assert np.isnan(permuted_auc(np.zeros(5), np.arange(5.0), np.arange(5))).all(), "one class: undefined"


def test_permuted_macro_auc_equals_macro_auc_on_each_permutation():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 40)
    proba = rng.dirichlet(np.ones(3), 40)
    index = permutation_indices(np.zeros(40), 20, rng)
    expected = [macro_auc(y[row], proba)[0] for row in index]
    np.testing.assert_allclose(permuted_macro_auc(y, proba, index), expected, atol=1e-12)


def test_permuted_concordance_moves_time_and_event_together_as_concordance_defines_c():
    rng = np.random.default_rng(2)
    time = rng.integers(1, 15, 35).astype(float)  # tied times, censored ties among them
    event, risk = rng.integers(0, 2, 35), rng.integers(0, 5, 35).astype(float)
    index = permutation_indices(np.zeros(35), 30, rng)
    expected = [concordance(time[row], event[row], risk)[0] for row in index]
    np.testing.assert_allclose(permuted_concordance(time, event, risk, index, cells=3000), expected, atol=1e-12)


def test_permutation_p_counts_ties_and_is_never_zero():
    assert permutation_p(0.7, np.array([0.5, 0.7, 0.9, 0.6])) == 3 / 5
    assert permutation_p(0.99, np.full(1999, 0.5)) == 1 / 2000
    assert np.isnan(permutation_p(np.nan, np.array([0.5])))


def test_permutation_p_of_the_auc_matches_the_exact_mann_whitney_distribution():
    """The AUC is U / (m n): its permutation p converges to scipy's exact Mann-Whitney p (no ties), within Monte
    Carlo error."""
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(7, int), np.zeros(8, int)]
    score = rng.normal(size=15) + 0.8 * y
    k = 20000
    null = permuted_auc(y, score, permutation_indices(np.zeros(15), k, rng))
    p = permutation_p(delong(y, score)[0], null)
    exact = sps.mannwhitneyu(score[y == 1], score[y == 0], alternative="greater", method="exact").pvalue
    assert 0.005 < exact < 0.5
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / k) + 1 / k, (p, exact)


def test_permutation_p_of_the_c_index_matches_the_exact_kendall_distribution():
    """With every patient an event and distinct times, Harrell's C is (1 - tau(risk, time)) / 2: its permutation p
    is scipy's exact one-sided Kendall p."""
    rng = np.random.default_rng(4)
    time = rng.permutation(np.arange(1.0, 13.0))
    risk = -time + rng.normal(scale=4, size=12)
    k = 20000
    null = permuted_concordance(time, np.ones(12, int), risk, permutation_indices(np.zeros(12), k, rng))
    p = permutation_p(concordance(time, np.ones(12), risk)[0], null)
    exact = sps.kendalltau(risk, time, method="exact", alternative="less").pvalue
    assert 0.005 < exact < 0.5
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / k) + 1 / k, (p, exact)


# ---- p_permutation in metrics.tsv -------------------------------------------------------------------------------
def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for centre, stage, n, signal in (("T", "internal", 40, 1.0), ("E1", "external", 30, 1.5), ("E2", "external",
                                                                                               25, 0.0)):
        y = rng.integers(0, 2, n)
        for model, weight in (("good", 1.0), ("noise", 0.0)):
            score = 1 / (1 + np.exp(-(weight * signal * (2 * y - 1) + rng.normal(size=n))))
            rows.append(pd.DataFrame({"patient_id": [f"{centre}{i}" for i in range(n)], "centre": centre,
                                      "stage": stage, "model": model, "label": y, "score": score}))
    return pd.concat(rows, ignore_index=True)


def test_p_permutation_is_filled_on_external_and_pooled_rows_only():
    pred = _predictions()
    metrics = summarise_binary(pred, {"good": 0.5, "noise": 0.5}, 0.05)
    out = with_permutation_p(metrics, pred, BINARY, 999, seed=5)
    assert list(out.columns).index("p_permutation") == list(out.columns).index("auc_hi") + 1
    rows = out.set_index(["model", "centre"])
    assert rows.loc[("good", "T"), "p_permutation"] != rows.loc[("good", "T"), "p_permutation"], "internal: empty"
    assert rows.loc[("good", "E1"), "p_permutation"] == 1 / 1000, "strong signal: the smallest p"
    assert rows.loc[("good", "pooled"), "p_permutation"] < 0.01
    assert 0.05 < rows.loc[("noise", "E1"), "p_permutation"] <= 1
    again = with_permutation_p(metrics, pred, BINARY, 999, seed=5)
    pd.testing.assert_frame_equal(out, again)
    assert with_permutation_p(metrics, pred, BINARY, 0, seed=5)["p_permutation"].isna().all()


def test_p_permutation_of_a_survival_endpoint_tests_the_c_index():
    rng = np.random.default_rng(6)
    n = 50
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk)) * 20
    pred = pd.DataFrame({"patient_id": range(n), "centre": "E", "stage": "external", "model": "cox",
                         "label": (rng.random(n) < 0.7).astype(int), "time": time, "score": risk})
    metrics = pd.DataFrame({"model": ["cox"], "centre": ["E"], "stage": ["external"], "c_index": [0.7],
                            "c_lo": [0.6], "c_hi": [0.8]})
    out = with_permutation_p(metrics, pred, OS, 500, seed=1)
    assert list(out.columns)[-1] == "p_permutation" and out["p_permutation"].iloc[0] < 0.01


# ---- y-randomisation ----------------------------------------------------------------------------------------------
def test_shuffled_outcomes_move_time_and_event_together_and_nothing_else():
    df = pd.DataFrame({"patient_id": list("abcdef"), "x": np.arange(6.0), "event": [1, 0, 1, 1, 0, 0],
                       "months": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    out = shuffled_outcomes(df, OS.outcome_columns, np.random.default_rng(0))
    assert list(out["patient_id"]) == list(df["patient_id"]) and list(out["x"]) == list(df["x"])
    assert set(zip(out["event"], out["months"], strict=True)) == set(zip(df["event"], df["months"], strict=True))
    assert list(out["months"]) != list(df["months"])


def test_summary_flags_a_null_away_from_chance_and_gives_the_empirical_p():
    null = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "permutation": [0, 1, 2, 3] * 2,
                         "statistic": [0.45, 0.5, 0.55, 0.5, 0.7, 0.75, 0.65, np.nan]})
    s = summarise_null(null, {"a": 0.8, "b": 0.7}, "auc", tolerance=0.05).set_index("model")
    assert s.loc["a", "k"] == 4 and s.loc["a", "null_mean"] == pytest.approx(0.5) and not s.loc["a", "flagged"]
    assert s.loc["a", "p_empirical"] == pytest.approx(1 / 5)
    assert s.loc["b", "k"] == 3 and s.loc["b", "failed"] == 1 and s.loc["b", "flagged"]
    assert s.loc["b", "p_empirical"] == pytest.approx(3 / 4) and "above chance" in s.loc["b", "note"]


def _noise(n: int = 40, features: int = 60, seed: int = 0) -> pd.DataFrame:
    """Predictors unrelated to the outcome: any signal a pipeline finds here is a leak."""
    rng = np.random.default_rng(seed)
    feats = {f"CT_tumour_original_firstorder_f{j}": rng.normal(size=n) for j in range(features)}
    return pd.DataFrame({"patient_id": [f"T{i}" for i in range(n)], "centre": "T", **feats,
                         "age": rng.normal(60, 8, n).round(), "y": rng.permutation(np.r_[np.ones(n // 2, int),
                                                                                          np.zeros(n - n // 2, int)])})


CLINICAL = [{"name": "age", "type": "numeric"}]
FAST = model_options(outer_folds=3, inner_folds=3, lasso_C=[0.1, 1.0])


@pytest.mark.slow
def test_y_randomisation_catches_labels_used_in_selection_outside_the_cross_validation():
    """The real stage-1 pipeline, once as it is and once with a leak: the 5 features with the strongest univariate
    AUC on all training rows (labels included) chosen before the nested CV. On shuffled outcomes the leaky
    pipeline's internal AUC climbs well above chance and is flagged; the honest one stays at chance."""
    df = _noise()
    columns = [c for c in df.columns if c.startswith("CT_")]

    def leaky(d: pd.DataFrame) -> pd.DataFrame:
        auc = univariate_auc(d[columns].to_numpy(), d["y"].to_numpy())
        chosen = [columns[j] for j in np.argsort(-np.abs(auc - 0.5))[:5]]
        return BINARY.train(d, chosen, CLINICAL, FAST, 0, models=("radiomics",))[1]

    honest = stage1_pipeline(BINARY, columns, CLINICAL, FAST, 0, "radiomics")
    nulls = pd.concat([y_randomisation(df, p, BINARY, 20, seed=1).assign(model=m)
                       for m, p in (("leaky", leaky), ("honest", honest))])
    s = summarise_null(nulls, {}, "auc", tolerance=0.05).set_index("model")
    assert (s["k"] == 20).all()
    assert s.loc["leaky", "null_mean"] > 0.65 and s.loc["leaky", "flagged"], s.loc["leaky"].to_dict()
    assert abs(s.loc["honest", "null_mean"] - 0.5) <= 0.05 and not s.loc["honest", "flagged"], s.loc["honest"]


def test_y_randomisation_is_seeded_and_keeps_a_failed_permutation(capsys):
    df = _noise(n=20, features=3)
    calls = []

    def pipeline(d: pd.DataFrame) -> pd.DataFrame:
        calls.append(d["y"].to_numpy().copy())
        if len(calls) == 2:
            raise ValueError("singular matrix")
        return d.assign(label=d["y"], score=d["CT_tumour_original_firstorder_f0"])

    out = y_randomisation(df, pipeline, BINARY, 3, seed=4)
    assert out["statistic"].isna().tolist() == [False, True, False] and "singular" in out.loc[1, "note"]
    assert "permutation 1 failed" in capsys.readouterr().out
    first = calls[0]
    calls.clear()
    y_randomisation(df, pipeline, BINARY, 1, seed=4)
    assert (calls[0] == first).all(), "permutation 0 of seed 4 is the same shuffle on every run"


def test_gather_writes_the_null_and_the_summary_against_the_real_internal_statistic(tmp_path):
    pred = _predictions()
    internal = pred[pred["stage"] == "internal"]
    internal.to_csv(tmp_path / "internal.tsv", sep="\t", index=False)
    for m in ("good", "noise"):
        pd.DataFrame({"model": m, "permutation": range(5), "statistic": [0.4, 0.5, 0.6, 0.5, 0.45],
                      "note": ""}).to_csv(tmp_path / f"{m}.tsv", sep="\t", index=False)
    cfg = {"study": {"seed": 1}, "endpoints": [{"name": "y", "column": "y"}],
           "guardrails": {"y_randomisation": {"seed": None, "tolerance": 0.05}}}
    y_randomisation_gather(cfg, "y", [tmp_path / "good.tsv", tmp_path / "noise.tsv"], tmp_path / "internal.tsv",
                           tmp_path / "null.tsv", tmp_path / "summary.tsv")
    null = pd.read_csv(tmp_path / "null.tsv", sep="\t")
    assert list(null.columns) == ["model", "permutation", "statistic", "note"] and len(null) == 10
    s = pd.read_csv(tmp_path / "summary.tsv", sep="\t").set_index("model")
    good = internal[internal["model"] == "good"]
    assert s.loc["good", "real"] == pytest.approx(delong(good["label"], good["score"])[0])
    assert s.loc["good", "p_empirical"] == pytest.approx(1 / 6)


@pytest.mark.slow
@pytest.mark.parametrize("ep, make", [
    (GRADE, lambda d, rng: d.assign(g=rng.choice(["G1", "G2", "G3"], len(d)))),
    (OS, lambda d, rng: d.assign(event=rng.integers(0, 2, len(d)), months=rng.exponential(30, len(d)))),
])
def test_real_pipeline_of_multiclass_and_survival_endpoints_runs_under_y_randomisation(ep, make):
    """Each endpoint type's own stage-1 function and statistic (macro AUC, C-index) under shuffled outcomes."""
    df = make(_noise(n=45, features=8).drop(columns=["y"]), np.random.default_rng(0))
    columns = [c for c in df.columns if c.startswith("CT_")]
    opts = {**FAST, "cox_penalizer": [0.5]}
    null = y_randomisation(df, stage1_pipeline(ep, columns, CLINICAL, opts, 0, "clinical"), ep, 3, seed=2)
    assert null["statistic"].between(0, 1).all() and (null["note"] == "").all()


def test_study_files_list_the_y_randomisation_jobs_only_when_it_is_on(demo_config, tmp_path):
    from mcrad.config import load_config
    from mcrad.dag import StudyFiles
    from mcrad.paths import Paths
    from mcrad.plan import plan_study

    demo_config["study"]["results"] = str(tmp_path)
    for active in (True, False):
        demo_config["guardrails"] = {"y_randomisation": {"activate": active, "models": ["radiomics", "nomogram"]}}
        cfg = load_config(demo_config)
        files = StudyFiles(cfg, plan_study(cfg), Paths.from_config(cfg))
        eps, paths = files.endpoints, files.paths
        jobs = [b for b in files.benchmark_files() if b.parent.name == "y_randomisation"]
        figures = [f["path"] for f in files.report_figures() if f["labels"]["figure"] == "y_randomisation"]
        if active:
            assert jobs == [paths.benchmark("y_randomisation", f"{ep}.{m}") for ep in eps
                            for m in ("radiomics", "nomogram")]
            assert figures == [paths.figure(f"y_randomisation_{ep}") for ep in eps]
            assert files.y_randomisation_outputs == [f(ep) for ep in eps for f in (
                paths.y_randomisation, paths.y_randomisation_summary)]
        else:
            assert jobs == figures == files.y_randomisation_outputs == []


def test_report_section_shows_the_null_figure_and_the_external_p(tmp_path):
    from mcrad.paths import Paths
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.nulls import nulls_section
    from mcrad.report.page import Report

    paths = Paths(tmp_path / "r")
    paths.models_dir("y").mkdir(parents=True)
    paths.validation_dir("y").mkdir(parents=True)
    null = pd.DataFrame({"model": ["radiomics"] * 3, "permutation": range(3), "statistic": [0.7, 0.75, 0.8],
                         "note": ""})
    null.to_csv(paths.y_randomisation("y"), sep="\t", index=False)
    summarise_null(null, {"radiomics": 0.78}, "auc", 0.05).to_csv(paths.y_randomisation_summary("y"), sep="\t",
                                                                   index=False)
    pred = _predictions()
    metrics = with_permutation_p(summarise_binary(pred, {"good": 0.5, "noise": 0.5}, 0.05), pred, BINARY, 99, 0)
    metrics.to_csv(paths.metrics("y"), sep="\t", index=False)
    declared = [paths.y_randomisation("y"), paths.y_randomisation_summary("y"), paths.metrics("y")]
    rep = Report(tmp_path / "figures")
    cfg = {"endpoints": [{"name": "y", "column": "y"}], "validate": {"permutations": 99},
           "guardrails": {"y_randomisation": {"activate": True, "permutations": 3, "tolerance": 0.05}}}
    nulls_section(rep, cfg, ReportInputs(paths.root, declared))
    (_, title, body), = rep.sections
    assert title == "Permutation nulls" and "above chance" in body and "p_permutation" in body
    assert (tmp_path / "figures" / "y_randomisation_y.png").is_file()
    empty = Report(None)
    nulls_section(empty, {**cfg, "endpoints": []}, ReportInputs(paths.root, declared))
    assert not empty.sections, "nothing ran: no section"


# ---- end to end ---------------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_study_has_permutation_p_and_a_targets_only_y_randomisation_reuses_it(study):
    """The e2e study (y-randomisation off): p_permutation in every endpoint's metrics.tsv and the report. Then, in
    the same results folder, y-randomisation turned on for one endpoint's summary: only its own jobs run."""
    import copy
    from pathlib import Path

    from helpers import STUDY, run_study

    for ep, stat in (("nodal_metastasis", "auc"), ("grade", "auc"), ("os", "c_index")):
        m = pd.read_csv(study / f"validation/{ep}/metrics.tsv", sep="\t")
        ext = m["stage"] == "external"
        assert m.loc[~ext, "p_permutation"].isna().all(), ep
        assert m.loc[ext, "p_permutation"].between(1 / 2001 - 1e-9, 1).all() and m.loc[ext, stat].notna().all(), ep
    m = pd.read_csv(study / "validation/nodal_metastasis/metrics.tsv", sep="\t").set_index(["model", "centre"])
    assert m.loc[("radiomics", "pooled"), "p_permutation"] < 0.01  # its auc_lo > 0.55 (test_e2e)
    assert "Permutation nulls" in (study / "report/index.html").read_text()

    cfg = copy.deepcopy(STUDY)
    cfg["guardrails"] = {"y_randomisation": {"activate": True, "permutations": 3}}
    target = Path("models/nodal_metastasis/y_randomisation_summary.tsv")
    shared_config = study.parent.parent / "config.yaml"  # the session study's: later tests read it unchanged
    kept = shared_config.read_text()
    try:
        proc = run_study(cfg, study.parent.parent, targets=[target])
    finally:
        shared_config.write_text(kept)
    ran = {line.split()[1].rstrip(":") for line in proc.stderr.splitlines() if line.startswith(("rule ", "localrule "))}
    assert ran == {"y_randomisation", "y_randomisation_summary"}, ran
    s = pd.read_csv(study / target, sep="\t").set_index("model")
    assert list(s.index) == ["clinical", "radiomics"] and (s["k"] == 3).all() and (s["failed"] == 0).all()
    assert (s["statistic"] == "auc").all() and s["null_mean"].between(0, 1).all()
    internal = m.xs("C1", level="centre")
    np.testing.assert_allclose(s["real"], internal.loc[s.index, "auc"], atol=1e-12)
    null = pd.read_csv(study / "models/nodal_metastasis/y_randomisation.tsv", sep="\t")
    assert len(null) == 6 and null["statistic"].between(0, 1).all()
