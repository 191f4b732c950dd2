"""Stage 3: locked bundles score a held-back cohort without labels; evaluated once the labels arrive."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.cli import main
from mcrad.endpoints import endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import save_bundle
from mcrad.model.registry import MODELS
from mcrad.model.train import train_binary
from mcrad.prospective import evaluate, predict
from mcrad.validate.metrics import summarise_binary
from mcrad.validate.scoring import score_bundle

CLINICAL = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}]
OPTS = model_options(outer_folds=3, inner_folds=3, lasso_C=[0.1, 1.0])
ENDPOINT = {"name": "y", "type": "binary", "column": "y"}


def data(n, seed, centre):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    feats = {f"CT_tumour_original_firstorder_f{j}": rng.normal(size=n) for j in range(6)}
    feats["CT_tumour_original_firstorder_f0"] = signal
    return pd.DataFrame({"patient_id": [f"{centre}{i}" for i in range(n)], "centre": centre, **feats,
                         "age": rng.normal(60, 8, n).round(), "sex": rng.choice(["M", "F"], n),
                         "y": (signal + rng.normal(scale=0.8, size=n) > 0).astype(int)})


FEATURES = [f"CT_tumour_original_firstorder_f{j}" for j in range(6)]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    df = data(90, 0, "T")
    fitted, _ = train_binary(df, FEATURES, CLINICAL, "y", OPTS, seed=0)
    out = tmp_path_factory.mktemp("models")
    for name in MODELS:
        save_bundle(out / name, name, fitted[name], FEATURES, CLINICAL, ENDPOINT, {"centres": ["T"]})
    return [out / name for name in MODELS]


@pytest.fixture()
def new_cohort():
    p1, p2 = data(60, 1, "P1"), data(50, 2, "P2")
    return pd.concat([p1, p2], ignore_index=True)


def test_predict_reads_no_outcome(bundles, new_cohort):
    features, clinical = new_cohort[["patient_id", "centre", *FEATURES]], new_cohort[["patient_id", "age", "sex"]]
    out = predict(bundles, features, clinical)
    assert list(out.columns) == ["patient_id", "centre", "stage", "model", "score", "threshold", "positive"]
    assert len(out) == 3 * len(new_cohort) and set(out["stage"]) == {"prospective"}
    # the same scores as stage 2, and the same whatever the label column holds (or if it is absent)
    labelled = new_cohort.drop(columns=FEATURES)
    shuffled = labelled.assign(y=np.random.default_rng(0).permutation(labelled["y"].to_numpy()))
    pd.testing.assert_frame_equal(out, predict(bundles, features, shuffled))
    for bundle in bundles:
        ref = score_bundle(bundle, features, labelled, endpoint(ENDPOINT))
        got = out[out["model"] == bundle.name]
        np.testing.assert_array_equal(got["score"].to_numpy(), ref["score"].to_numpy())
        assert ((got["score"] >= got["threshold"]) == got["positive"].astype(bool)).all()


def test_predict_refuses_features_the_bundle_was_not_trained_on(bundles, new_cohort):
    features = new_cohort[["patient_id", "centre", *FEATURES]].drop(columns=FEATURES[3])
    with pytest.raises(McradError, match=f"lack.*{FEATURES[3]}.*Fix"):
        predict(bundles, features, new_cohort[["patient_id", "age", "sex"]])
    with pytest.raises(McradError, match="clinical column.*age.*Fix"):
        predict(bundles, new_cohort[["patient_id", "centre", *FEATURES]], new_cohort[["patient_id", "sex"]])


def test_evaluate_uses_the_locked_thresholds(bundles, new_cohort):
    features = new_cohort[["patient_id", "centre", *FEATURES]]
    pred = predict(bundles, features, new_cohort[["patient_id", "age", "sex"]])
    metrics, paired = evaluate(pred, new_cohort[["patient_id", "y"]], endpoint(ENDPOINT), 0.05)
    assert set(zip(metrics["model"], metrics["centre"], strict=True)) == {
        (m, c) for m in MODELS for c in ("P1", "P2", "pooled")}
    assert set(metrics["stage"]) == {"prospective"} and set(paired["stage"]) == {"prospective"}
    assert len(paired) == 3 * 3  # 3 model pairs x (P1, P2, pooled)
    # equal to stage-2 metrics of the same scores at the bundles' thresholds
    thresholds = pred.groupby("model")["threshold"].first().to_dict()
    ref = summarise_binary(pred.merge(new_cohort[["patient_id", "y"]]).rename(columns={"y": "label"}).assign(
        stage="external"), thresholds, 0.05)
    cols = ["auc", "auc_lo", "auc_hi", "sensitivity", "ppv", "npv", "accuracy", "acc_lo", "acc_hi"]
    pd.testing.assert_frame_equal(metrics[cols].reset_index(drop=True), ref[cols].reset_index(drop=True))


def test_evaluate_names_patients_without_outcomes(bundles, new_cohort):
    pred = predict(bundles, new_cohort[["patient_id", "centre", *FEATURES]], new_cohort[["patient_id", "age", "sex"]])
    outcomes = new_cohort[["patient_id", "y"]].iloc[1:]
    with pytest.raises(McradError, match="P10.*no 'y' outcome.*Fix"):
        evaluate(pred, outcomes, endpoint(ENDPOINT), 0.05)


def test_predict_and_evaluate_from_the_command_line(bundles, new_cohort, tmp_path, capsys):
    new_cohort[["patient_id", "centre", *FEATURES]].to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    new_cohort.drop(columns=FEATURES).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    args = ["predict", "--bundle", *map(str, bundles), "--features", str(tmp_path / "f.tsv"),
            "--cohort", str(tmp_path / "c.tsv"), "--out", str(tmp_path / "p.tsv")]
    assert main(args) == 0
    assert "y" not in pd.read_csv(tmp_path / "p.tsv", sep="\t").columns
    cfg = json.dumps({"endpoints": [ENDPOINT], "validate": {"alpha": 0.05}})
    assert main(["evaluate", "--config", cfg, "--endpoint", "y", "--predictions", str(tmp_path / "p.tsv"),
                 "--cohort", str(tmp_path / "c.tsv"), "--out", str(tmp_path / "m.tsv")]) == 0
    assert len(pd.read_csv(tmp_path / "m.tsv", sep="\t")) == 9
    pd.read_csv(tmp_path / "f.tsv", sep="\t").drop(columns=FEATURES[0]).to_csv(tmp_path / "f.tsv", sep="\t",
                                                                               index=False)
    assert main(args) == 2
    assert FEATURES[0] in capsys.readouterr().err


def test_a_centre_cannot_be_external_and_prospective(demo_config):
    from mcrad.config import load_config
    from mcrad.errors import ConfigError

    demo_config["design"].update(external=["C2", "C3", "C4"], prospective=["C4"])
    with pytest.raises(ConfigError, match=r"\['C4'\] are listed as both external and prospective"):
        load_config(demo_config)


def test_explain_writes_shap_tables_from_the_locked_bundles(bundles, tmp_path):
    train = data(90, 0, "T")
    train[["patient_id", "centre", *FEATURES]].to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    train.drop(columns=FEATURES).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    cfg = json.dumps({"study": {"seed": 0}, "endpoints": [ENDPOINT]})
    assert main(["explain", "--config", cfg, "--endpoint", "y", "--models-dir", str(bundles[0].parent),
                 "--features", str(tmp_path / "f.tsv"), "--cohort", str(tmp_path / "c.tsv"),
                 "--out", str(tmp_path / "shap.tsv"), "--summary", str(tmp_path / "summary.tsv")]) == 0
    shap = pd.read_csv(tmp_path / "shap.tsv", sep="\t")
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert set(shap["model"]) == {"radiomics", "nomogram"} and shap["patient_id"].nunique() == 90
    assert summary.loc[summary["model"] == "radiomics", "feature"].iloc[0] == FEATURES[0]
    assert "rad-score" in set(summary.loc[summary["model"] == "nomogram", "feature"])


@pytest.mark.e2e
def test_an_outcome_edit_of_a_prospective_centre_reruns_evaluate_not_predict(tmp_path):
    """Dry run on a finished (all outputs present, in date order) study with a prospective centre: a newer cohort
    table of that centre (its outcomes were edited) reruns evaluation, but neither prediction nor harmonisation,
    which read only its label-free predictors table."""
    import os
    import subprocess
    import time

    import yaml
    from helpers import REPO, SNAKEMAKE
    from mcrad.cohort import predictors_table

    sheet = pd.DataFrame({"patient_id": ["a", "b"], "centre": ["C4", "C2"], "age": [60, 70], "y": [1, 0],
                          "os_months": [3.0, 9.0], "reader": [0.2, 0.9]})
    table = predictors_table(sheet, {"cohort": {"clinical": [{"name": "age", "type": "numeric", "missing": []}]}},
                             "C4")
    assert table.to_dict("list") == {"patient_id": ["a"], "centre": ["C4"], "age": [60]}  # no outcome, no extras
    cfg = {"study": {"name": "dry", "seed": 7, "results": str(tmp_path / "results")},
           "cohort": {"sheet": None, "synthetic": {"centres": 4, "patients_per_centre": 16, "field_of_view_mm": 56}},
           "design": {"train": ["C1"], "external": ["C2", "C3"], "prospective": ["C4"]},
           "endpoints": [{"name": "nodal_metastasis", "column": "nodal_metastasis"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # mtime only: the edit changes a file's date; no job has run here, so there is no provenance to compare
    cmd = [str(SNAKEMAKE), "--configfile", str(tmp_path / "c.yaml"), "--rerun-triggers", "mtime"]

    def run(*args: str) -> str:
        return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    outputs = [line.split("\t")[0] for line in run("--summary").splitlines()[1:]]
    # a finished run also left each job's benchmark file (the report reads them)
    outputs += [line.split("benchmark:")[1].strip() for line in run("-n").splitlines() if "benchmark:" in line]
    now = time.time()
    for f in map(Path, outputs):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
        os.utime(f, (now, now))  # one date for all, after the repository's files: nothing is out of date
    assert "Nothing to be done" in run("-n")
    os.utime(tmp_path / "results" / "dry" / "cohort" / "C4.tsv", (now + 60, now + 60))
    plan = run("-n", "--quiet", "rules").split("Job stats:")[1].split("total")[0].splitlines()[3:]
    assert {line.split()[0] for line in plan if line.strip()} == {"evaluate_prospective", "report", "all"}
