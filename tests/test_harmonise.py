import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcrad.errors import McradError
from mcrad.harmonise import apply, fit_training, load, save
from mcrad.harmonise.combat import ComBat


def cohort(seed=0, sizes=(("T", 30), ("E1", 20), ("E2", 12)), n_features=6):
    rng = np.random.default_rng(seed)
    frames = []
    for k, (name, n) in enumerate(sizes):
        shift, scale = rng.normal(0, 2, n_features) * (k > 0), np.exp(rng.normal(0, 0.4, n_features) * (k > 0))
        x = rng.normal(5, 1, (n, n_features)) * scale + shift
        frames.append(pd.DataFrame(x, columns=[f"f{j}" for j in range(n_features)],
                                   index=[f"{name}-{i}" for i in range(n)]).assign(centre=name))
    df = pd.concat(frames)
    df.index.name = "patient_id"
    return df.drop(columns="centre"), df["centre"]


def test_reference_centre_is_left_exactly_as_it_is():
    X, b = cohort()
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    out = model.transform(X, b)
    assert out[b == "T"].equals(X[b == "T"])


def test_no_eb_maps_each_centre_onto_the_reference_mean_and_sd():
    # Without empirical Bayes, ComBat with a reference batch has a closed form:
    # x' = (x - mean_c) / sd_c(ddof=1) * sd_ref(ddof=0) + mean_ref
    X, b = cohort()
    out = ComBat("T", eb=False).fit(X[b == "T"], b[b == "T"]).transform(X, b)
    ref = X[b == "T"]
    for c in ("E1", "E2"):
        xc = X[b == c]
        expected = (xc - xc.mean()) / xc.std(ddof=1) * ref.std(ddof=0) + ref.mean()
        pd.testing.assert_frame_equal(out[b == c], expected, rtol=1e-12, atol=1e-12)


def test_unseen_centre_equals_joint_combat_with_training_reference(monkeypatch):
    # The reference: neuroCombat's own entry point with ref_batch on training + one centre. It needs np.int,
    # gone in numpy 2, so the attribute is put back for this test only (monkeypatch undoes it).
    from neuroCombat import neuroCombat as nc_joint

    monkeypatch.setattr(np, "int", int, raising=False)
    X, b = cohort()
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    for c in ("E1", "E2"):
        rows = b.isin(["T", c])
        covars = pd.DataFrame({"batch": b[rows].to_numpy()})
        ref = nc_joint(X[rows].T.to_numpy(), covars, "batch", ref_batch="T")["data"].T
        ours = model.transform(X[rows], b[rows]).to_numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_an_external_centre_does_not_change_another():
    X, b = cohort()
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    alone = model.transform(X[b.isin(["T", "E1"])], b[b.isin(["T", "E1"])])
    together = model.transform(X, b)
    pd.testing.assert_frame_equal(alone[b[b.isin(["T", "E1"])] == "E1"], together[b == "E1"])


def test_json_round_trip_is_exact(tmp_path):
    X, b = cohort()
    model = ComBat("T").fit(X[b.isin(["T", "E1"])], b[b.isin(["T", "E1"])])
    save(model, list(X.columns), tmp_path / "m.json")
    loaded, keep = load(tmp_path / "m.json")
    assert keep == list(X.columns)
    pd.testing.assert_frame_equal(loaded.transform(X, b), model.transform(X, b), rtol=0, atol=0)
    save(loaded, keep, tmp_path / "m2.json")
    assert (tmp_path / "m.json").read_bytes() == (tmp_path / "m2.json").read_bytes()


def test_small_centre_and_missing_values_are_clear_errors():
    X, b = cohort(sizes=(("T", 20), ("E1", 2)))
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    with pytest.raises(McradError, match=r"'E1': 2.*fewer than 3 cases.*Fix"):
        model.transform(X, b)
    X, b = cohort()
    X.iloc[3, 2] = np.nan
    with pytest.raises(McradError, match=r"feature 'f2' is missing \(NaN\) for patient T-3"):
        ComBat("T").fit(X[b == "T"], b[b == "T"])


