"""Minimum sample size for developing a clinical prediction model (Riley et al. 2020, BMJ 368:m441).

The closed forms of the R package pmsampsize (Ensor, Martin, Riley; version 1.1.x), for binary and survival
(time-to-event) outcomes, each criterion giving a sample size n, its expected events and events per candidate
parameter (EPP); the required n is the largest:

1. expected uniform shrinkage of predictor effects >= S (default 0.9):
   n = P / ((S - 1) ln(1 - R2cs / S));
2. small optimism (0.05) in Nagelkerke's R-squared: criterion 1 with S = R2cs / (R2cs + 0.05 max(R2cs)), where
   max(R2cs) = 1 - exp(2 lnL_null / n) is the largest Cox-Snell R-squared the outcome frequency allows;
3. binary: the overall risk estimated within +-0.05, n = (1.96 / 0.05)^2 Q (1 - Q); survival: as pmsampsize,
   n = max(criteria 1, 2) and the 95% CI of the overall risk at the timepoint for that n is reported.

An anticipated Cox-Snell R-squared may instead be derived from a C-statistic and the prevalence as pmsampsize
does (Riley, Van Calster, Collins 2021, Stat Med 40:859): a linear predictor N(0, 1) in one outcome group and
N(sqrt(2) Phi^-1(C), 1) in the other, 1,000,000 cases drawn with R's generator (Mersenne-Twister, inversion) from
seed 123456, a logistic recalibration fitted by maximum likelihood, R2cs = 1 - exp(-LR / n) rounded to 4 decimals.
The draw is R's own (set.seed and rnorm reproduced here), so the result is deterministic and equals pmsampsize's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcrad.errors import McradError

DEFAULT_SHRINKAGE = 0.9
OPTIMISM = 0.05  # acceptable difference in apparent and adjusted Nagelkerke R-squared (criterion 2)
MARGIN = 0.05  # margin of error of the overall risk (criterion 3)
Z = 1.96
CSTAT_N = 1_000_000  # pmsampsize's simulated sample for the C-statistic approximation
CSTAT_SEED = 123456
SURV_N = 10_000  # pmsampsize's arbitrary reference n for the survival max R-squared


@dataclass(frozen=True)
class Criterion:
    criterion: str
    n: int
    shrinkage: float
    events: float
    epp: float


@dataclass(frozen=True)
class SampleSize:
    type: str
    parameters: int
    r2cs: float
    max_r2cs: float
    rows: tuple[Criterion, ...]  # criteria 1-3, then `final`
    risk_ci: tuple[float, float, float] | None = None  # survival: (lower, risk at timepoint, upper) for final n

    @property
    def n(self) -> int:
        return self.rows[-1].n

    @property
    def nagelkerke(self) -> float:
        return self.r2cs / self.max_r2cs


def shrinkage_n(parameters: int, r2cs: float, shrinkage: float) -> int:
    """Criterion 1: the n whose expected uniform shrinkage is `shrinkage` (pmsampsize rounds up)."""
    if not 0 < r2cs < shrinkage < 1:
        raise McradError(f"need 0 < R-squared ({r2cs}) < shrinkage ({shrinkage}) < 1")
    return math.ceil(parameters / ((shrinkage - 1) * math.log(1 - r2cs / shrinkage)))


def optimism_shrinkage(r2cs: float, max_r2cs: float, delta: float = OPTIMISM) -> float:
    """Criterion 2: the shrinkage that keeps apparent minus adjusted Nagelkerke R-squared at `delta`."""
    return r2cs / (r2cs + delta * max_r2cs)


def max_r2cs_binary(prevalence: float) -> float:
    """Largest Cox-Snell R-squared with this outcome proportion: 1 - exp(2 lnL_null / n) (per case)."""
    q = prevalence
    return 1 - math.exp(2 * (q * math.log(q) + (1 - q) * math.log(1 - q)))


def max_r2cs_survival(rate: float, meanfup: float, n: int = SURV_N) -> float:
    """pmsampsize's survival max R-squared: an exponential null model, n cases followed `meanfup` on average."""
    events = math.ceil(rate * (meanfup * n))
    lnl_null = events * math.log(events / n) - events
    return 1 - math.exp(2 * lnl_null / n)


def precision_n_binary(prevalence: float, margin: float = MARGIN) -> int:
    """Criterion 3 (binary): the overall risk estimated within +-margin (95%)."""
    return math.ceil((Z / margin) ** 2 * prevalence * (1 - prevalence))


