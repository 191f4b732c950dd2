"""Minimum sample size (Riley et al. 2020, BMJ 368:m441) against the R package pmsampsize's own tests.

Expected values are copied from pmsampsize's testthat files (github.com/JoieEnsor/pmsampsize, the package's
development repository; version 1.1.x, where max R-squared and the criterion-2 shrinkage are no longer rounded):
- tests/testthat/test_bin.R  (commit eff064c00a170bba83af3bfc97add2a00821fa74), tests 4.1-4.4;
- tests/testthat/test_surv.R (commit 9b2eea797a157c75d8ebd45e55779a0835696026), tests 3.1-3.9.
Each gives the sample size of criteria 1, 2, 3 and the final one, and the EPP of each (rounded to 2 decimals).
"""
import math

import pytest
from mcrad import samplesize as ss
from mcrad.cli import main
from mcrad.errors import McradError

# test_bin.R: pmsampsize(type="b", csrsquared=R2, parameters=P, prevalence=Q) -> n (crit 1, 2, 3, final), EPP
BINARY = [
    ("4.1", 0.288, 24, 0.174, (623, 662, 221, 662), (4.52, 4.8, 1.6, 4.8)),
    ("4.2", 0.55, 24, 0.174, (255, 532, 221, 532), (1.85, 3.86, 1.6, 3.86)),
    ("4.3", 0.288, 36, 0.174, (934, 992, 221, 992), (4.51, 4.79, 1.07, 4.79)),
    ("4.4", 0.288, 24, 0.25, (623, 590, 289, 623), (6.49, 6.15, 3.01, 6.49)),
]

# test_surv.R: pmsampsize(type="s", rsquared=R2, parameters=P, rate=, timepoint=, meanfup=)
SURVIVAL = [
    ("3.1", 0.051, 25, 0.065, 2, 2.07, (4286, 866, 4286, 4286), (23.07, 4.66, 23.07, 23.07)),
    ("3.2", 0.065, 25, 0.065, 2, 2.07, (3335, 859, 3335, 3335), (17.95, 4.62, 17.95, 17.95)),
    ("3.3", 0.051, 50, 0.065, 2, 2.07, (8572, 1731, 8572, 8572), (23.07, 4.66, 23.07, 23.07)),
    ("3.4", 0.051, 25, 0.1, 2, 2.07, (4286, 731, 4286, 4286), (35.49, 6.05, 35.49, 35.49)),
    ("3.5", 0.051, 25, 0.065, 4, 2.07, (4286, 866, 4286, 4286), (23.07, 4.66, 23.07, 23.07)),
    ("3.6", 0.051, 25, 0.065, 2, 4, (4286, 679, 4286, 4286), (44.57, 7.06, 44.57, 44.57)),
    ("3.7", 0.06, 40, 0.08, 3, 5, (5798, 969, 5798, 5798), (57.98, 9.69, 57.98, 57.98)),
    ("3.8", 0.03, 10, 0.09, 3, 3, (2950, 272, 2950, 2950), (79.65, 7.34, 79.65, 79.65)),
    ("3.9", 0.3, 80, 0.03, 1, 5, (1974, 2272, 2272, 2272), (3.7, 4.26, 4.26, 4.26)),
]


@pytest.mark.parametrize("name,r2,p,q,n,epp", BINARY, ids=[b[0] for b in BINARY])
def test_binary_equals_pmsampsize_tests(name, r2, p, q, n, epp):
    res = ss.binary(p, q, r2)
    assert tuple(r.n for r in res.rows) == n
    assert tuple(r.epp for r in res.rows) == pytest.approx(epp, abs=1e-9)
    assert [r.criterion for r in res.rows] == ["1", "2", "3", "final"] and res.n == n[-1]
    assert res.rows[-1].events == pytest.approx(n[-1] * q)


@pytest.mark.parametrize("name,r2,p,rate,t,fup,n,epp", SURVIVAL, ids=[s[0] for s in SURVIVAL])
def test_survival_equals_pmsampsize_tests(name, r2, p, rate, t, fup, n, epp):
    res = ss.survival(p, rate, t, fup, r2)
    assert tuple(r.n for r in res.rows) == n
    assert tuple(r.epp for r in res.rows) == pytest.approx(epp, abs=1e-9)
    assert res.rows[-1].events == pytest.approx(n[-1] * rate * fup)
    lo, risk, hi = res.risk_ci
    assert lo < risk < hi and risk == pytest.approx(1 - math.exp(-rate * t))


