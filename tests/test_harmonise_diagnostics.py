"""Harmonisation diagnostics: centre identifiability with ComBat refitted inside each fold, the per-feature share of
variance explained by centre, and the training-labels-only outcome check."""
import numpy as np
import pandas as pd
import pytest
from mcrad.errors import McradError
from mcrad.harmonise.combat import ComBat
from mcrad.harmonise.diagnostics import (
    diagnostics,
    fold_harmonise,
    omega_squared,
    outcome_check,
)


def shifted(seed: int, sizes=(("T", 60), ("E1", 40), ("E2", 40)), p=30, shift=1.5, signal=0.0):
    """Features of three centres that differ only by a per-centre, per-feature shift and scale (no biology), plus
    an optional 0/1 outcome carried by the first three features."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, (name, n) in enumerate(sizes):
        offset, scale = rng.normal(0, shift, p) * (k > 0), np.exp(rng.normal(0, 0.3, p) * (k > 0))
        y = rng.integers(0, 2, n)
        x = rng.normal(10, 1, (n, p))
        x[:, :3] += signal * y[:, None]
        frames.append(pd.DataFrame(x * scale + offset, columns=[f"f{j}" for j in range(p)])
                      .assign(patient_id=[f"{name}-{i:03d}" for i in range(n)], centre=name, y=y))
    df = pd.concat(frames, ignore_index=True)
    return df[["patient_id", "centre", *[f"f{j}" for j in range(p)]]], df.set_index("patient_id")["y"]


def pipeline_harmonised(raw: pd.DataFrame) -> pd.DataFrame:
    """What harmonise_fit + harmonise_apply produce: ComBat on T, every other centre from all of its cases."""
    X, b = raw.set_index("patient_id").drop(columns="centre"), raw.set_index("patient_id")["centre"]
    out = ComBat("T").fit(X[b == "T"], b[b == "T"]).transform(X, b).reset_index()
    out.insert(1, "centre", b.to_numpy())
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_pure_centre_shift_is_unidentifiable_after_in_fold_combat(seed):
    raw, _ = shifted(seed)
    summary, kw, variance, pca = diagnostics(raw, pipeline_harmonised(raw), seed, lambda: ComBat("T"), None, ["T"])
    assert summary["centre_auc_before"] > 0.9
    assert abs(summary["centre_auc_after_in_fold"] - 0.5) < 0.1, summary
    # the old number (ComBat fitted on the cases it is judged on) is pushed far below chance: the artefact
    assert summary["centre_auc_after_all_cases"] < 0.3
    assert summary["centre_variance_share_median_before"] > 0.5
    assert abs(summary["centre_variance_share_median_after"]) < 0.05
    assert summary["kruskal_share_below_0.05_before"] > 0.8 and summary["kruskal_share_below_0.05_after"] < 0.2
    assert list(variance.columns) == ["feature", "omega2_before", "omega2_after"] and len(variance) == 30
    assert {"p_before", "p_after_all_cases"} <= set(kw.columns)
    assert set(pca["harmonisation"]) == {"before", "after"}


def test_held_out_cases_are_harmonised_without_being_seen():
    """A held-out case's harmonised values do not change when its own raw values change (beyond itself)."""
    raw, _ = shifted(3)
    X, b = raw.set_index("patient_id").drop(columns="centre"), raw.set_index("patient_id")["centre"]
    fit_rows = np.arange(len(X))[::2]
    held = X.index[1]  # an odd row of T: never fitted on
    held_e = X.index[b.to_numpy() == "E1"][1]
    a = fold_harmonise(lambda: ComBat("T"), X, b, None, ["T"], fit_rows)
    moved = X.copy()
    moved.loc[[held, held_e]] += 100.0
    c = fold_harmonise(lambda: ComBat("T"), moved, b, None, ["T"], fit_rows)
    others = ~X.index.isin([held, held_e])
    pd.testing.assert_frame_equal(a[others], c[others])
    np.testing.assert_allclose(c.loc[held] - a.loc[held], 100.0)  # the reference is left as it is
    assert (c.loc[held_e] - a.loc[held_e] > 20).all()  # mapped (scaled) by estimates from the fit rows only


def test_omega_squared_is_about_zero_without_centre_effect_and_large_with_one():
    rng = np.random.default_rng(0)
    centre = pd.Series(np.repeat(["A", "B", "C"], 200))
    null = pd.DataFrame(rng.normal(size=(600, 50)))
    assert abs(omega_squared(null, centre).mean()) < 0.01
    shift = pd.DataFrame({"x": rng.normal(size=600) + np.repeat([0.0, 2.0, 4.0], 200)})
    # between-centre variance 8/3 against within 1: share 8/11
    assert omega_squared(shift, centre)["x"] == pytest.approx(8 / 11, abs=0.05)
    assert np.isnan(omega_squared(pd.DataFrame({"k": np.ones(600)}), centre)["k"])


def test_harmonisation_off_reports_before_only():
    raw, _ = shifted(0)
    summary, _, variance, _ = diagnostics(raw, raw, 0, None, None, ["T"])
    assert summary["harmonisation"] is False and summary["centre_auc_before"] > 0.9
    assert not any(k.startswith("centre_auc_after") for k in summary)
    assert list(variance.columns) == ["feature", "omega2_before"]


def test_outcome_check_reads_training_labels_only():
    raw, y = shifted(0, signal=1.5)
    train = raw[raw["centre"] == "T"]
    out = outcome_check(train, train, {"ep": y}, 0, ["T"])
    assert out["train_outcome_auc_ep_before"] == out["train_outcome_auc_ep_after"] > 0.7
    with pytest.raises(McradError, match=r"centre\(s\) \['E1', 'E2'\], not training centres"):
        outcome_check(raw, raw, {"ep": y}, 0, ["T"])


def test_a_fold_combat_cannot_fit_is_reported_not_hidden():
    raw, _ = shifted(0, sizes=(("T", 20), ("E1", 20), ("E2", 6)))
    summary, _, variance, _ = diagnostics(raw, pipeline_harmonised(raw), 0, lambda: ComBat("T", min_batch_size=6),
                                          None, ["T"])
    assert "fewer than 6" in summary["in_fold_not_computed"]
    assert summary["centre_auc_before"] > 0.9 and "centre_auc_after_in_fold" not in summary
    assert "centre_auc_after_all_cases" in summary and list(variance.columns) == ["feature", "omega2_before"]