def test_constant_training_features_are_listed_not_hidden():
    X, b = cohort()
    X["flat"] = 1.0
    features = X.reset_index().assign(centre=b.to_numpy())
    opts = {"activate": True, "parametric": True, "eb": True, "mean_only": False, "min_batch_size": 3}
    model, train, excluded = fit_training(features[features["centre"] == "T"], None, ["T"], opts, [])
    assert list(excluded["feature"]) == ["flat"]
    assert "flat" not in train.columns
    ext = apply(model, features[features["centre"] == "E1"], list(model.features_))
    assert list(ext.columns) == ["patient_id", "centre", *model.features_]


def test_nonparametric_prior_equals_neurocombat_where_it_is_finite_and_stays_finite_where_it_is_not():
    from mcrad.harmonise.combat import _nonparametric_prior
    from neuroCombat.neuroCombat import int_eprior

    rng = np.random.default_rng(0)
    sdat, g_hat, d_hat = rng.normal(0, 1, (30, 8)), rng.normal(0, 0.3, 30), rng.uniform(0.5, 2, 30)
    np.testing.assert_allclose(_nonparametric_prior(sdat, g_hat, d_hat), int_eprior(sdat, g_hat, d_hat),
                               rtol=1e-10)
    far = rng.normal(0, 1, (30, 400)) + 6.0  # many samples: the product of densities underflows
    with np.errstate(all="ignore"):
        assert np.isnan(np.asarray(int_eprior(far, g_hat, np.ones(30)))).any()
    assert np.isfinite(_nonparametric_prior(far, g_hat, np.ones(30))).all()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), parametric=st.booleans(), eb=st.booleans(), mean_only=st.booleans())
def test_properties_shape_finite_deterministic(seed, parametric, eb, mean_only):
    X, b = cohort(seed=seed)
    model = ComBat("T", parametric=parametric, eb=eb, mean_only=mean_only).fit(X[b == "T"], b[b == "T"])
    out = model.transform(X, b)
    assert out.shape == X.shape and (out.index == X.index).all()
    assert np.isfinite(out.to_numpy()).all()
    again = ComBat("T", parametric=parametric, eb=eb, mean_only=mean_only).fit(X[b == "T"], b[b == "T"])
    assert json.dumps(again.batches_) == json.dumps(model.batches_)
    pd.testing.assert_frame_equal(again.transform(X, b), out, rtol=0, atol=0)


REFERENCE_RUNS = {
    "parametric_unadjusted": [],
    "parametric_adjusted": ["--covariates", "pheno"],
    "nonparametric_adjusted": ["--covariates", "pheno", "--nonparametric"],
    "parametric_adjusted_noeb": ["--covariates", "pheno", "--no-eb"],
    "parametric_adjusted_meanonly": ["--covariates", "pheno", "--mean-only"],
    "parametric_adjusted_batchref": ["--covariates", "pheno", "--ref-batch", "1"],
}


@pytest.mark.parametrize("name", sorted(REFERENCE_RUNS))
def test_cli_equals_r_neurocombat_reference(shared_data, tmp_path, name):
    """neuroCombat's R outputs (Jfortin1/ComBatHarmonization) for every configuration shipped with them."""
    from mcrad.cli import main

    ref_dir = shared_data / "combat_reference"
    data = pd.read_csv(ref_dir / "testdata.csv")  # features x samples
    table = data.T.reset_index(drop=True)
    table.columns = [f"feature{j}" for j in range(table.shape[1])]
    table.insert(0, "batch", [1] * 5 + [2] * 5)
    if "pheno" in REFERENCE_RUNS[name]:
        table.insert(1, "pheno", [1, 0] * 5)  # R: model.matrix(~pheno), 1 for samples 1,3,5,7,9
    table.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    assert main(["harmonise", "--features", str(tmp_path / "in.tsv"), "--batch-col", "batch",
                 "--out", str(tmp_path / "out.tsv"), *REFERENCE_RUNS[name]]) == 0
    ours = pd.read_csv(tmp_path / "out.tsv", sep="\t").drop(columns=["batch", "pheno"], errors="ignore")
    expected = pd.read_csv(ref_dir / "outputs" / f"testdata_combat_{name}_r.csv").T.to_numpy()
    np.testing.assert_allclose(ours.to_numpy(), expected, rtol=0, atol=1e-6)


def with_covariates(seed=0):
    X, b = cohort(seed=seed)
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame({"age": rng.normal(60, 8, len(X)), "sex": rng.choice(["F", "M"], len(X))}, index=X.index)
    X = X.add(0.05 * (cov["age"] - 60).to_numpy()[:, None]).add(0.8 * (cov["sex"] == "M").to_numpy()[:, None])
    return X, b, cov