def test_closed_forms():
    # criterion 3 (binary) is (1.96/0.05)^2 Q(1-Q) rounded up; max R2cs for Q = 0.5 is 1 - 0.25 = 0.75
    assert ss.precision_n_binary(0.5) == math.ceil(1536.64 * 0.25)
    assert ss.max_r2cs_binary(0.5) == pytest.approx(0.75)
    # criterion 2's shrinkage makes the expected optimism in Nagelkerke R2 exactly 0.05 (Riley 2019, eq. 23)
    s = ss.optimism_shrinkage(0.288, ss.max_r2cs_binary(0.174))
    assert (0.288 / s - 0.288) / ss.max_r2cs_binary(0.174) == pytest.approx(0.05)


def test_r_random_numbers_are_rs_own():
    # R 4.2.2: set.seed(123456); print(rnorm(3), digits = 17)
    assert ss.r_rnorm([(3, 0.0)], 123456).tolist() == [0.8337331707551384, -0.27604777321486657,
                                                         -0.3550018380334056]


# pmsampsize's cstat2rsq (R/cstat2rsq.R: 1e6 draws from set.seed(123456), glm(y ~ LP, binomial)) run in R 4.2.2
# with that function's body (pmsampsize itself cannot be installed here): unrounded Cox-Snell R-squared.
# No published pmsampsize output for the C-statistic option was found; these values are a cross-check, not a source.
R_CSTAT2RSQ = [(0.89, 0.174, 0.290171932787), (0.81, 0.77, 0.212441160416), (0.8, 0.174, 0.166311375106)]


@pytest.mark.parametrize("c,q,r2", R_CSTAT2RSQ)
def test_cstatistic_to_r2cs_equals_r(c, q, r2):
    assert ss.cstatistic_to_r2cs(c, q) == round(r2, 4)
    # and it estimates the two-normal model's population value
    assert ss.population_r2cs(c, q) == pytest.approx(r2, abs=2e-3)


def test_errors():
    with pytest.raises(McradError, match="exceeds the largest possible"):
        ss.binary(10, 0.02, 0.3, shrinkage=0.95)
    with pytest.raises(McradError, match="shrinkage"):
        ss.binary(10, 0.3, 0.5, shrinkage=0.4)
    with pytest.raises(McradError, match="prevalence"):
        ss.binary(10, 1.2, 0.1)


def test_cli_writes_the_table(tmp_path, capsys):
    out = tmp_path / "ss.tsv"
    assert main(["sample-size", "--type", "binary", "--parameters", "24", "--rsquared", "0.288",
                 "--prevalence", "0.174", "--out", str(out)]) == 0
    lines = [ln.split("\t") for ln in out.read_text().splitlines()]
    assert lines[0] == ["criterion", "n", "events", "epp"]
    assert [ln[0] for ln in lines[1:]] == ["1", "2", "3", "final"]
    assert [int(ln[1]) for ln in lines[1:]] == [623, 662, 221, 662]  # test_bin.R 4.1
    assert lines[-1][2:] == [f"{662 * 0.174:.2f}", "4.80"]
    assert "minimum sample size 662" in capsys.readouterr().out

    assert main(["sample-size", "--type", "survival", "--parameters", "25", "--rsquared", "0.051", "--rate",
                 "0.065", "--timepoint", "2", "--meanfup", "2.07", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[-1].split("\t")[:2] == ["final", "4286"]  # test_surv.R 3.1

    assert main(["sample-size", "--type", "binary", "--parameters", "24", "--cstatistic", "0.89",
                 "--prevalence", "0.174", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[-1].split("\t")[1] == str(ss.binary(24, 0.174, 0.2902).n)


def test_cli_refuses_inconsistent_options(tmp_path, capsys):
    out = str(tmp_path / "x.tsv")
    assert main(["sample-size", "--type", "binary", "--parameters", "5", "--rsquared", "0.1", "--cstatistic",
                 "0.7", "--prevalence", "0.2", "--out", out]) == 2
    assert main(["sample-size", "--type", "survival", "--parameters", "5", "--rsquared", "0.1",
                 "--prevalence", "0.2", "--out", out]) == 2
    assert "mcrad: error:" in capsys.readouterr().err
