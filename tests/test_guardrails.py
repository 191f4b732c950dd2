"""Scientific guardrails: the minimum sample size of each locked model, volume confounding, and their report
section."""
import numpy as np
import pandas as pd
import pytest
from mcrad.endpoints import endpoint
from mcrad.errors import McradError
from mcrad.files import write_json, write_table
from mcrad.model.sample_size import (
    binary_requirement,
    candidate_parameters,
    multiclass_requirement,
    sample_size_stage,
    sample_size_table,
    survival_requirement,
)
from mcrad.paths import Paths
from mcrad.validate.confounding import (
    VOLUME,
    volume_column,
    volume_correlation,
    volume_metrics,
    volume_table,
)

OPTS = {"activate": True, "cstatistic": 0.7, "rsquared": None, "shrinkage": 0.9, "timepoint": None, "far_below": 0.5}
BINARY = endpoint({"name": "nodes", "column": "nodes"})
SURVIVAL = endpoint({"name": "os", "type": "survival", "column": "event", "time": "months", "times": [24]})
GRADE = endpoint({"name": "grade", "type": "multiclass", "column": "grade", "classes": ["G1", "G2", "G3"]})


# ---- sample size -----------------------------------------------------------------------------------------------
def meta(model: str, features: int = 40, coefficients: int = 0) -> dict:
    return {"model": model, "features": [f"f{i}" for i in range(features)],
            "description": {"coefficients": {f"c{i}": 0.1 for i in range(coefficients)}}}


def test_candidate_parameters_are_those_offered_before_selection():
    assert candidate_parameters(meta("clinical", 40, 5), 5)[0] == 5  # not the radiomics columns it never saw
    assert candidate_parameters(meta("radiomics", 40), 5)[0] == 40  # however few LASSO kept
    n, counted = candidate_parameters(meta("nomogram", 40), 5)
    assert n == 45 and "backward elimination" in counted
    assert candidate_parameters(meta("fusion_features", 48), 5)[0] == 48
    n, counted = candidate_parameters(meta("deep", 1), 5)
    assert n == 1 and "network's weights are not counted" in counted


def test_binary_row_equals_pmsampsize_published_example():
    # pmsampsize test_bin.R 4.1: csrsquared 0.288, 24 parameters, prevalence 0.174 -> n 662, EPP 4.8
    y = np.r_[np.ones(174), np.zeros(826)].astype(int)
    row = binary_requirement(y, 24, {**OPTS, "rsquared": 0.288})
    assert (row["n_required"], row["epp_required"], row["n_criterion_1"], row["n_criterion_3"]) == (662, 4.8, 623, 221)
    assert row["events_required"] == pytest.approx(662 * 0.174, abs=0.05)
    assert row["n_available"] == 1000 and row["epp_available"] == pytest.approx(174 / 24, abs=0.01)
    # without an R-squared: from the C-statistic at the training prevalence, as pmsampsize's cstat2rsq
    from mcrad import samplesize as ss

    row = binary_requirement(y, 24, OPTS)
    assert row["r2cs"] == ss.cstatistic_to_r2cs(0.7, 0.174) and "C-statistic 0.7" in row["r2cs_source"]


def test_survival_row_equals_pmsampsize_published_example():
    # pmsampsize test_surv.R 3.6: rsquared 0.051, 25 parameters, rate 0.065, timepoint 2, meanfup 4 -> n 4286
    event = np.r_[np.ones(260), np.zeros(740)].astype(int)
    time = np.full(1000, 4.0)
    row = survival_requirement(event, time, 25, {**OPTS, "rsquared": 0.051, "timepoint": 2}, [24])
    assert (row["n_required"], row["epp_required"], row["n_criterion_2"]) == (4286, 44.57, 679)
    assert "risk at t = 2" in row["note"]
    # no R-squared: Riley's conservative 15% of the maximum; the endpoint's last reporting time is the timepoint
    row = survival_requirement(event, time, 25, OPTS, [24, 36])
    assert row["r2cs"] == pytest.approx(0.15 * row["max_r2cs"], abs=1e-3) and "risk at t = 36" in row["note"]