def risk_ci_survival(n: int, rate: float, timepoint: float, meanfup: float) -> tuple[float, float, float]:
    """Criterion 3 (survival): 95% CI of the overall risk at `timepoint` (exponential model) with n cases."""
    person_time = round(meanfup * n, 1)
    half = Z * math.sqrt(rate / person_time)
    return (1 - math.exp(-(rate - half) * timepoint), 1 - math.exp(-rate * timepoint),
            1 - math.exp(-(rate + half) * timepoint))


def _row(name: str, n: int, shrinkage: float, events_per_case: float, parameters: int) -> Criterion:
    events = n * events_per_case
    return Criterion(name, n, shrinkage, events, round(events / parameters, 2))


def _criteria(parameters: int, r2cs: float, shrinkage: float, max_r2: float) -> tuple[int, int, float]:
    if parameters < 1:
        raise McradError(f"--parameters must be a positive integer, got {parameters}")
    if max_r2 < r2cs:
        raise McradError(f"anticipated Cox-Snell R-squared {r2cs} exceeds the largest possible with this outcome "
                         f"frequency ({max_r2:.3f}, Riley et al. 2019 eq. 23)")
    n1 = shrinkage_n(parameters, r2cs, shrinkage)
    s2 = optimism_shrinkage(r2cs, max_r2)
    n2 = shrinkage_n(parameters, r2cs, s2)
    return n1, n2, s2


def binary(parameters: int, prevalence: float, r2cs: float, shrinkage: float = DEFAULT_SHRINKAGE) -> SampleSize:
    """Minimum n for a logistic model with `parameters` candidate parameters (pmsampsize type "b")."""
    if not 0 < prevalence < 1:
        raise McradError(f"--prevalence must lie in (0, 1), got {prevalence}")
    max_r2 = max_r2cs_binary(prevalence)
    n1, n2, s2 = _criteria(parameters, r2cs, shrinkage, max_r2)
    n3 = precision_n_binary(prevalence)
    s_final = max(s2, shrinkage)
    rows = (_row("1", n1, shrinkage, prevalence, parameters), _row("2", n2, s2, prevalence, parameters),
            _row("3", n3, s_final, prevalence, parameters),
            _row("final", max(n1, n2, n3), s_final, prevalence, parameters))
    return SampleSize("binary", parameters, r2cs, max_r2, rows)


def survival(parameters: int, rate: float, timepoint: float, meanfup: float, r2cs: float,
             shrinkage: float = DEFAULT_SHRINKAGE) -> SampleSize:
    """Minimum n for a Cox (time-to-event) model (pmsampsize type "s"); expected events = n * rate * meanfup."""
    for name, v in (("--rate", rate), ("--timepoint", timepoint), ("--meanfup", meanfup)):
        if not v > 0:
            raise McradError(f"{name} must be positive, got {v}")
    max_r2 = max_r2cs_survival(rate, meanfup)
    n1, n2, s2 = _criteria(parameters, r2cs, shrinkage, max_r2)
    n3 = max(n1, n2)
    s_final = max(s2, shrinkage)
    per_case = rate * meanfup
    rows = (_row("1", n1, shrinkage, per_case, parameters), _row("2", n2, s2, per_case, parameters),
            _row("3", n3, s_final, per_case, parameters), _row("final", n3, s_final, per_case, parameters))
    return SampleSize("survival", parameters, r2cs, max_r2, rows, risk_ci_survival(n3, rate, timepoint, meanfup))


# --- C-statistic -> Cox-Snell R-squared, as pmsampsize's cstat2rsq -------------------------------------------------

def _r_mersenne_twister(seed: int) -> np.random.MT19937:
    """R's set.seed(seed) for the default Mersenne-Twister: 50 LCG scramblings, then 625 LCG words of which
    the first is the position (reset to 624) and the other 624 the state."""
    s = seed & 0xFFFFFFFF
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    words = []
    for _ in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        words.append(s)
    bg = np.random.MT19937(0)
    bg.state = {"bit_generator": "MT19937", "state": {"key": np.array(words[1:], dtype=np.uint32), "pos": 624}}
    return bg


