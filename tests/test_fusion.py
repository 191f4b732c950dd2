"""Deep and fusion models from the deep stage's table (here a fake one): trained, locked and validated like the
others, so they enter metrics.tsv and the paired DeLong tests."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from helpers import model_options
from mcrad.cli import main
from mcrad.endpoints import endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import save_bundle
from mcrad.model.fusion import join_deep, train_fusion
from mcrad.model.registry import FUSION_MODELS, MODELS
from mcrad.model.train import train_binary
from mcrad.paths import Paths
from sklearn.metrics import roc_auc_score

CLINICAL = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical"}]
OPTS = model_options(outer_folds=3, inner_folds=3, lasso_C=[0.1, 1.0])
ENDPOINT = {"name": "y", "type": "binary", "column": "y"}
RADIOMICS = [f"CT_tumour_original_firstorder_f{j}" for j in range(6)]


def centre(n, seed, name):
    """Radiomics features, a fake deep table (deep_score from a second, independent signal) and outcomes."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + b + 0.6 * rng.normal(size=n) > 0).astype(int)
    ids = [f"{name}{i}" for i in range(n)]
    feats = pd.DataFrame({"patient_id": ids, "centre": name,
                          **{c: rng.normal(size=n) for c in RADIOMICS}}).assign(**{RADIOMICS[0]: a})
    score = 1 / (1 + np.exp(-(b + 0.3 * rng.normal(size=n))))
    deep = pd.DataFrame({"patient_id": ids, "centre": name, "deep_score": score,
                         **{f"deep_emb_{k:03d}": rng.normal(size=n) for k in range(4)}}).assign(deep_emb_001=b)
    cohort = pd.DataFrame({"patient_id": ids, "centre": name, "age": rng.normal(60, 8, n).round(),
                           "sex": rng.choice(["M", "F"], n), "y": y})
    return feats, deep, cohort


def test_registry_adds_deep_and_fusion_models_to_binary_endpoints_only():
    assert endpoint(ENDPOINT).model_names(False) == MODELS
    assert endpoint(ENDPOINT).model_names(True) == MODELS + FUSION_MODELS
    assert endpoint({"name": "os", "type": "survival", "column": "e", "time": "t"}).model_names(True) == MODELS
    assert endpoint({"name": "g", "type": "multiclass", "column": "g", "classes": ["a", "b", "c"]}
                    ).model_names(True) == MODELS


def test_join_deep_names_patients_without_deep_features():
    feats, deep, _ = centre(20, 0, "T")
    assert {"deep_score", "deep_emb_000"} <= set(join_deep(feats, deep).columns)
    with pytest.raises(McradError, match="T3.*Fix"):
        join_deep(feats, deep.drop(index=3))


@pytest.fixture(scope="module")
def trained():
    feats, deep, cohort = centre(100, 1, "T")
    df = join_deep(feats, deep).merge(cohort.drop(columns="centre"), on="patient_id")
    return df, train_fusion(df, RADIOMICS, "y", OPTS, seed=0)


def test_fusion_models_are_deterministic_and_use_both_signals(trained):
    df, (fitted, internal) = trained
    again, internal2 = train_fusion(df, RADIOMICS, "y", OPTS, seed=0)
    for name in FUSION_MODELS:
        assert pickle.dumps(fitted[name]["model"]) == pickle.dumps(again[name]["model"])
    pd.testing.assert_frame_equal(internal, internal2)
    y = df["y"].to_numpy()
    # recalibration is monotone: the deep model ranks exactly as deep_score does
    assert fitted["deep"]["info"]["recalibration"]["slope"] > 0
    np.testing.assert_allclose(roc_auc_score(y, fitted["deep"]["model"].predict_proba(df)[:, 1]),
                               roc_auc_score(y, df["deep_score"]))
    assert "deep_emb_001" in fitted["fusion_features"]["info"]["selected_features"]
    assert RADIOMICS[0] in fitted["fusion_features"]["info"]["selected_features"]
    auc = {m: roc_auc_score(g["label"], g["score"]) for m, g in internal.groupby("model")}
    assert auc["fusion_features"] > auc["deep"] + 0.03 and auc["fusion_decision"] > auc["deep"] + 0.03
    fd = fitted["fusion_decision"]["model"]
    np.testing.assert_allclose(fd.predict_proba(df)[:, 1], (fd.radiomics_.predict_proba(df)[:, 1]
                                                            + fd.deep_.predict_proba(df)[:, 1]) / 2)


@pytest.mark.slow
def test_validate_scores_fusion_bundles_and_compares_them(trained, tmp_path):
    df, (fitted, internal) = trained
    feats, deep, cohort = centre(100, 1, "T")
    base, base_internal = train_binary(feats.merge(cohort.drop(columns="centre")), RADIOMICS, CLINICAL, "y", OPTS, 0)
    models = tmp_path / "models"
    for name, entry in base.items():
        save_bundle(models / name, name, entry, RADIOMICS, CLINICAL, ENDPOINT, {"centres": ["T"]})
    for name, entry in fitted.items():
        save_bundle(models / name, name, entry, entry["features"], [], ENDPOINT, {"centres": ["T"]})
    base_internal.to_csv(tmp_path / "internal.tsv", sep="\t", index=False)
    internal.to_csv(tmp_path / "internal_fusion.tsv", sep="\t", index=False)
    for c, seed in (("E1", 2), ("E2", 3)):
        f, d, co = centre(60, seed, c)
        for kind, table in (("features", f), ("deep", d), ("cohort", co)):
            table.to_csv(tmp_path / f"{kind}_{c}.tsv", sep="\t", index=False)
    cfg = json.dumps({"study": {"seed": 0}, "endpoints": [ENDPOINT], "validate": {"alpha": 0.05, "permutations": 200}})
    names = list(MODELS + FUSION_MODELS)
    results = Paths(tmp_path / "results")
    assert main(["validate", "--config", cfg, "--endpoint", "y", "--models-dir", str(models), "--models", *names,
                 "--internal", str(tmp_path / "internal.tsv"), str(tmp_path / "internal_fusion.tsv"),
                 "--features", *(str(tmp_path / f"features_{c}.tsv") for c in ("E1", "E2")),
                 "--deep", *(str(tmp_path / f"deep_{c}.tsv") for c in ("E1", "E2")),
                 "--cohort", *(str(tmp_path / f"cohort_{c}.tsv") for c in ("E1", "E2")),
                 "--root", str(results.root)]) == 0
    metrics = pd.read_csv(results.metrics("y"), sep="\t")
    assert set(zip(metrics["model"], metrics["centre"], strict=True)) == {
        (m, c) for m in names for c in ("T", "E1", "E2", "pooled")}
    paired = pd.read_csv(results.paired("y"), sep="\t")
    pairs = set(zip(paired["model_a"], paired["model_b"], strict=True))
    assert ("radiomics", "fusion_decision") in pairs and ("deep", "fusion_features") in pairs
    assert len(paired) == 4 * len(names) * (len(names) - 1) // 2
    pooled = metrics[(metrics["centre"] == "pooled")].set_index("model")
    assert pooled.loc["fusion_decision", "auc"] > pooled.loc["deep", "auc"]