def test_multiclass_row_takes_the_most_demanding_class_and_says_so():
    labels = pd.Series(["G1"] * 50 + ["G2"] * 30 + ["G3"] * 20)
    row = multiclass_requirement(labels, ["G1", "G2", "G3"], 10, OPTS)
    each = {c: binary_requirement((labels == c).to_numpy(int), 10, OPTS)["n_required"] for c in ("G1", "G2", "G3")}
    worst = max(each, key=each.get)
    assert row["n_required"] == each[worst] and f"one-vs-rest of class {worst}" in row["criterion"]


def internal(models, n=80, events=16, seed=0):
    y = np.r_[np.ones(events), np.zeros(n - events)].astype(int)
    return pd.concat([pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "centre": "C1", "stage": "internal",
                                    "model": m, "label": y, "score": np.random.default_rng(seed).random(n)})
                      for m in models], ignore_index=True)


def test_table_has_one_row_per_model_and_warns_far_below():
    metas = {"clinical": meta("clinical", 40, 4), "radiomics": meta("radiomics", 100),
             "nomogram": meta("nomogram", 100)}
    t = sample_size_table(BINARY, metas, internal(metas), OPTS)
    assert list(t["model"]) == ["clinical", "radiomics", "nomogram"]
    assert list(t["parameters"]) == [4, 100, 104]
    assert t.set_index("model").loc["radiomics", "status"] == "FAR BELOW the minimum"
    assert (t["n_available"] == 80).all() and (t["events_available"] == 16).all()
    # an anticipated R-squared the prevalence cannot reach: the row stays, with the reason
    t = sample_size_table(BINARY, metas, internal(metas), {**OPTS, "rsquared": 0.7})
    assert (t["status"] == "not computed").all() and t["note"].str.contains("exceeds the largest possible").all()


def test_stage_reads_bundles_and_refuses_external_predictions(tmp_path):
    from mcrad.model.bundle import save_bundle

    for name, m in (("clinical", meta("clinical", 30, 3)), ("radiomics", meta("radiomics", 30))):
        save_bundle(tmp_path / name, name, {"model": None, "threshold": 0.5, "info": m["description"]},
                    m["features"], [], BINARY.spec, {})
    write_table(internal(["clinical", "radiomics"]), tmp_path / "internal.tsv")
    cfg = {"endpoints": [BINARY.spec], "guardrails": {"sample_size": OPTS}}
    sample_size_stage(cfg, "nodes", tmp_path, ["clinical", "radiomics"], [tmp_path / "internal.tsv"],
                      tmp_path / "out.tsv")
    out = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(out["parameters"]) == [3, 30] and out["n_required"].gt(80).all()
    write_table(internal(["clinical"]).assign(stage="external"), tmp_path / "external.tsv")
    with pytest.raises(McradError, match="only the training centre"):
        sample_size_stage(cfg, "nodes", tmp_path, ["clinical"], [tmp_path / "external.tsv"], tmp_path / "x.tsv")


# ---- volume confounding ----------------------------------------------------------------------------------------
def test_volume_column_prefers_the_reference_sequence_and_mesh_volume():
    cols = ["T2_tumour_original_shape_MeshVolume", "T1_tumour_original_shape_VoxelVolume",
            "T1_tumour_original_shape_MeshVolume", "T1_peritumoral_original_shape_MeshVolume"]
    assert volume_column(cols, ["T1", "T2"]) == "T1_tumour_original_shape_MeshVolume"
    assert volume_column(cols[:2], []) == "T2_tumour_original_shape_MeshVolume"
    assert volume_column(["CT_tumour_original_shape_VoxelVolume"], []) == "CT_tumour_original_shape_VoxelVolume"
    assert volume_column(cols, [], cols[3]) == cols[3]
    with pytest.raises(McradError, match="found no tumour volume"):
        volume_column(["CT_tumour_original_firstorder_Mean"], [])
    with pytest.raises(McradError, match="is not a feature column"):
        volume_column(cols, [], "nope")