def test_sklearn_protocol_clone_and_fit_transform():
    from sklearn.base import clone

    X, b, cov = with_covariates()
    model = ComBat("T", categorical=("sex",), continuous=("age",))
    assert clone(model).get_params() == model.get_params()
    pd.testing.assert_frame_equal(model.fit_transform(X, b, cov), clone(model).fit(X, b, cov).transform(X, b, cov))


def test_covariate_imbalance_is_not_mistaken_for_a_batch_effect():
    # Men have +2 on every feature. The external centre is 80% men, the training centre 20%: without the
    # covariate ComBat removes part of the sex effect as if it were the scanner; with it, it does not.
    rng = np.random.default_rng(3)
    n_t, n_e = 400, 400
    sex = np.r_[rng.random(n_t) < 0.2, rng.random(n_e) < 0.8]
    batch = pd.Series(["T"] * n_t + ["E"] * n_e)
    noise = pd.DataFrame(rng.normal(0, 1, (n_t + n_e, 4)), columns=list("abcd"))
    scanner = np.where(batch == "E", 1.5, 1.0)[:, None], np.where(batch == "E", 1.0, 0.0)[:, None]
    X = noise * scanner[0] + scanner[1] + 2.0 * sex[:, None]  # ComBat's model: additive covariate effect
    cov = pd.DataFrame({"sex": np.where(sex, "M", "F")})
    truth = (noise + 2.0 * sex[:, None])[batch == "E"]  # the external patients on the reference scanner
    with_cov = ComBat("T", categorical=("sex",)).fit(X[batch == "T"], batch[batch == "T"], cov[batch == "T"])
    without = ComBat("T").fit(X[batch == "T"], batch[batch == "T"])
    err_with = (with_cov.transform(X, batch, cov)[batch == "E"] - truth).abs().mean().mean()
    err_without = (without.transform(X, batch)[batch == "E"] - truth).abs().mean().mean()
    assert err_with < 0.15 and err_without > 3 * err_with, (err_with, err_without)


def test_unseen_covariate_level_is_a_clear_error():
    X, b, cov = with_covariates()
    train = b == "T"
    model = ComBat("T", categorical=("sex",)).fit(X[train], b[train], cov[train])
    cov.loc[cov.index[-1], "sex"] = "X"
    with pytest.raises(McradError, match=r"covariate 'sex' has value\(s\) \['X'\].*Fix"):
        model.transform(X, b, cov)


def test_feature_constant_within_one_centre_stays_finite_and_is_reported(caplog):
    X, b = cohort()
    X.loc[b == "E1", "f0"] = 3.0
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    with caplog.at_level("WARNING", logger="mcrad"):
        out = model.transform(X, b)
    assert np.isfinite(out.to_numpy()).all()
    assert "centre E1 has 1 feature(s) constant" in caplog.text


def test_constant_feature_in_fit_is_refused_with_the_fix():
    X, b = cohort()
    X["flat"] = 2.0
    with pytest.raises(McradError, match=r"\['flat'\] are constant.*excluded_features"):
        ComBat("T").fit(X[b == "T"], b[b == "T"])


def test_missing_external_value_stays_missing_and_does_not_move_its_centre(caplog):
    X, b = cohort()
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    X_nan = X.copy()
    X_nan.loc["E1-4", "f2"] = np.nan
    with caplog.at_level("WARNING"):
        out = model.transform(X_nan, b)
    assert "E1-4" in caplog.text
    assert np.isnan(out.loc["E1-4", "f2"]) and out.drop(index="E1-4").notna().all().all()
    assert np.isfinite(out.loc["E1-4"].drop("f2")).all()
    # the centre's batch effect comes from its complete cases only
    keep = b.index != "E1-4"
    pd.testing.assert_frame_equal(out[keep], model.transform(X[keep], b[keep]))


def test_unseen_centre_with_too_few_complete_cases_is_a_clear_error():
    X, b = cohort(sizes=(("T", 20), ("E1", 4)))
    model = ComBat("T").fit(X[b == "T"], b[b == "T"])
    X.loc[["E1-0", "E1-1"], "f0"] = np.nan
    with pytest.raises(McradError, match=r"centre E1 has 2 case\(s\) with every feature present.*Fix"):
        model.transform(X, b)
