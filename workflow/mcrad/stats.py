"""The statistics of the study, each defined once and checked against a trusted reference (tests/r/*.R):
DeLong AUC variance and paired test (R pROC), one-vs-rest influences for multi-class AUCs, Hand-Till M (pROC
multiclass.roc), Wilson intervals, Harrell's C with its infinitesimal-jackknife variance and paired test (R
survival::concordance), calibration intercept and slope, log-rank, time-dependent AUC, permutation nulls of AUC,
macro AUC and C (vectorised over a permutation matrix; p-values checked against exact Mann-Whitney and Kendall
distributions), ICC(3,1) and Dice."""
from __future__ import annotations

import numpy as np
from scipy import stats


# ---- discrimination of a binary outcome: AUC with DeLong variance -------------------------------------------
def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components: V10 of each positive, V01 of each negative (fast midrank form of
    Sun & Xu 2014)."""
    y, score = np.asarray(y).astype(int), np.asarray(score, float)
    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError("AUC needs both classes")
    tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    return float(auc), (tz[:m] - tx) / n, 1.0 - (tz[m:] - ty) / m


def delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance (DeLong et al. 1988)."""
    auc, v10, v01 = delong_components(y, score)
    m, n = len(v10), len(v01)
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n if m > 1 and n > 1 else np.nan
    return auc, float(var)


def wald_interval(estimate: float, var: float, alpha: float) -> tuple[float, float]:
    """Wald interval clipped to [0, 1] (as R pROC clips AUC intervals); NaN when the variance is undefined."""
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    if not np.isfinite(half):
        return np.nan, np.nan
    return max(0.0, estimate - half), min(1.0, estimate + half)


def auc_ci(y: np.ndarray, score: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC with a DeLong (1 - alpha) interval, clipped to [0, 1] as R pROC does."""
    auc, var = delong(y, score)
    return (auc, *wald_interval(auc, var, alpha))


def _two_sided_p(diff: float, var: float) -> float:
    if var <= 0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))


def delong_paired(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired DeLong test of two scores on the same cases: (AUC_a - AUC_b, two-sided p)."""
    auc_a, v10a, v01a = delong_components(y, a)
    auc_b, v10b, v01b = delong_components(y, b)
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(v10a) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(v01a)
    diff = auc_a - auc_b
    return float(diff), _two_sided_p(diff, var)


def univariate_auc(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUC of each column for a binary y (Mann-Whitney with midranks), all columns at once."""
    ranks = stats.rankdata(X, axis=0)
    pos = y == 1
    m, n = pos.sum(), (~pos).sum()
    return (ranks[pos].sum(axis=0) - m * (m + 1) / 2) / (m * n)


# ---- multi-class discrimination -------------------------------------------------------------------------------
def ovr_influence(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """AUC of a score for binary y, and each patient's DeLong influence on it: (V10_i - AUC) / sqrt(m (m - 1)) for
    the m positives, (V01_j - AUC) / sqrt(n (n - 1)) for the n negatives. The sum of squares is DeLong's variance;
    summed cross-products of two AUCs' influences on the same patients are their covariance, which for two scores
    of one label is exactly the paired DeLong covariance, and extends it to AUCs of different labels (the
    one-vs-rest AUCs of a multi-class model). NaN influences when a class has fewer than two patients."""
    y = np.asarray(y).astype(int)
    auc, v10, v01 = delong_components(y, score)
    m, n = len(v10), len(v01)
    psi = np.full(len(y), np.nan)
    if m > 1 and n > 1:
        psi[y == 1] = (v10 - auc) / np.sqrt(m * (m - 1))
        psi[y == 0] = (v01 - auc) / np.sqrt(n * (n - 1))
    return auc, psi


def macro_auc(y: np.ndarray, proba: np.ndarray) -> tuple[float, np.ndarray, list[int]]:
    """Macro-average of the one-vs-rest AUCs (class k's probability separating class k from the rest) over the
    classes present, each patient's influence on it (its variance is their sum of squares), and the classes used.
    NaN with fewer than two classes present."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    present = [k for k in range(proba.shape[1]) if 0 < (y == k).sum() < len(y)]
    if len(present) < 2:
        return np.nan, np.full(len(y), np.nan), present
    aucs, influences = zip(*(ovr_influence(y == k, proba[:, k]) for k in present), strict=True)
    return float(np.mean(aucs)), np.mean(influences, axis=0), present


def influence_paired(est_a: float, psi_a: np.ndarray, est_b: float, psi_b: np.ndarray) -> tuple[float, float]:
    """Paired Wald test of two estimates from their influences on the same patients: (a - b, two-sided p)."""
    diff, var = est_a - est_b, float(np.sum((psi_a - psi_b) ** 2))
    return diff, (_two_sided_p(diff, var) if np.isfinite(diff) else np.nan)


def hand_till(y: np.ndarray, proba: np.ndarray) -> float:
    """Hand & Till (2001) multi-class AUC M: the mean over pairs of classes (i, j), both present, of
    (A(i|j) + A(j|i)) / 2, where A(i|j) is the AUC of p_i separating class i from class j among their patients
    (as R pROC::multiclass.roc and sklearn's roc_auc_score(multi_class='ovo'))."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    present = [k for k in range(proba.shape[1]) if (y == k).any()]
    pairs = []
    for a, i in enumerate(present):
        for j in present[a + 1:]:
            both = (y == i) | (y == j)
            a_ij = delong((y[both] == i).astype(int), proba[both, i])[0]
            a_ji = delong((y[both] == j).astype(int), proba[both, j])[0]
            pairs.append((a_ij + a_ji) / 2)
    return float(np.mean(pairs)) if pairs else np.nan


# ---- proportions and calibration ------------------------------------------------------------------------------
def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    if n == 0:
        return np.nan, np.nan
    z = stats.norm.ppf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def calibration(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration intercept (in the large: logistic model of y with offset logit(p)) and slope (coefficient
    of logit(p)); 0 and 1 when predictions are calibrated. NaN when they cannot be estimated."""
    import warnings

    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    lp = np.log(np.clip(p, 1e-12, 1 - 1e-12) / (1 - np.clip(p, 1e-12, 1 - 1e-12)))
    if len(np.unique(y)) < 2 or np.ptp(lp) == 0:
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            intercept = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit().params[0]
            slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
        except (PerfectSeparationWarning, np.linalg.LinAlgError, ValueError):
            return np.nan, np.nan
    return float(intercept), float(slope)


# ---- survival -------------------------------------------------------------------------------------------------
def concordance_influence(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, np.ndarray]:
    """Harrell's C of a risk score (higher = earlier event) and each patient's infinitesimal-jackknife influence on
    it, as R survival::concordance(reverse = TRUE) computes them: a pair is comparable when the earlier time is an
    event (a censored time tied with an event counts as later), tied risks count 1/2, tied event times are not
    comparable. The sum of squared influences is its variance; the cross-products of two risk scores' influences
    on the same patients their covariance. O(n^2) memory: fine for cohorts of a few thousand."""
    t, e, r = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(risk, float)
    comparable = e[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :]))
    score = comparable * ((r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :]))
    n_pairs = comparable.sum()
    if n_pairs == 0:
        return np.nan, np.full(len(t), np.nan)
    c = score.sum() / n_pairs
    # derivative of C = N(w)/D(w) with respect to each case weight, at w = 1 (each case is in rows and columns)
    d_num = score.sum(axis=1) + score.sum(axis=0)
    d_den = comparable.sum(axis=1) + comparable.sum(axis=0)
    return float(c), (d_num - c * d_den) / n_pairs


def concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, float]:
    """Harrell's C and its infinitesimal-jackknife variance (R survival::concordance)."""
    c, influence = concordance_influence(time, event, risk)
    return c, float(np.sum(influence ** 2)) if np.isfinite(c) else np.nan


def concordance_paired(time: np.ndarray, event: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired test of two risk scores' C-indices on the same patients: (C_a - C_b, two-sided Wald p), the variance
    of the difference from the infinitesimal-jackknife covariance of the two C-indices (as R
    survival::concordance(Surv(time, event) ~ a + b) with the contrast c(1, -1))."""
    ca, ia = concordance_influence(time, event, a)
    cb, ib = concordance_influence(time, event, b)
    if not (np.isfinite(ca) and np.isfinite(cb)):
        return np.nan, np.nan
    diff, var = ca - cb, float(np.sum((ia - ib) ** 2))  # var_a + var_b - 2 cov_ab
    return float(diff), _two_sided_p(diff, var)


def univariate_concordance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C-index of each column as a risk score for survival y = (time, event) columns."""
    return np.array([concordance(y[:, 0], y[:, 1], X[:, j])[0] for j in range(X.shape[1])])


def logrank_p(time: np.ndarray, event: np.ndarray, high: np.ndarray) -> float:
    """Log-rank test between two groups (lifelines); NaN when one group is empty."""
    from lifelines.statistics import logrank_test

    high = np.asarray(high, bool)
    if high.all() or not high.any():
        return np.nan
    return float(logrank_test(time[high], time[~high], event[high], event[~high]).p_value)


def ipcw_weights(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """1 / G(T_i-) with G the Kaplan-Meier estimate of the censoring distribution (events before censorings
    at tied times, so a censoring at T_i does not lower G(T_i-))."""
    t, e = np.asarray(time, float), np.asarray(event).astype(bool)
    times = np.unique(t[~e])
    at_risk = np.array([(t >= u).sum() for u in times])
    censored = np.array([((t == u) & ~e).sum() for u in times])
    surv = np.concatenate([[1.0], np.cumprod(1 - censored / at_risk)])  # surv[k]: after the first k censorings
    before = np.searchsorted(times, t, side="left")  # censoring times strictly before each T_i
    return 1.0 / surv[before]


def td_auc(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float) -> float:
    """Cumulative/dynamic AUC at `horizon` (Uno et al. 2007): cases had the event by the horizon (weighted by
    inverse probability of remaining uncensored), controls are still event-free after it. NaN if either is empty."""
    t, e, r = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(risk, float)
    cases, controls = e & (t <= horizon), t > horizon
    if not cases.any() or not controls.any():
        return np.nan
    w = ipcw_weights(t, e)[cases]
    rc, rn = r[cases][:, None], r[controls][None, :]
    wins = ((rc > rn) + 0.5 * (rc == rn)).sum(axis=1)
    return float((w * wins).sum() / (w.sum() * controls.sum()))


# ---- permutation tests: discrimination of fixed scores against permuted outcomes ---------------------------
def permutation_indices(groups: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """permutations x n row indices, each row a permutation that moves rows only within their group (a centre), so
    a pooled test keeps each centre's own outcome mix. Row p of a statistic's null puts the outcome of patient
    index[p, i] beside the score of patient i."""
    groups = np.asarray(groups)
    index = np.empty((permutations, len(groups)), dtype=np.intp)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        index[:, rows] = rng.permuted(np.tile(rows, (permutations, 1)), axis=1)
    return index


def permuted_auc(y: np.ndarray, score: np.ndarray, index: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney with midranks, as delong) of a fixed score against the labels y[index] of each row of
    index: one matrix product of the permuted labels with the score's ranks. NaN when y has one class."""
    y, index = np.asarray(y).astype(int), np.atleast_2d(index)
    m, n = int(y.sum()), int(len(y) - y.sum())
    if m == 0 or n == 0:
        return np.full(len(index), np.nan)
    ranks = _midranks(np.asarray(score, float))
    return (y[index] @ ranks - m * (m + 1) / 2) / (m * n)


def permuted_macro_auc(y: np.ndarray, proba: np.ndarray, index: np.ndarray) -> np.ndarray:
    """macro_auc (mean one-vs-rest AUC over the classes present) of fixed class probabilities against the class
    indices y[index] of each row of index. A permutation keeps the classes present."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    present = [k for k in range(proba.shape[1]) if 0 < (y == k).sum() < len(y)]
    if len(present) < 2:
        return np.full(len(np.atleast_2d(index)), np.nan)
    return np.mean([permuted_auc((y == k).astype(int), proba[:, k], index) for k in present], axis=0)


def permuted_concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray, index: np.ndarray,
                         cells: int = 2 ** 23) -> np.ndarray:
    """Harrell's C (as concordance) of a fixed risk score against the (time, event) pairs moved together by each
    row of index. The pairwise order of the risks is computed once; the comparable pairs per permutation in chunks
    of about `cells` pair cells (memory). NaN when no pair is comparable."""
    t, e, index = np.asarray(time, float), np.asarray(event).astype(bool), np.atleast_2d(index)
    r = np.asarray(risk, float)
    wins = (r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :])
    out = np.empty(len(index))
    step = max(1, cells // max(1, len(t) ** 2))
    for start in range(0, len(index), step):
        tp, ep = t[index[start:start + step]], e[index[start:start + step]]
        comparable = ep[:, :, None] & ((tp[:, :, None] < tp[:, None, :])
                                       | ((tp[:, :, None] == tp[:, None, :]) & ~ep[:, None, :]))
        pairs = comparable.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + step] = np.einsum("pij,ij->p", comparable, wins) / pairs
    return out


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value that the observed statistic is no better than the null: (1 + #{null >=
    observed}) / (1 + k) (Phipson & Smyth 2010: never 0, exact-valid). Equal statistics count as reaching it
    (a relative tolerance absorbs the rounding of sums taken in different orders). NaN when undefined."""
    null = np.asarray(null, float)
    if not np.isfinite(observed) or len(null) == 0 or not np.isfinite(null).all():
        return np.nan
    reached = int((null >= observed - 1e-10 * max(1.0, abs(observed))).sum())
    return (1 + reached) / (1 + len(null))


# ---- agreement ------------------------------------------------------------------------------------------------
def icc_31(Y: np.ndarray) -> tuple[float, float, float]:
    """ICC(3,1), two-way mixed, consistency, single rater (Shrout & Fleiss 1979; McGraw & Wong 1996 case 3),
    with its exact F-based 95% interval. Y: subjects x raters (here cases x contour variants)."""
    n, k = Y.shape
    grand = Y.mean()
    ss_rows = k * ((Y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((Y.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((Y - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_err = ss_rows / (n - 1), ss_err / ((n - 1) * (k - 1))
    if not (np.isfinite(ms_rows) and np.isfinite(ms_err)) or ms_rows + (k - 1) * ms_err <= 0:
        return (np.nan, np.nan, np.nan)  # no variation at all: agreement is undefined, not perfect
    icc = (ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    F = ms_rows / ms_err if ms_err > 0 else np.inf
    f_low, f_up = F / stats.f.ppf(0.975, df1, df2), F * stats.f.ppf(0.975, df2, df1)
    return float(icc), float((f_low - 1) / (f_low + k - 1)), float((f_up - 1) / (f_up + k - 1))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (arrays of any shape); 1.0 when both are empty (they agree)."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
