"""Our statistics against trusted R implementations on the same numbers (pROC, sva, survival)."""
import subprocess

import numpy as np
import pandas as pd
import pytest
from mcrad.harmonise.combat import ComBat
from mcrad.stats import auc_ci, delong, delong_paired


def proc_reference(rscript, tmp_path, seed: int, n: int) -> tuple[pd.DataFrame, pd.Series]:
    """Two tied, correlated scores of n cases, and what R pROC says of them (tests/r/delong.R)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    d = pd.DataFrame({"label": y, "a": np.round(rng.normal(y, 1.0), 1), "b": rng.normal(0.5 * y, 1.0)})
    d.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    subprocess.run([rscript, "tests/r/delong.R", tmp_path / "in.tsv", tmp_path / "out.tsv"], check=True)
    return d, pd.read_csv(tmp_path / "out.tsv", sep="\t").iloc[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_ci_equals_proc(rscript, tmp_path, seed):
    d, ref = proc_reference(rscript, tmp_path, seed, 80)
    auc, lo, hi = auc_ci(d["label"].to_numpy(), d["a"].to_numpy())
    assert auc == pytest.approx(ref["auc"], abs=1e-9)
    assert lo == pytest.approx(ref["lo"], abs=1e-6) and hi == pytest.approx(ref["hi"], abs=1e-6)
    assert delong(d["label"].to_numpy(), d["a"].to_numpy())[1] == pytest.approx(ref["var"], abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parametric", "nonparametric"])
def test_unseen_centre_combat_equals_sva_with_reference_batch(rscript, tmp_path, mode):
    rng = np.random.default_rng(4)
    rows = []
    for b, n, shift, scale in (("T", 25, 0.0, 1.0), ("E1", 15, 1.5, 1.6), ("E2", 12, -1.0, 0.7)):
        x = rng.normal(3, 1, (n, 8)) * scale * rng.uniform(0.8, 1.2, 8) + shift * rng.uniform(0.5, 1.5, 8)
        rows.append(pd.DataFrame(x, columns=[f"f{j}" for j in range(8)]).assign(batch=b))
    d = pd.concat(rows, ignore_index=True)
    d[["batch"] + [f"f{j}" for j in range(8)]].to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    subprocess.run([rscript, "tests/r/combat_ref.R", tmp_path / "in.tsv", tmp_path / "out.tsv", mode], check=True,
                   capture_output=True)
    ref = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    X, batch = d.drop(columns="batch"), d["batch"]
    model = ComBat("T", parametric=mode == "parametric").fit(X[batch == "T"], batch[batch == "T"])
    # each external centre on its own (as the workflow does); sva fits all three at once with T as reference
    for c in ("E1", "E2"):
        rows = batch.isin(["T", c])
        ours = model.transform(X[rows], batch[rows])[batch[rows] == c]
        np.testing.assert_allclose(ours.to_numpy(), ref[(batch == c).to_numpy()].to_numpy(), rtol=1e-6, atol=1e-6)


def test_calibration_intercept_and_slope_equal_r_glm(rscript, tmp_path):
    from mcrad.stats import calibration

    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 120)
    y = (rng.random(120) < p ** 1.5).astype(int)
    pd.DataFrame({"y": y, "p": p}).to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    code = ("d <- read.delim(commandArgs(TRUE)[1]); lp <- qlogis(d$p);"
            "a <- coef(glm(y ~ 1, offset = lp, family = binomial, data = d))[1];"
            "b <- coef(glm(y ~ lp, family = binomial, data = d))[2]; cat(sprintf('%.15f %.15f', a, b))")
    out = subprocess.run([rscript, "-e", code, tmp_path / "in.tsv"], check=True, capture_output=True, text=True)
    ref = [float(v) for v in out.stdout.split()]
    assert calibration(y, p) == pytest.approx(ref, abs=1e-7)


@pytest.mark.parametrize("seed", [0, 3])
def test_paired_delong_equals_proc_roc_test(rscript, tmp_path, seed):
    d, ref = proc_reference(rscript, tmp_path, seed, 90)
    diff, p = delong_paired(d["label"].to_numpy(), d["a"].to_numpy(), d["b"].to_numpy())
    assert p == pytest.approx(ref["p_paired"], abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c_index_variance_and_logrank_equal_r_survival(rscript, tmp_path, seed):
    from mcrad.stats import concordance, logrank_p

    rng = np.random.default_rng(seed)
    risk = np.round(rng.normal(size=70), 1)  # tied risks
    t = np.round(rng.exponential(np.exp(-0.7 * risk) * 10)) + 1  # tied times, events tied with censorings
    c = np.round(rng.uniform(3, 25, 70))
    d = pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "risk": risk,
                      "group": (risk >= np.median(risk)).astype(int)})
    assert d.duplicated(["time"]).any() and d.duplicated(["risk"]).any()
    d.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    subprocess.run([rscript, "tests/r/concordance.R", tmp_path / "in.tsv", tmp_path / "out.tsv"], check=True)
    ref = pd.read_csv(tmp_path / "out.tsv", sep="\t").iloc[0]
    c_index, var = concordance(d["time"], d["event"], d["risk"])
    assert c_index == pytest.approx(ref["c"], abs=1e-9)
    assert var == pytest.approx(ref["var"], abs=1e-9)
    p = logrank_p(d["time"].to_numpy(), d["event"].to_numpy(), d["group"].to_numpy() == 1)
    assert p == pytest.approx(ref["logrank_p"], abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_c_index_difference_and_p_equal_r_survival(rscript, tmp_path, seed):
    from mcrad.stats import concordance, concordance_paired

    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=80), 1)  # tied risks
    b = np.round(0.6 * a + rng.normal(scale=0.8, size=80), 1)  # correlated with a: the covariance matters
    t = np.round(rng.exponential(np.exp(-0.7 * a) * 10)) + 1  # tied times, events tied with censorings
    c = np.round(rng.uniform(3, 25, 80))
    d = pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "a": a, "b": b})
    assert d.duplicated(["time"]).any() and d.duplicated(["a"]).any()
    d.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    subprocess.run([rscript, "tests/r/concordance_paired.R", tmp_path / "in.tsv", tmp_path / "out.tsv"], check=True)
    ref = pd.read_csv(tmp_path / "out.tsv", sep="\t").iloc[0]
    assert abs(ref["cov"]) > 1e-5  # a correlated pair: an unpaired test would give a different p
    diff, p = concordance_paired(d["time"], d["event"], d["a"], d["b"])
    assert concordance(d["time"], d["event"], d["a"])[0] == pytest.approx(ref["c_a"], abs=1e-9)
    assert diff == pytest.approx(ref["diff"], abs=1e-6)
    assert p == pytest.approx(ref["p"], abs=1e-6)
    assert 1e-4 < p < 1  # not a degenerate p: the test can tell a wrong variance
