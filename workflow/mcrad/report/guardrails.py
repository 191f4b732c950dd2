"""Report section "Scientific guardrails": how far each result stands above what too few cases, tumour volume or
the scanner would give. An overview table of findings, then one section per guardrail.

Each guardrail is a part: a function (rep, cfg, inputs) -> list of Finding that adds its own section(s) (anchors
starting with "guardrails-") when its files were declared and present, and returns the one-line findings the
overview shows. Other guardrails (negative controls, permutation nulls) live in their own modules and are added
to PARTS; the overview and the checklist links need nothing else.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import NamedTuple

import pandas as pd

from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table


class Finding(NamedTuple):
    guardrail: str
    finding: str  # HTML
    anchor: str  # the section that shows it
    warning: bool = False


Part = Callable[[Report, dict, ReportInputs], list[Finding]]
SAMPLE_SIZE_COLUMNS = ["model", "parameters", "n_available", "events_available", "epp_available", "n_required",
                       "events_required", "epp_required", "available_vs_required", "status"]


def _endpoints(cfg: dict) -> list[str]:
    return [ep["name"] for ep in cfg["endpoints"]]


def sample_size_part(rep: Report, cfg: dict, inputs: ReportInputs) -> list[Finding]:
    """Per endpoint and model: Riley's minimum sample size vs the training centre(s)' cases."""
    opts, paths = cfg["guardrails"]["sample_size"], inputs.paths
    found = [(ep, inputs.table(paths.sample_size(ep))) for ep in _endpoints(cfg) if inputs.has(paths.sample_size(ep))]
    if not found:
        return []
    r2 = (f"an anticipated Cox-Snell R-squared of {opts['rsquared']}" if opts["rsquared"] is not None else
          f"an anticipated C-statistic of {opts['cstatistic']} converted to a Cox-Snell R-squared at the training "
          "prevalence as pmsampsize does (survival: 15% of the largest R-squared the event rate allows)")
    body = ("<p>Minimum sample size for developing each model (Riley et al., BMJ 2020;368:m441, the criteria of "
            f"pmsampsize): expected shrinkage of at least {opts['shrinkage']}, optimism in Nagelkerke's R-squared "
            f"of at most 0.05, and the overall risk within 0.05 (binary), with {r2}. Parameters are the candidate "
            "predictor parameters offered to each model before any selection (selection does not reduce them). "
            "Available: the training centre(s)' cases and events (EPP: events per candidate parameter). A model "
            "trained far below its minimum is expected to be over-fitted, and its internal and external "
            "performance to be unstable, whatever the point estimates show.</p>")
    findings = []
    for ep, t in found:
        shown = t[[c for c in SAMPLE_SIZE_COLUMNS if c in t.columns]]
        body += f"<h3>{html.escape(ep)}</h3>" + table(shown, 2)
        criteria = sorted(set(t["criterion"].dropna()))
        body += "".join(f"<p class='note'>Criterion: {html.escape(c)}</p>" for c in criteria)
        notes = t.dropna(subset=["note"])
        body += "".join(f"<p class='note'>{html.escape(r.model)}: {html.escape(str(r.note))}</p>"
                        for r in notes.itertuples())
        far = t[t["status"].astype(str).str.startswith("FAR")]
        below = t[t["status"].astype(str).str.contains("below")]
        if len(far):
            worst = far.sort_values("available_vs_required").iloc[0]
            text = (f"{ep}: {len(far)} of {len(t)} model(s) trained FAR BELOW the minimum sample size (worst: "
                    f"{worst['model']}, {int(worst['n_available'])} cases of {int(worst['n_required'])} required)")
            body += f"<p class='missing'><b>Warning</b>: {html.escape(text)}.</p>"
        else:
            text = (f"{ep}: {len(below)} of {len(t)} model(s) below the minimum sample size" if len(below)
                    else f"{ep}: every model meets the minimum sample size")
        findings.append(Finding("sample size", html.escape(text), "guardrails-sample-size", bool(len(below))))
    rep.add("guardrails-sample-size", "Guardrail: sample size per model", body)
    return findings


def _discrimination(metrics: pd.DataFrame) -> tuple[str, str, str]:
    """The discrimination columns of a metrics table: AUC (binary, macro one-vs-rest) or C-index (survival)."""
    return ("auc", "auc_lo", "auc_hi") if "auc" in metrics.columns else ("c_index", "c_lo", "c_hi")


METRIC_NAMES = {"auc": "AUC", "c_index": "C-index"}


def _with_ci(df: pd.DataFrame, est: str, lo: str, hi: str) -> pd.Series:
    return df.apply(lambda r: "" if pd.isna(r[est]) else f"{r[est]:.3f} [{r[lo]:.3f}, {r[hi]:.3f}]", axis=1)


def volume_part(rep: Report, cfg: dict, inputs: ReportInputs) -> list[Finding]:
    """Per endpoint: tumour volume alone beside the locked models, and the selected features' correlation with
    volume on the training centre(s)."""
    opts, paths = cfg["guardrails"]["volume_check"], inputs.paths
    eps = [ep for ep in _endpoints(cfg) if inputs.has(paths.volume_confounding(ep))]
    if not eps:
        return []
    body = ("<p>Many published radiomic signatures are tumour volume. Volume alone (log volume, un-harmonised) is "
            "trained, cross-validated and locked on the training centre(s) like the clinical model, and validated on "
            "each external centre; it is shown beside the locked models (discrimination with "
            f"{100 * (1 - cfg['validate']['alpha']):.0f}% CI). On the training centre(s), each feature the locked "
            "radiomics model selected, and the model's output, is correlated with volume (Spearman); |rho| &ge; "
            f"{opts['surrogate_rho']} flags a volume surrogate.</p>")
    findings = []
    for ep in eps:
        vol = inputs.table(paths.volume_confounding(ep))
        est, lo, hi = _discrimination(vol)
        label = METRIC_NAMES[est]
        side = pd.DataFrame({"centre": vol["centre"], "stage": vol["stage"], "n": vol["n"],
                             "volume alone": _with_ci(vol, est, lo, hi)})
        if inputs.has(paths.metrics(ep)):
            metrics = inputs.table(paths.metrics(ep))
            for model in ("radiomics", "nomogram", "clinical"):
                m = metrics[metrics["model"] == model].set_index(["centre", "stage"])
                if len(m):
                    shown = _with_ci(m.reset_index(), est, lo, hi).set_axis(m.index)
                    side[model] = [shown.get((c, s), "") for c, s in zip(side["centre"], side["stage"], strict=True)]
        feature = vol["volume_feature"].iloc[0] if "volume_feature" in vol.columns and len(vol) else "volume"
        body += (f"<h3>{html.escape(ep)}</h3><p>{label} of volume alone "
                 f"(<code>{html.escape(str(feature))}</code>) and of the locked models:</p>" + table(side))
        external = vol[vol["stage"] == "external"]
        at = (external[external["centre"] == "pooled"] if (external["centre"] == "pooled").any() else
              external if len(external) else vol).index[0]  # pooled external, else the first external, else internal
        row = vol.loc[at]
        text = (f"{ep}: volume alone {label} {row[est]:.3f} [{row[lo]:.3f}, {row[hi]:.3f}] "
                f"({row['centre']}, {row['stage']})")
        warn = False
        radiomics = metrics_at(inputs, ep, "radiomics", row["centre"], row["stage"], est)
        if radiomics is not None:
            text += f", radiomics model {radiomics:.3f}"
            if row[est] >= radiomics:  # the signature does no better than the tumour's size
                text += ": volume alone does at least as well"
                warn = True
        if inputs.has(paths.volume_correlation(ep)):
            corr = inputs.table(paths.volume_correlation(ep))
            flagged = corr[corr["volume_surrogate"].astype(str).str.lower() == "true"]
            body += "<p>Correlation with volume on the training centre(s):</p>" + table(corr, 3)
            if len(flagged):
                names = ", ".join(flagged["name"].astype(str))
                body += (f"<p class='missing'><b>Warning</b>: {len(flagged)} item(s) track tumour volume (|rho| "
                         f"&ge; {opts['surrogate_rho']}): {html.escape(names)}.</p>")
                text += f"; {len(flagged)} selected feature(s)/output(s) with |rho| >= {opts['surrogate_rho']}"
                warn = True
        findings.append(Finding("volume confounding", html.escape(text), "guardrails-volume", warn))
    rep.add("guardrails-volume", "Guardrail: volume confounding", body)
    return findings


def metrics_at(inputs: ReportInputs, ep: str, model: str, centre: str, stage: str, column: str) -> float | None:
    """A model's discrimination at one centre and stage of metrics.tsv (None when absent)."""
    if not inputs.has(inputs.paths.metrics(ep)):
        return None
    m = inputs.table(inputs.paths.metrics(ep))
    hit = m[(m["model"] == model) & (m["centre"] == centre) & (m["stage"] == stage)]
    return float(hit[column].iloc[0]) if len(hit) and column in hit.columns else None


