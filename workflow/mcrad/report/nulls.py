"""Report section "Permutation nulls": how far each result stands above what noise gives. Per endpoint, the
y-randomisation of stage 1 (summary table and a figure of each model's null against chance and its real internal
statistic) and the permutation p-values of the external discrimination (metrics.tsv)."""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint, endpoints
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table

LABELS = {"auc": "AUC", "c_index": "C-index"}


def null_figure(rep: Report, null: pd.DataFrame, summary: pd.DataFrame, ep: Endpoint) -> str:
    """One panel per model: the null's histogram, chance (0.5) and the real internal statistic."""
    models = list(summary["model"])
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 2.8), squeeze=False, sharey=True)
    label = LABELS.get(ep.statistic, ep.statistic)
    for ax, (_, row) in zip(axes[0], summary.iterrows(), strict=True):
        values = pd.to_numeric(null.loc[null["model"] == row["model"], "statistic"]).dropna()
        ax.hist(values, bins=np.linspace(0, 1, 26), color="0.6", label=f"null (k={len(values)})")
        ax.axvline(0.5, ls=":", c="k", label="chance")
        if np.isfinite(row["real"]):
            ax.axvline(row["real"], c="#d62728", lw=2, label=f"real {row['real']:.2f}")
        ax.set(xlim=(0, 1), xlabel=f"internal {label}", title=f"{row['model']}"
               + (" (flagged)" if str(row["flagged"]) == "True" else ""))
        ax.legend(fontsize=6, loc="upper left")
    axes[0][0].set_ylabel("permutations")
    fig.suptitle(f"{ep.name}: y-randomisation of stage 1", y=1.04)
    return rep.figure(fig, f"y_randomisation_{ep.name}", f"y-randomisation null distributions of {ep.name}")


def _external_p(metrics: pd.DataFrame, ep: Endpoint) -> pd.DataFrame:
    if "p_permutation" not in metrics.columns:
        return pd.DataFrame()
    ext = metrics[metrics["stage"] == "external"]
    interval = [c for c in ("auc_lo", "auc_hi", "c_lo", "c_hi") if c in ext.columns]
    return ext[["model", "centre", "n", ep.statistic, *interval, "p_permutation"]]


def nulls_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
    body = ""
    for ep in endpoints(cfg):
        part = ""
        summary_file = inputs.paths.y_randomisation_summary(ep.name)
        if inputs.has(summary_file):
            summary = inputs.table(summary_file)
            part += (table(summary.drop(columns=["statistic"]))
                     + null_figure(rep, inputs.table(inputs.paths.y_randomisation(ep.name)), summary, ep))
        if inputs.has(inputs.paths.metrics(ep.name)):
            ext = _external_p(inputs.table(inputs.paths.metrics(ep.name)), ep)
            if len(ext) and ext["p_permutation"].notna().any():
                part += ("<p>Locked models on the external centres: permutation p of the "
                         f"{LABELS.get(ep.statistic, ep.statistic)} (outcomes permuted within each centre, "
                         f"{cfg['validate']['permutations']} permutations).</p>" + table(ext))
        if part:
            body += f"<h3>{html.escape(ep.name)}</h3>" + part
    if not body:
        return
    y = cfg["guardrails"]["y_randomisation"]
    intro = ("<p>How far each result stands above noise. <b>Y-randomisation</b>"
             + (f" ({y['permutations']} permutations, tolerance {y['tolerance']})" if y["activate"] else "")
             + ": each model's whole stage-1 pipeline (filters, selection, tuning, nested cross-validation) was "
             "retrained on shuffled training outcomes; its internal statistic must then centre on 0.5. A null mean "
             "further than the tolerance from 0.5 is flagged: above, the pipeline finds signal in noise (as when "
             "labels reach feature selection outside the cross-validation); below, cross-validation on so few "
             "cases is pessimistic. p_empirical = (1 + null &ge; real) / (1 + k). "
             "<b>External permutation p</b>: the locked scores stay fixed while the outcomes are permuted within "
             "each centre; one-sided, (1 + permuted &ge; observed) / (1 + permutations).</p>")
    rep.add("nulls", "Permutation nulls", intro + body)
