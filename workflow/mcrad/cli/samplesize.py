"""sample-size: minimum n for developing a prediction model (Riley et al. 2020 criteria, as pmsampsize)."""
from __future__ import annotations

from pathlib import Path

from mcrad.errors import McradError


def _binary(a):
    from mcrad import samplesize as ss

    if a.prevalence is None or any(v is not None for v in (a.rate, a.timepoint, a.meanfup)):
        raise McradError("--type binary needs --prevalence (and no --rate/--timepoint/--meanfup)")
    r2 = a.rsquared if a.rsquared is not None else ss.cstatistic_to_r2cs(a.cstatistic, a.prevalence)
    return ss.binary(a.parameters, a.prevalence, r2, a.shrinkage)


def _survival(a):
    from mcrad import samplesize as ss

    if a.prevalence is not None or any(v is None for v in (a.rate, a.timepoint, a.meanfup)):
        raise McradError("--type survival needs --rate, --timepoint and --meanfup (and no --prevalence)")
    if a.cstatistic is not None:
        raise McradError("--cstatistic is for --type binary (pmsampsize approximates R-squared from C only "
                         "for binary outcomes); give --rsquared")
    return ss.survival(a.parameters, a.rate, a.timepoint, a.meanfup, a.rsquared, a.shrinkage)


OUTCOMES = {"binary": _binary, "survival": _survival}  # pmsampsize's outcome types


def cmd_sample_size(a) -> None:
    from mcrad import samplesize as ss

    if (a.rsquared is None) == (a.cstatistic is None):
        raise McradError("give exactly one of --rsquared and --cstatistic")
    res = OUTCOMES[a.type](a)
    ss.write_tsv(res, Path(a.out))
    src = f" (from C-statistic {a.cstatistic})" if a.cstatistic is not None else ""
    print(f"Cox-Snell R-squared {res.r2cs}{src}, max {res.max_r2cs:.3f}, Nagelkerke {res.nagelkerke:.3f}")
    for r in res.rows:
        print(f"criterion {r.criterion}: n {r.n}, shrinkage {r.shrinkage:.3f}, events {r.events:.1f}, EPP {r.epp}")
    if res.risk_ci is not None:
        lo, risk, hi = res.risk_ci
        print(f"95% CI of the overall risk at the timepoint: {lo:.3f}-{hi:.3f} (true {risk:.3f}) for n {res.n}")
    print(f"minimum sample size {res.n} -> {a.out}")


def register(sub) -> None:
    s = sub.add_parser("sample-size", help="minimum n to develop a prediction model (Riley 2020, as pmsampsize)")
    s.add_argument("--type", required=True, choices=tuple(OUTCOMES))
    s.add_argument("--parameters", required=True, type=int, help="candidate predictor parameters")
    s.add_argument("--rsquared", type=float, default=None, help="anticipated Cox-Snell R-squared")
    s.add_argument("--cstatistic", type=float, default=None,
                   help="binary: anticipated C-statistic, converted to Cox-Snell R-squared as pmsampsize does")
    s.add_argument("--prevalence", type=float, default=None, help="binary: outcome proportion")
    s.add_argument("--rate", type=float, default=None, help="survival: overall event rate per time unit")
    s.add_argument("--timepoint", type=float, default=None, help="survival: timepoint of interest")
    s.add_argument("--meanfup", type=float, default=None, help="survival: mean follow-up (same unit)")
    s.add_argument("--shrinkage", type=float, default=0.9, help="target expected shrinkage (default 0.9)")
    s.add_argument("--out", required=True, help="TSV: criterion, n, events, epp (last row `final`)")
    s.set_defaults(func=cmd_sample_size)