def harmonisation_part(rep: Report, cfg: dict, inputs: ReportInputs) -> list[Finding]:
    """The harmonisation diagnostics (shown in full in the Harmonisation section): the in-fold identifiability."""
    paths = inputs.paths
    if not inputs.has(paths.harmonise_diagnostics):
        return []
    d = inputs.json(paths.harmonise_diagnostics)
    if "centre_auc_after_in_fold" in d:
        after = d["centre_auc_after_in_fold"]
        text = (f"centre identifiability {d['centre_auc_before']:.3f} before ComBat, {after:.3f} after (ComBat "
                "refitted in each fold, judged on held-out cases; 0.5 = centres not separable)")
        if after > 0.6:
            text += ("; the centres stay partly separable: a scanner effect ComBat leaves (its empirical-Bayes "
                     "shrinkage, non-linear effects) or a real case-mix difference (Table 1)")
        return [Finding("harmonisation", html.escape(text), "harmonisation", abs(after - 0.5) > 0.1)]
    if "centre_auc_before" in d:
        text = f"harmonisation off; centre identifiability {d['centre_auc_before']:.3f}"
        return [Finding("harmonisation", html.escape(text), "harmonisation", d["centre_auc_before"] > 0.6)]
    return []


PARTS: tuple[Part, ...] = (sample_size_part, volume_part, harmonisation_part)


def guardrails_section(rep: Report, cfg: dict, inputs: ReportInputs, parts: Sequence[Part] = PARTS) -> None:
    """The overview (first) and each part's own sections, after whatever the report holds so far."""
    start = len(rep.sections)
    findings = [f for part in parts for f in part(rep, cfg, inputs)]
    if not findings:
        return
    rows = "".join(f"<tr><td>{html.escape(f.guardrail)}</td><td>{'<b>warning</b>: ' if f.warning else ''}"
                   f"{f.finding}</td><td><a href=\"#{f.anchor}\">{html.escape(f.anchor)}</a></td></tr>"
                   for f in findings)
    body = ("<p>Checks a reviewer asks for before trusting a result: is the training set large enough for the "
            "models fitted, does a signature measure more than tumour volume, does harmonisation remove the "
            "centre. Details in the sections below.</p><table class='left'><tr><th>guardrail</th><th>finding</th>"
            f"<th>details</th></tr>{rows}</table>")
    rep.sections.insert(start, ("guardrails", "Scientific guardrails", body))
