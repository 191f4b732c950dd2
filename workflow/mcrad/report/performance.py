"""Report sections of a binary endpoint's performance: metrics with CIs, forest plot, ROC, calibration and
decision curves (drawn from the curve tables validate wrote), paired DeLong tests, with and without ComBat,
and the prospective stage (shared by every endpoint type)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import MODEL_COLOURS, Report, table


def forest_figure(rep: Report, metrics: pd.DataFrame, name: str, xlabel: str = "AUC (95% DeLong CI)") -> str:
    m = metrics.dropna(subset=["auc"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(m) + 1))
    labels = []
    for i, r in m.iterrows():
        ax.errorbar(r["auc"], -i, xerr=[[r["auc"] - r["auc_lo"]], [r["auc_hi"] - r["auc"]]], fmt="o",
                    color=MODEL_COLOURS.get(r["model"], "k"), capsize=3)
        labels.append(f"{r['model']} | {r['centre']} ({r['stage']})")
    ax.axvline(0.5, ls=":", c="grey")
    ax.set_yticks(-np.arange(len(m)), labels, fontsize=8)
    ax.set(xlabel=xlabel, xlim=(0, 1), title=f"{name}: AUC per centre")
    return rep.figure(fig, f"forest_{name}", "forest plot of AUC per centre")


def curves_figure(rep: Report, curves: pd.DataFrame, name: str, kind: str) -> str:
    """One panel per row group of a curve table (internal CV, each external centre, pooled), a line per model."""
    titles = list(dict.fromkeys(curves["panel"]))
    fig, axes = plt.subplots(1, len(titles), figsize=(3.2 * len(titles), 3.3), squeeze=False)
    for ax, title in zip(axes[0], titles, strict=True):
        g = curves[curves["panel"] == title]
        for model, gm in g.groupby("model", sort=False):
            if model in ("treat all", "treat none"):
                continue
            colour = MODEL_COLOURS.get(model)
            if kind == "roc":
                ax.plot(gm["fpr"], gm["tpr"], label=model, c=colour)
            elif kind == "calibration":
                ax.plot(gm["predicted"], gm["observed"], "o-", label=model, c=colour, ms=3)
            else:
                ax.plot(gm["threshold"], gm["net_benefit"], label=model, c=colour)
        if kind == "decision":
            treat_all = g[g["model"] == "treat all"]
            ax.plot(treat_all["threshold"], treat_all["net_benefit"], c="grey", ls="--", label="treat all")
            ax.axhline(0, c="k", lw=0.8, label="treat none")
            ax.set(ylim=(-0.1, max(0.1, _prevalence(treat_all) + 0.05)), xlabel="threshold probability",
                   ylabel="net benefit")
        else:
            ax.plot([0, 1], [0, 1], ls=":", c="grey")
            ax.set(aspect="equal", xlim=(0, 1), ylim=(0, 1))
            ax.set(xlabel="1 - specificity" if kind == "roc" else "predicted risk",
                   ylabel="sensitivity" if kind == "roc" else "observed rate")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, loc="lower right" if kind != "decision" else "upper right")
    fig.suptitle(f"{name}: {'ROC' if kind == 'roc' else kind} curves")
    return rep.figure(fig, f"{kind}_{name}", f"{kind} curves per centre")


def _prevalence(treat_all: pd.DataFrame) -> float:
    """The panel's prevalence from its treat-all line: net benefit = prev - (1 - prev) t / (1 - t)."""
    t, nb = float(treat_all["threshold"].iloc[0]), float(treat_all["net_benefit"].iloc[0])
    odds = t / (1 - t)
    return (nb + odds) / (1 + odds)


def prospective_section(rep: Report, ep: Endpoint, inputs: ReportInputs) -> None:
    path = inputs.paths.prospective_metrics(ep.name)
    if not inputs.has(path):
        return
    metrics = inputs.table(path)
    keep = ["model", "centre", "stage", "n", "events", "auc", "auc_lo", "auc_hi", "hand_till", "sensitivity",
            "specificity", "ppv", "npv", "accuracy", "balanced_accuracy", "kappa", "c_index", "c_lo", "c_hi",
            "logrank_p", "note"]
    rep.add(f"prospective-{ep.name}", f"Prospective cohort: {ep.name}",
            "<p>Centres held back from stages 1 and 2 were scored by the locked bundles before their outcomes were "
            "read (<code>mcrad predict</code>), then evaluated at the locked thresholds "
            "(<code>mcrad evaluate</code>).</p>" + table(metrics[[c for c in keep if c in metrics.columns]]))


def binary_sections(rep: Report, ep: Endpoint, inputs: ReportInputs) -> None:
    paths, name = inputs.paths, ep.name
    metrics = inputs.table(paths.metrics(name))
    cols = ["model", "centre", "stage", "n", "events", "auc", "auc_lo", "auc_hi", "sensitivity", "specificity",
            "ppv", "npv", "accuracy", "brier", "cal_intercept", "cal_slope", "note"]
    rep.add(f"performance-{name}", f"Performance: {name}",
            "<p>AUC with 95% DeLong CI; sensitivity and specificity at the threshold locked on training; "
            "Brier score; calibration intercept (0 is ideal) and slope (1 is ideal). Internal rows are "
            "out-of-fold predictions on the training centre.</p>" + table(metrics[cols])
            + forest_figure(rep, metrics, name))
    curves = {kind: inputs.table(paths.curves(name, kind)) for kind in ep.curve_kinds}
    rep.add(f"curves-{name}", f"ROC, calibration and decision curves: {name}",
            curves_figure(rep, curves["roc"], name, "roc") + curves_figure(rep, curves["calibration"], name,
                                                                           "calibration")
            + "<p>Decision curves: net benefit of acting on each model's risk against treating everyone or "
              "no one, over threshold probabilities.</p>" + curves_figure(rep, curves["decision"], name, "decision"))
    body = ""
    if inputs.has(paths.paired(name)):
        body += "<p>Paired DeLong tests between models on the same patients (difference = AUC of model a " \
                "minus model b).</p>" + table(inputs.table(paths.paired(name)))
    if inputs.has(paths.comparison(name)):
        comp = inputs.table(paths.comparison(name))
        comp = comp[comp["model"] != "clinical"]  # no image features: identical either way
        body += ("<h3>With and without ComBat</h3><p>The same locked models score the external centres with "
                 "ComBat-harmonised and with raw features. A per-feature affine correction barely reorders a "
                 "score within a centre, so look at calibration and at the locked threshold.</p>"
                 + table(comp[["model", "centre", "harmonisation", "n", "auc", "cal_intercept", "cal_slope",
                               "brier", "sensitivity", "specificity"]]))
    if body:
        rep.add(f"comparisons-{name}", f"Model comparisons: {name}", body)