def r_rnorm(counts: list[tuple[int, float]], seed: int) -> np.ndarray:
    """R's `set.seed(seed); c(rnorm(k1, m1), rnorm(k2, m2), ...)` with the default kinds (Mersenne-Twister,
    Inversion): each normal uses two uniforms u1, u2 as qnorm((floor(2^27 u1) + u2) / 2^27)."""
    from scipy.special import ndtri

    total = sum(k for k, _ in counts)
    raw = _r_mersenne_twister(seed).random_raw(2 * total).astype(np.float64) * 2.3283064365386963e-10
    raw[raw <= 0] = 0.5 * 2.328306437080797e-10  # R's fixup (never reached by MT's [0, 1) output in practice)
    big = 134217728.0
    z = ndtri((np.floor(big * raw[0::2]) + raw[1::2]) / big)
    means = np.concatenate([np.full(k, m) for k, m in counts])
    return z + means


def _logistic_deviances(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Null and fitted deviance of the logistic regression y ~ x (Newton-Raphson, R's glm convergence)."""
    q = y.mean()
    null = -2 * (y.sum() * math.log(q) + (len(y) - y.sum()) * math.log(1 - q))
    beta = np.array([math.log(q / (1 - q)), 0.0])
    dev_old = null
    for _ in range(50):
        eta = beta[0] + beta[1] * x
        p = 1 / (1 + np.exp(-eta))
        w = p * (1 - p)
        g = np.array([np.sum(y - p), np.sum((y - p) * x)])
        h = np.array([[w.sum(), np.sum(w * x)], [np.sum(w * x), np.sum(w * x * x)]])
        beta = beta + np.linalg.solve(h, g)
        eta = beta[0] + beta[1] * x
        # -2 loglik = 2 sum log(1 + exp(-s eta)) with s = +-1 by outcome
        dev = 2 * float(np.sum(np.logaddexp(0, np.where(y == 1, -eta, eta))))
        if abs(dev - dev_old) / (abs(dev) + 0.1) < 1e-12:
            break
        dev_old = dev
    return float(null), dev


def cstatistic_to_r2cs(cstatistic: float, prevalence: float, seed: int = CSTAT_SEED, n: int = CSTAT_N) -> float:
    """Anticipated Cox-Snell R-squared from a C-statistic and the outcome proportion (pmsampsize's cstat2rsq:
    Riley, Van Calster, Collins 2021), rounded to 4 decimals as pmsampsize does."""
    from scipy.special import ndtri

    if not 0.5 < cstatistic < 1:
        raise McradError(f"--cstatistic must lie in (0.5, 1), got {cstatistic}")
    if not 0 < prevalence < 1:
        raise McradError(f"--prevalence must lie in (0, 1), got {prevalence}")
    mu = math.sqrt(2) * float(ndtri(cstatistic))
    k0, k1 = int(prevalence * n), int((1 - prevalence) * n)  # R truncates a fractional count
    lp = r_rnorm([(k0, 0.0), (k1, mu)], seed)
    y = np.concatenate([np.zeros(k0), np.ones(k1)])
    null, dev = _logistic_deviances(lp, y)
    return round(1 - math.exp(-(null - dev) / n), 4)


def population_r2cs(cstatistic: float, prevalence: float) -> float:
    """The quantity the simulation estimates, by quadrature: under the two-normal model the log-odds are exactly
    linear in the linear predictor, so R2cs = 1 - exp(-2 (E[loglik] - loglik_null)) per case."""
    from scipy.special import ndtri

    mu = math.sqrt(2) * float(ndtri(cstatistic))
    a, b = prevalence, 1 - prevalence  # group sizes with LP ~ N(0, 1) and N(mu, 1)
    x, wts = np.polynomial.hermite_e.hermegauss(200)
    wts = wts / wts.sum()

    def ll(mean: float, own: float, other: float) -> float:
        lp = x + mean
        # P(own group | lp) = own phi(lp - m_own) / (own phi(lp - m_own) + other phi(lp - m_other))
        m_other = mu if mean == 0 else 0.0
        log_ratio = math.log(other / own) + (-(lp - m_other) ** 2 + (lp - mean) ** 2) / 2
        return float(np.sum(wts * -np.logaddexp(0, log_ratio)))

    e_ll = a * ll(0.0, a, b) + b * ll(mu, b, a)
    ll_null = a * math.log(a) + b * math.log(b)
    return 1 - math.exp(-2 * (e_ll - ll_null))


def write_tsv(result: SampleSize, path) -> None:
    """criterion, n, events, epp; the last row `final`."""
    from pathlib import Path

    lines = ["criterion\tn\tevents\tepp"]
    lines += [f"{r.criterion}\t{r.n}\t{r.events:.2f}\t{r.epp:.2f}" for r in result.rows]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
