import numpy as np
import pandas as pd
import pytest
from mcrad.endpoints import endpoint
from mcrad.stats import auc_ci, delong, wilson
from mcrad.validate.metrics import binary_metric_row, summarise_binary
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint


def delong_bruteforce(y, s):
    """Textbook DeLong: placement values from all positive/negative pairs (O(m n))."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@pytest.mark.parametrize("seed", range(5))
def test_delong_matches_the_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes ties
    auc, var = delong(y, s)
    ref_auc, ref_var = delong_bruteforce(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-10)


def test_ci_is_clipped_to_the_unit_interval():
    y = np.array([0, 0, 0, 1, 1, 1])
    auc, lo, hi = auc_ci(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert (auc, hi) == (1.0, 1.0) and lo == 1.0  # perfect separation: zero DeLong variance


def test_wilson_matches_statsmodels():
    for k, n in [(0, 10), (3, 10), (17, 40), (40, 40)]:
        np.testing.assert_allclose(wilson(k, n), proportion_confint(k, n, method="wilson"), rtol=1e-12)


def test_metric_row_counts_at_the_locked_threshold():
    pred = pd.DataFrame({"label": [0, 0, 1, 1, 1], "score": [0.1, 0.6, 0.4, 0.7, 0.9]})
    row = binary_metric_row(pred, threshold=0.5, alpha=0.05)
    assert row["sensitivity"] == pytest.approx(2 / 3) and row["specificity"] == pytest.approx(1 / 2)
    assert row["brier"] == pytest.approx(np.mean((pred["score"] - pred["label"]) ** 2))
    # 3 called positive (2 events), 2 called negative (1 non-event)
    assert (row["ppv"], row["npv"], row["accuracy"]) == pytest.approx((2 / 3, 1 / 2, 3 / 5))
    np.testing.assert_allclose([row["ppv_lo"], row["ppv_hi"]], proportion_confint(2, 3, method="wilson"))
    np.testing.assert_allclose([row["npv_lo"], row["npv_hi"]], proportion_confint(1, 2, method="wilson"))
    np.testing.assert_allclose([row["acc_lo"], row["acc_hi"]], proportion_confint(3, 5, method="wilson"))


def test_one_class_centre_is_reported_not_dropped():
    pred = pd.DataFrame({"model": "m", "centre": "X", "stage": "external", "label": [1, 1], "score": [0.2, 0.9]})
    out = summarise_binary(pred, {"m": 0.5}, 0.05)
    assert len(out) == 1 and np.isnan(out["auc"][0]) and "one class" in out["note"][0]


def test_summary_has_pooled_external_rows():
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame({"model": m, "centre": c, "stage": st, "label": rng.integers(0, 2, 30),
                            "score": rng.random(30)})
              for m in ("a", "b") for c, st in (("T", "internal"), ("E1", "external"), ("E2", "external"))]
    out = summarise_binary(pd.concat(frames), {"a": 0.5, "b": 0.5}, 0.05)
    assert set(zip(out["model"], out["centre"], out["stage"], strict=True)) == {
        (m, c, s) for m in "ab" for c, s in (("T", "internal"), ("E1", "external"), ("E2", "external"),
                                              ("pooled", "external"))}
    pooled = out[(out["centre"] == "pooled") & (out["model"] == "a")].iloc[0]
    assert pooled["n"] == 60


def test_calibration_curve_bins_by_predicted_risk():
    from mcrad.validate.curves import calibration_curve

    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 5000)
    y = (rng.random(5000) < p).astype(int)  # calibrated by construction
    cc = calibration_curve(y, p, bins=5)
    assert len(cc) == 5 and cc["n"].sum() == 5000 and cc["predicted"].is_monotonic_increasing
    np.testing.assert_allclose(cc["observed"], cc["predicted"], atol=0.04)


def test_decision_curve_equals_the_net_benefit_formula():
    from mcrad.validate.curves import decision_curve

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    out = decision_curve(y, {"m": s}, np.array([0.2, 0.5]))
    for t in (0.2, 0.5):
        tp, fp = ((s >= t) & (y == 1)).sum(), ((s >= t) & (y == 0)).sum()
        expected = tp / 200 - fp / 200 * t / (1 - t)
        got = out[(out["model"] == "m") & np.isclose(out["threshold"], t)]["net_benefit"].iloc[0]
        assert got == pytest.approx(expected, abs=1e-12)
    assert {"all", "none"} <= set(out["model"])


def test_paired_comparisons_cover_every_model_pair_per_centre():
    from mcrad.validate.metrics import paired_delong

    rng = np.random.default_rng(3)
    rows = []
    for c, st in (("T", "internal"), ("E1", "external"), ("E2", "external")):
        y = rng.integers(0, 2, 30)
        for m in ("a", "b", "c"):
            rows.append(pd.DataFrame({"patient_id": [f"{c}{i}" for i in range(30)], "centre": c, "stage": st,
                                      "model": m, "label": y, "score": rng.random(30) + y * 0.3}))
    out = paired_delong(pd.concat(rows))
    assert len(out) == 4 * 3  # T, E1, E2, pooled x 3 pairs
    assert out["p_delong"].between(0, 1).all()


def test_reader_read_is_compared_like_a_model():
    from mcrad.errors import McradError
    from mcrad.validate.metrics import paired_delong
    from mcrad.validate.scoring import reader_predictions

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 40)
    cohort = pd.DataFrame({"patient_id": [f"E{i}" for i in range(40)], "centre": "E", "y": y,
                           "read": np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 40), 0, 1).round(2)})
    ep = {"name": "y", "column": "y"}
    reads = reader_predictions(cohort, endpoint(ep), "read")
    assert list(reads.columns) == ["patient_id", "centre", "model", "label", "score"]
    assert (reads["model"] == "reader").all() and reads["label"].tolist() == y.tolist()
    model = reads.assign(model="radiomics", score=rng.random(40))
    paired = paired_delong(pd.concat([model, reads]).assign(stage="external"))
    assert paired[["model_a", "model_b"]].values.tolist() == [["radiomics", "reader"]]
    cohort.loc[3, "read"] = np.nan  # a blank cell
    with pytest.raises(McradError, match="E3.*no numeric reader score"):
        reader_predictions(cohort, endpoint(ep), "read")