def cohort_with_volume(seed=0, effect=1.5, sizes=(("C1", 80), ("C2", 40), ("C3", 40))):
    """Cases whose outcome depends on log volume by `effect` (0: not at all)."""
    rng = np.random.default_rng(seed)
    raws, cohorts = [], {}
    for centre, n in sizes:
        logv = rng.normal(8, 1, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-effect * (logv - 8)))).astype(int)
        ids = [f"{centre}-{i:03d}" for i in range(n)]
        raws.append(pd.DataFrame({"patient_id": ids, "centre": centre,
                                  "CT_tumour_original_shape_MeshVolume": np.exp(logv)}))
        cohorts[centre] = pd.DataFrame({"patient_id": ids, "centre": centre, "nodes": y,
                                        "event": y, "months": rng.exponential(30, n) / (1 + y)})
    return pd.concat(raws, ignore_index=True), cohorts


def model_opts():
    from helpers import model_options

    return model_options(outer_folds=5, inner_folds=3)


@pytest.mark.parametrize("ep,metric", [(BINARY, "auc"), (SURVIVAL, "c_index")])
def test_volume_alone_is_locked_on_training_and_validated_like_the_models(ep, metric):
    raw, cohorts = cohort_with_volume()
    volumes, missing = volume_table(raw, "CT_tumour_original_shape_MeshVolume")
    m = volume_metrics(ep, volumes, cohorts, ["C1"], model_opts(), 0, 0.05, 200)
    assert set(zip(m["centre"], m["stage"], strict=True)) == {("C1", "internal"), ("C2", "external"),
                                                              ("C3", "external"), ("pooled", "external")}
    assert (m["model"] == "volume").all() and missing == []
    pooled = m.set_index("centre").loc["pooled"]
    assert pooled[metric] > 0.6 and pooled["p_permutation"] < 0.05, pooled.to_dict()
    assert m.loc[m["stage"] == "internal", "p_permutation"].isna().all()  # as metrics.tsv: internal has y-rand
    raw, cohorts = cohort_with_volume(effect=0.0)
    null = volume_metrics(ep, volume_table(raw, "CT_tumour_original_shape_MeshVolume")[0], cohorts, ["C1"],
                          model_opts(), 0, 0.05, 200).set_index("centre").loc["pooled"]
    lo, hi = ("auc_lo", "auc_hi") if metric == "auc" else ("c_lo", "c_hi")
    assert null[lo] < 0.5 < null[hi] or abs(null[metric] - 0.5) < 0.1, null.to_dict()


def test_cases_without_a_volume_are_listed_not_hidden():
    raw, _ = cohort_with_volume()
    raw.loc[3, "CT_tumour_original_shape_MeshVolume"] = np.nan
    raw.loc[5, "CT_tumour_original_shape_MeshVolume"] = 0.0
    volumes, missing = volume_table(raw, "CT_tumour_original_shape_MeshVolume")
    assert missing == [raw.loc[3, "patient_id"], raw.loc[5, "patient_id"]] and len(volumes) == len(raw) - 2
    assert np.isfinite(volumes[VOLUME]).all()


def test_selected_features_tracking_volume_are_flagged():
    raw, _ = cohort_with_volume()
    train = raw[raw["centre"] == "C1"]
    volumes = volume_table(train, "CT_tumour_original_shape_MeshVolume")[0]
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"patient_id": train["patient_id"], "centre": "C1",
                             "size_like": train["CT_tumour_original_shape_MeshVolume"] ** 0.33 + rng.normal(0, 0.1, 80),
                             "texture": rng.normal(size=80)})
    bundle_meta = {"description": {"selected_features": {"size_like": 0.8, "texture": {"G1": -0.2, "G2": 0.5}}}}
    scores = pd.DataFrame({"patient_id": train["patient_id"], "score": features["size_like"].to_numpy(),
                           "predicted": "G1"})
    t = volume_correlation(volumes, features, bundle_meta, scores, 0.7).set_index("name")
    assert t.loc["size_like", "volume_surrogate"] and t.loc["size_like", "spearman_rho"] > 0.9
    assert not t.loc["texture", "volume_surrogate"] and t.loc["texture", "weight"] == 0.5
    assert t.loc["radiomics score", "kind"] == "model output" and "radiomics predicted" not in t.index
    assert (t["n"] == 80).all()


