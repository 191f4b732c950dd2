"""Report section of the negative controls: per endpoint, the real model beside each control per centre (a
forest plot and a table, per feature family), the flag when a control comes within the margin of the real model,
the cases without a control and what the controls can and cannot show."""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table

COLOURS = {"none": "#222222", "shuffled": "#1f77b4", "sampled": "#2ca02c", "randomised_roi": "#d62728"}
LABELS = {"none": "real"}
CAVEAT = (
    "What each control destroys decides what it can show. Shape features are computed from the mask alone: the "
    "shuffled and sampled controls keep the real masks, so their shape features equal the real ones, and they keep "
    "each ROI's intensity histogram (exactly, or in expectation), so first-order features and the volume-dependent "
    "texture features (non-uniformities, energy) stay close to the real ones. A shuffled or sampled control that "
    "scores like the real model therefore does not say the model is noise: it says the signal lies in tumour size, "
    "shape or intensity histogram, not in spatial texture. The randomised ROI keeps size and shape but takes its "
    "voxels from non-tumour tissue. The no_shape family (the real and control models refitted without the shape "
    "class) removes the part that is identical by construction, but energies and non-uniformities carry tumour "
    "volume by another name; the no_volume family also leaves out every feature whose Spearman correlation with "
    "the tumour volume in the training centre reaches the configured rho. Read each control against the real "
    "model of the same family: a control that still scores like the real model in no_volume points to the "
    "intensity histogram; one that falls to chance there shows the remaining signal needs the real tumour voxels.")


def controls_figure(rep: Report, df: pd.DataFrame, value: str, ep: Endpoint) -> str:
    """Forest plot: a panel per feature family, a row per centre and stage, a point per control (real in black)."""
    families = list(dict.fromkeys(df["features"]))
    cells = list(dict.fromkeys(zip(df["stage"], df["centre"], strict=True)))
    controls = list(dict.fromkeys(df["control"]))
    fig, axes = plt.subplots(1, len(families), figsize=(4.6 * len(families), 0.45 * len(cells) * len(controls) / 2
                                                        + 1.4), squeeze=False, sharey=True)
    step = 0.8 / max(len(controls), 1)
    for ax, family in zip(axes[0], families, strict=True):
        g = df[df["features"] == family]
        for j, control in enumerate(controls):
            c = g[g["control"] == control]
            y = [-cells.index((s, ce)) - j * step for s, ce in zip(c["stage"], c["centre"], strict=True)]
            err = np.vstack([(c[value] - c["lo"]).clip(lower=0), (c["hi"] - c[value]).clip(lower=0)])
            ax.errorbar(c[value], y, xerr=err, fmt="o", ms=4, capsize=2, color=COLOURS.get(control, "grey"),
                        label=LABELS.get(control, control))
        ax.axvline(0.5, ls=":", c="grey")
        ax.set(xlim=(0, 1), xlabel=f"{'C-index' if value == 'c_index' else 'AUC'} (95% CI)",
               title=f"features: {family}")
    axes[0][0].set_yticks([-i - 0.4 + step / 2 for i in range(len(cells))], [f"{c} ({s})" for s, c in cells],
                          fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(controls), bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"{ep.name}: real model vs negative controls")
    return rep.figure(fig, f"negative_controls_{ep.name}", "forest plot of real and negative-control models")


def quarantine_text(inputs: ReportInputs, cfg: dict) -> str:
    """Cases without a control, per kind, with the reasons (the controls' own quarantine lists)."""
    rows = []
    for kind in cfg["negative_controls"]["kinds"]:
        for centre in cfg["design"]["train"] + cfg["design"]["external"]:
            path = inputs.paths.controls(kind).quarantine_centre(centre)
            if inputs.has(path):
                q = inputs.table(path)
                rows += [{"control": kind, "centre": centre, "patient_id": r.patient_id, "message": r.message}
                         for r in q.itertuples()]
    if not rows:
        return "<p>Every case that came through the real features got each control.</p>"
    return ("<p>Cases without a control (left out of that control's models and validation; the real models keep "
            f"them):</p><div class='left'>{table(pd.DataFrame(rows))}</div>")


def controls_section(rep: Report, cfg: dict, inputs: ReportInputs, eps: list[Endpoint]) -> None:
    tables = [(ep, inputs.paths.negative_controls(ep.name)) for ep in eps]
    tables = [(ep, p) for ep, p in tables if inputs.has(p)]
    if not tables:
        return
    opts = cfg["negative_controls"]
    body = [f"<p>Per case, {', '.join(opts['kinds'])} controls of the ROIs were made (seed "
            f"{opts['seed'] if opts['seed'] is not None else cfg['study']['seed']}, per patient), their features "
            "extracted with the study's own parameter file, harmonised (ComBat fitted on the training centre as for "
            "the real features), and the same model pipeline trained, locked and validated on the external centres. "
            "The shuffled control permutes the voxel intensities within each ROI, the sampled control draws them iid "
            "from each ROI's histogram, the randomised ROI moves the tumour ROI (same size and shape, whole-voxel "
            "shift) to random tissue of the whole ingested image more than "
            f"{opts['exclusion_mm']} mm from the tumour, with the peritumoral ring re-derived around it. "
            f"<b>Flag</b>: a control within {opts['margin']} of the real model (same family, centre and stage) "
            "or above it.</p>", f"<p class='note'>{html.escape(CAVEAT)}</p>"]
    for ep, path in tables:
        df = inputs.table(path)
        value = "c_index" if "c_index" in df.columns else "auc"
        controls = df[df["control"] != "none"]
        external = controls[(controls["stage"] == "external") & (controls["centre"] != "pooled")]
        real_ext = df[(df["control"] == "none") & (df["stage"] == "external") & (df["centre"] != "pooled")]
        flagged = int(controls["near_real"].astype(bool).sum())
        body.append(f"<h3>{html.escape(ep.name)}</h3>")
        body.append(
            f"<p>External centre x control cells whose {value} CI covers 0.5: "
            + "; ".join(f"{fam}: {int(g['covers_chance'].astype(bool).sum())}/{len(g)}"
                        for fam, g in external.groupby("features", sort=False))
            + ". Real model's external CIs covering 0.5: "
            + "; ".join(f"{fam}: {int(g['covers_chance'].astype(bool).sum())}/{len(g)}"
                        for fam, g in real_ext.groupby("features", sort=False))
            + f". <b>{flagged} control row(s) flagged</b> (every stage and family; within {opts['margin']} of the real "
            "model or above it).</p>")
        body.append(controls_figure(rep, df[df["centre"] != "pooled"], value, ep))
        shown = df.assign(control=df["control"].replace(LABELS),
                          flag=np.where(df["near_real"].astype(bool), "FLAG", ""))
        body.append(table(shown.drop(columns=["near_real"])))
    body.append(quarantine_text(inputs, cfg))
    rep.add("negative-controls", "Negative controls", "".join(body))
