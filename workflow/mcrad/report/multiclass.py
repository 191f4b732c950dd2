"""Report sections of a multi-class endpoint: macro one-vs-rest AUC, Hand-Till M, accuracy, kappa, per-class
metrics, confusion matrices (from the curve table validate wrote) and paired macro-AUC tests."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcrad.endpoints import Multiclass, class_name
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table
from mcrad.report.performance import forest_figure


def per_class_table(metrics: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """The per-class columns of a multi-class metrics table (auc_<c>, sens_<c>, ...) as one row per class."""
    stats_ = ["auc", "auc_lo", "auc_hi", "sens", "sens_lo", "sens_hi", "ppv", "ppv_lo", "ppv_hi", "cal_intercept",
              "cal_slope"]
    rows = []
    for _, r in metrics.iterrows():
        for c in classes:
            named = {s_: (f"{s_.split('_')[0]}_{c}_{s_.split('_')[1]}" if s_.endswith(("_lo", "_hi"))
                          else f"{s_}_{c}") for s_ in stats_}
            rows.append({"model": r["model"], "centre": r["centre"], "stage": r["stage"], "class": c,
                         "n": r[f"n_{c}"], **{s_: r[col] for s_, col in named.items()}})
    return pd.DataFrame(rows)


def confusion_figure(rep: Report, confusion: pd.DataFrame, classes: list[str], name: str) -> str:
    """Confusion matrices of the most probable class: one row per model, one column per centre panel."""
    panels, models = list(dict.fromkeys(confusion["panel"])), list(dict.fromkeys(confusion["model"]))
    fig, axes = plt.subplots(len(models), len(panels), figsize=(2.6 * len(panels), 2.4 * len(models)),
                             squeeze=False)
    for row, model in zip(axes, models, strict=True):
        for ax, title in zip(row, panels, strict=True):
            g = confusion[(confusion["model"] == model) & (confusion["panel"] == title)]
            g = g.assign(true=g["true"].map(class_name), predicted=g["predicted"].map(class_name))
            cm = (g.pivot(index="true", columns="predicted", values="count").reindex(index=classes, columns=classes)
                  .fillna(0).to_numpy(int))
            ax.imshow(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
            for (i, j), v in np.ndenumerate(cm):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(classes)), classes, fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            ax.set_title(f"{model}: {title}", fontsize=8)
        row[0].set_ylabel("true class")
    for ax in axes[-1]:
        ax.set_xlabel("predicted class")
    fig.suptitle(f"{name}: confusion matrices (colour: share of each true class)")
    return rep.figure(fig, f"confusion_{name}", "confusion matrices per model and centre")


def multiclass_sections(rep: Report, ep: Multiclass, inputs: ReportInputs) -> None:
    paths, name, classes = inputs.paths, ep.name, ep.classes
    metrics = inputs.table(paths.metrics(name))
    cols = ["model", "centre", "stage", "n", "auc", "auc_lo", "auc_hi", "hand_till", "accuracy", "acc_lo", "acc_hi",
            "balanced_accuracy", "kappa", "brier", "log_loss", "note"]
    kappa = "quadratic-weighted (ordinal classes)" if ep.ordinal else "unweighted"
    rep.add(f"performance-{name}", f"Performance: {name} (multi-class: {', '.join(classes)})",
            "<p>Macro-averaged one-vs-rest AUC with a 95% interval from the DeLong influences of the class AUCs "
            "(their covariance included); Hand and Till's M (pairwise class AUC, as R pROC::multiclass.roc); "
            f"accuracy of the most probable class (Wilson interval), balanced accuracy, Cohen's kappa ({kappa}), "
            "multi-class Brier score and log loss. Internal rows are out-of-fold predictions on the training "
            "centre.</p>" + table(metrics[cols])
            + forest_figure(rep, metrics, name, "macro one-vs-rest AUC (95% CI from DeLong influences)")
            + "<h3>Per class (one vs rest)</h3><p>AUC with DeLong CI; sensitivity (recall) and PPV of the most "
              "probable class with Wilson intervals; calibration intercept and slope of the class probability.</p>"
            + table(per_class_table(metrics, classes))
            + confusion_figure(rep, inputs.table(paths.curves(name, "confusion")), classes, name))
    body = ""
    if inputs.has(paths.paired(name)) and len(paired := inputs.table(paths.paired(name))):
        body += ("<p>Paired tests of the macro one-vs-rest AUC between models on the same patients (difference = "
                 "model a minus model b; variance from the two models' DeLong influences, which for a binary "
                 "endpoint is the paired DeLong test).</p>" + table(paired))
    if inputs.has(paths.comparison(name)):
        comp = inputs.table(paths.comparison(name))
        body += ("<h3>With and without ComBat</h3><p>The same locked models score the external centres with "
                 "ComBat-harmonised and with raw features.</p>"
                 + table(comp.loc[comp["model"] != "clinical", ["model", "centre", "harmonisation", "n", "auc",
                                                                "hand_till", "accuracy", "kappa", "brier"]]))
    if body:
        rep.add(f"comparisons-{name}", f"Model comparisons: {name}", body)