# ---- report ----------------------------------------------------------------------------------------------------
def test_report_section_shows_the_tables_warns_and_links_the_checklist(tmp_path):
    from mcrad.report.guardrails import guardrails_section
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.page import Report
    from mcrad.report.provenance import checklist_section

    paths = Paths(tmp_path)
    metas = {"clinical": meta("clinical", 40, 4), "radiomics": meta("radiomics", 100)}
    write_table(sample_size_table(BINARY, metas, internal(metas), OPTS), paths.sample_size("nodes"))
    raw, cohorts = cohort_with_volume()
    volumes = volume_table(raw, "CT_tumour_original_shape_MeshVolume")[0]
    write_table(volume_metrics(BINARY, volumes, cohorts, ["C1"], model_opts(), 0, 0.05, 0),
                paths.volume_confounding("nodes"))
    write_table(pd.DataFrame({"kind": ["selected feature"], "name": ["size_like"], "weight": [0.8], "n": [80],
                              "spearman_rho": [0.95], "p": [1e-9], "volume_surrogate": [True]}),
                paths.volume_correlation("nodes"))
    write_json({"centre_auc_before": 0.99, "centre_auc_after_in_fold": 0.52}, paths.harmonise_diagnostics)
    cfg = {"endpoints": [BINARY.spec], "validate": {"alpha": 0.05},
           "guardrails": {"sample_size": OPTS, "volume_check": {"surrogate_rho": 0.7}}}
    declared = [paths.sample_size("nodes"), paths.volume_confounding("nodes"), paths.volume_correlation("nodes"),
                paths.harmonise_diagnostics]
    rep = Report(None)
    rep.add("models", "Models", "")
    guardrails_section(rep, cfg, ReportInputs(tmp_path, declared))
    checklist_section(rep)
    anchors = [a for a, _, _ in rep.sections]
    assert anchors[:4] == ["models", "guardrails", "guardrails-sample-size", "guardrails-volume"]
    page = rep.html("t")
    assert "FAR BELOW the minimum sample size" in page and "track tumour volume" in page
    assert "centre identifiability 0.990 before ComBat, 0.520 after" in page
    checklist = rep.sections[-1][2]
    assert '<a href="#guardrails-sample-size">' in checklist and '<a href="#guardrails-volume">' in checklist
    # nothing declared: no section at all
    empty = Report(None)
    guardrails_section(empty, cfg, ReportInputs(tmp_path, []))
    assert empty.sections == []


def test_the_report_rule_reads_the_guardrails_the_config_turns_on(demo_config, tmp_path):
    from mcrad.config import load_config
    from mcrad.dag import StudyFiles
    from mcrad.plan import plan_study

    def outputs(guardrails):
        cfg = load_config({**demo_config, "study": {**demo_config["study"], "results": str(tmp_path)},
                           "guardrails": guardrails})
        return StudyFiles(cfg, plan_study(cfg), Paths.from_config(cfg)).guardrail_outputs

    paths = Paths(tmp_path / demo_config["study"]["name"])
    eps = [ep["name"] for ep in demo_config["endpoints"]]
    assert outputs({}) == ([paths.sample_size(ep) for ep in eps]
                           + [f(ep) for ep in eps for f in (paths.volume_confounding, paths.volume_correlation)])
    assert outputs({"sample_size": {"activate": False}, "volume_check": {"activate": False}}) == []
