"""Report sections of a survival endpoint: C-index with CIs, locked risk groups with log-rank p, time-dependent
AUC, Kaplan-Meier curves (from the curve table validate wrote) and paired C-index tests."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mcrad.endpoints import Endpoint
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table


def km_figure(rep: Report, km: pd.DataFrame, name: str) -> str:
    """Kaplan-Meier curves of the locked risk groups: one row per model, one column per centre panel."""
    panels, models = list(dict.fromkeys(km["panel"])), list(dict.fromkeys(km["model"]))
    fig, axes = plt.subplots(len(models), len(panels), figsize=(3 * len(panels), 2.6 * len(models)),
                             squeeze=False, sharex=True, sharey=True)
    for row, model in zip(axes, models, strict=True):
        for ax, title in zip(row, panels, strict=True):
            gm = km[(km["model"] == model) & (km["panel"] == title)]
            for group, curve in gm.groupby("group", sort=False):
                ax.step(curve["time"], curve["survival"], where="post", label=group,
                        c="#d62728" if group == "high risk" else "#1f77b4")
            p = gm["logrank_p"].iloc[0] if len(gm) else float("nan")
            ax.set_title(f"{model}: {title}\nlog-rank p = {p:.3g}", fontsize=8)
            ax.set_ylim(0, 1.02)
        row[0].set_ylabel("survival")
        row[0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{name}: Kaplan-Meier curves of the risk groups locked on training")
    return rep.figure(fig, f"km_{name}", "Kaplan-Meier curves of locked risk groups per centre")


def survival_sections(rep: Report, ep: Endpoint, inputs: ReportInputs) -> None:
    paths, name = inputs.paths, ep.name
    metrics = inputs.table(paths.metrics(name))
    cols = ["model", "centre", "stage", "n", "events", "c_index", "c_lo", "c_hi", "n_high", "events_high",
            "events_low", "logrank_p", *[c for c in metrics.columns if c.startswith("td_auc_")], "note"]
    rep.add(f"performance-{name}", f"Performance: {name} (survival)",
            "<p>Harrell's C-index with a 95% interval from its infinitesimal-jackknife variance (as R "
            "survival::concordance); risk groups split at the median training risk of each locked model (high "
            "risk above it) with the log-rank p between them; time-dependent AUC (cumulative/dynamic, inverse "
            "probability of censoring weighted) at the configured times. Internal rows are out-of-fold "
            "predictions on the training centre.</p>" + table(metrics[cols])
            + km_figure(rep, inputs.table(paths.curves(name, "km")), name))
    if inputs.has(paths.paired(name)) and len(paired := inputs.table(paths.paired(name))):
        rep.add(f"comparisons-{name}", f"Model comparisons: {name}",
                "<p>Paired C-index tests between models on the same patients (difference = C of model a minus "
                "model b; variance from the infinitesimal-jackknife covariance of the two, as R "
                "survival::concordance).</p>" + table(paired))
