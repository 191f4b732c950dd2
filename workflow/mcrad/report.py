"""Report: one self-contained HTML page (figures embedded) with the design, QC, per-centre performance and
provenance of a study."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from mcrad.config import Paths, stable_hash  # noqa: E402

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{border-bottom:2px solid #ddd;
margin-top:2em}.note{color:#555;font-size:.9em}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "centre": str}, keep_default_na=False,
                       na_values=[""])


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", na_rep="", border=0, escape=True)


def roc_figure(pred: pd.DataFrame, title: str) -> str:
    panels = [("internal (CV)", pred[pred["stage"] == "internal"])]
    ext = pred[pred["stage"] == "external"]
    panels += [(f"{c} (external)", g) for c, g in ext.groupby("centre")]
    if ext["centre"].nunique() > 1:
        panels.append(("pooled external", ext))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), squeeze=False)
    for ax, (name, g) in zip(axes[0], panels, strict=True):
        for model, gm in g.groupby("model", sort=False):
            if gm["label"].nunique() == 2:
                fpr, tpr, _ = roc_curve(gm["label"], gm["score"])
                ax.plot(fpr, tpr, label=model)
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        ax.set(title=name, xlabel="1 - specificity", ylabel="sensitivity", aspect="equal")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return _png(fig)


def harmonisation_diagnostics(paths: Paths) -> str:
    summary_file = paths.harmonise_file("diagnostics.json")
    if not summary_file.is_file():
        return ""
    d = json.loads(summary_file.read_text())
    rows = []
    if "centre_auc_before" in d:
        rows.append(("centre identifiability (CV AUC of predicting the centre)", d["centre_auc_before"],
                     d["centre_auc_after"]))
        rows.append(("features differing across centres (Kruskal-Wallis p < 0.05)",
                     d["kruskal_p_below_0.05_before"], d["kruskal_p_below_0.05_after"]))
    for key in sorted(k for k in d if k.startswith("train_outcome_auc_") and k.endswith("_before")):
        endpoint = key[len("train_outcome_auc_"):-len("_before")]
        rows.append((f"training-centre outcome AUC ({endpoint}, CV ridge logistic)", d[key],
                     d[key.replace("_before", "_after")]))
    fmt = lambda v: str(v) if isinstance(v, int) else f"{v:.3f}"  # noqa: E731 - counts stay integers
    table = pd.DataFrame([(n, fmt(b), fmt(a)) for n, b, a in rows],
                         columns=["diagnostic", "before ComBat", "after ComBat"])
    pca = _read(paths.harmonise_file("pca.tsv"))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, (which, g) in zip(axes, pca.groupby("harmonisation", sort=False), strict=True):
        for centre, gc in g.groupby("centre"):
            ax.scatter(gc["pc1"], gc["pc2"], s=10, label=centre)
        ax.set(title=f"PCA, {which} ComBat", xlabel="PC1", ylabel="PC2")
    axes[0].legend(fontsize=7)
    return ("<p>Does harmonisation remove the centre and keep the signal? Identifiability below 0.5 means "
            "the centres cannot be told apart (ComBat equalises each centre's mean on all its cases, so a "
            "cross-validated classifier is pushed slightly the wrong way).</p>" + _table(table) + _png(fig))


def design_table(cfg: dict, paths: Paths) -> pd.DataFrame:
    rows = []
    quarantine = _read(paths.qc_quarantine)
    for role in ("train", "external"):
        for c in cfg["design"][role]:
            cohort = _read(paths.cohort_table(c))
            row = {"centre": c, "stage": "training (stage 1)" if role == "train" else "external (stage 2)",
                   "patients": len(cohort), "quarantined": int((quarantine["centre"] == c).sum())}
            for ep in cfg["endpoints"]:
                row[f"{ep['name']} events"] = int(pd.to_numeric(cohort[ep["column"]]).sum())
            rows.append(row)
    return pd.DataFrame(rows)


def write_report(cfg: dict, root: Path, out: Path) -> None:
    paths = Paths(root)
    from mcrad.model import software_versions

    parts = [f"<h1>mcrad study report: {html.escape(cfg['study']['name'])}</h1>"]
    parts.append("<h2>Study design</h2><p>Models are trained and locked on the training centre(s); every "
                 "external centre is scored by the locked models only.</p>" + _table(design_table(cfg, paths)))

    quarantine = _read(paths.qc_quarantine)
    parts.append("<h2>Quality control</h2>")
    if len(quarantine):
        parts.append(f"<p>{len(quarantine)} case(s) quarantined (left out of analysis, with the reason):</p>"
                     + _table(quarantine))
    else:
        parts.append("<p>No case was quarantined.</p>")
    qc = _read(paths.qc_ingest)
    ok = qc[qc["status"] == "ok"]
    if len(ok):
        summary = ok.groupby("centre").agg(cases=("patient_id", "size"), spacing_mm=("spacing_mm", "first"),
                                           mask_volume_ml_median=("mask_volume_ml", "median")).reset_index()
        parts.append("<p>Acquisition per centre (first case's voxel spacing; median tumour volume):</p>"
                     + _table(summary, 2))
    excluded = _read(paths.excluded_features)
    h = cfg["harmonise"]
    parts.append("<h2>Harmonisation</h2><p>" + (
        f"ComBat ({'parametric' if h['parametric'] else 'non-parametric'}"
        f"{', empirical Bayes' if h['eb'] else ', no empirical Bayes'}{', mean only' if h['mean_only'] else ''}) "
        f"with training centre {html.escape(cfg['design']['train'][0])} as reference batch; each external "
        "centre's batch effect is estimated from its own unlabelled features." if h["activate"]
        else "Off: raw features go to the models.") + f" {len(excluded)} feature(s) constant in training were "
        "excluded.</p>")
    parts.append(harmonisation_diagnostics(paths))

    for ep in cfg["endpoints"]:
        name = ep["name"]
        metrics, pred = _read(paths.metrics(name)), _read(paths.predictions(name))
        parts.append(f"<h2>Endpoint: {html.escape(name)}</h2>")
        parts.append("<p>AUC with 95% DeLong CI; sensitivity and specificity (Wilson CI) at the threshold "
                     "locked on training (Youden on out-of-fold predictions).</p>")
        cols = ["model", "centre", "stage", "n", "events", "auc", "auc_lo", "auc_hi", "threshold",
                "sensitivity", "specificity", "brier", "note"]
        parts.append(_table(metrics[cols]))
        parts.append(roc_figure(pred, name))
        if paths.comparison(name).is_file():
            comp = _read(paths.comparison(name))
            comp = comp[comp["model"] != "clinical"]  # no image features: identical either way
            parts.append("<h3>With and without ComBat</h3><p>The same locked models score the external centres "
                         "with ComBat-harmonised and with raw features. A per-centre affine correction barely "
                         "reorders a score within a centre, so look at calibration and at the locked threshold: "
                         "calibration intercept 0 and slope 1 are ideal, Brier lower is better.</p>"
                         + _table(comp[["model", "centre", "harmonisation", "n", "auc", "cal_intercept",
                                        "cal_slope", "brier", "sensitivity", "specificity"]]))
        for model in ("radiomics", "nomogram", "clinical"):
            meta = json.loads((paths.bundle(name, model) / "meta.json").read_text())
            desc = meta["description"]
            parts.append(f"<h3>{model} model</h3>")
            if "selected_features" in desc:
                sel = pd.DataFrame(sorted(desc["selected_features"].items(), key=lambda kv: -abs(kv[1])),
                                   columns=["feature", "coefficient (standardised)"])
                parts.append(f"<p>LASSO penalty C = {desc['lasso_C']}; {len(sel)} feature(s) selected.</p>"
                             + _table(sel, 4))
            if "coefficients" in desc:
                parts.append(_table(pd.DataFrame(list(desc["coefficients"].items()),
                                                 columns=["term", "coefficient"]), 4))
            manifest = json.loads((paths.bundle(name, model) / "manifest.json").read_text())
            parts.append(f"<p class='note'>Locked bundle sha256 {manifest['bundle_sha256']}</p>")

    if cfg["cohort"]["sheet"] is None and paths.synth_truth.is_file():
        truth = json.loads(paths.synth_truth.read_text())
        parts.append("<h2>Synthetic ground truth</h2><p>The demo cohort is simulated, so the best achievable "
                     f"performance is known: population AUC of the true risk {truth['bayes_auc']:.3f}; of its "
                     f"imaging part (the limit of any image-only model) {truth['bayes_auc_imaging']:.3f}.</p>")

    cfg_yaml = yaml.safe_dump(cfg, sort_keys=True)
    versions = pd.DataFrame(sorted(software_versions().items()), columns=["software", "version"])
    parts.append("<h2>Provenance</h2>" + _table(versions)
                 + f"<p>Config sha256 {stable_hash(cfg)}</p><pre>{html.escape(cfg_yaml)}</pre>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>mcrad: "
                   f"{html.escape(cfg['study']['name'])}</title><style>{CSS}</style></head><body>"
                   + "\n".join(parts) + "</body></html>\n")



