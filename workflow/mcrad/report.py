"""Report: one self-contained HTML page (figures embedded, no network) that reads as a study report: design,
cohort, QC, harmonisation, models, per-centre performance, curves, comparisons, methods, reporting checklists
and provenance. Figures are also written as PNG files for `snakemake --report`. A section appears only for
what the study ran."""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from mcrad.config import Paths, stable_hash  # noqa: E402
from mcrad.model import class_name  # noqa: E402
from mcrad.validate import calibration_curve, confusion, decision_curve  # noqa: E402

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{border-bottom:2px solid #ddd;
margin-top:2em}.note{color:#555;font-size:.9em}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}
.left td,.left th{text-align:left}
nav{background:#fafafa;border:1px solid #ddd;padding:.5em 1em}nav a{margin-right:1em}.missing{color:#a33}"""
MODEL_COLOURS = {"clinical": "#1f77b4", "radiomics": "#ff7f0e", "nomogram": "#2ca02c"}
REFERENCES = {
    "pyradiomics": "van Griethuysen JJM et al. Computational radiomics system to decode the radiographic "
                   "phenotype. Cancer Res 2017;77:e104-7.",
    "ibsi": "Zwanenburg A et al. The Image Biomarker Standardization Initiative. Radiology 2020;295:328-38.",
    "combat": "Johnson WE, Li C, Rabinovic A. Adjusting batch effects in microarray expression data using "
              "empirical Bayes methods. Biostatistics 2007;8:118-27.",
    "neurocombat": "Fortin JP et al. Harmonization of cortical thickness measurements across scanners and sites. "
                   "NeuroImage 2018;167:104-20.",
    "delong": "DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated ROC "
              "curves. Biometrics 1988;44:837-45.",
    "youden": "Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-5.",
    "dca": "Vickers AJ, Elkin EB. Decision curve analysis. Med Decis Making 2006;26:565-74.",
    "lasso": "Tibshirani R. Regression shrinkage and selection via the lasso. J R Stat Soc B 1996;58:267-88.",
    "tripod": "Collins GS et al. TRIPOD+AI statement. BMJ 2024;385:e078378.",
    "clear": "Kocak B et al. CheckList for EvaluAtion of Radiomics research (CLEAR). Insights Imaging 2023;14:75.",
    "snakemake": "Mölder F et al. Sustainable data analysis with Snakemake. F1000Research 2021;10:33.",
}


@dataclass
class Report:
    figures_dir: Path | None
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, title, html)

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def has(self, anchor: str) -> bool:
        return any(a == anchor or a.startswith(anchor + "-") for a, _, _ in self.sections)

    def figure(self, fig, name: str, alt: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        if self.figures_dir is not None:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            (self.figures_dir / f"{name}.png").write_bytes(buf.getvalue())
        data = base64.b64encode(buf.getvalue()).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "centre": str}, keep_default_na=False,
                       na_values=[""])


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", na_rep="", border=0, escape=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- sections ------------------------------------------------------------------------------------------------
def cohorts(cfg: dict, paths: Paths) -> pd.DataFrame:
    frames = [_read(paths.cohort_table(c)).assign(role="train" if c in cfg["design"]["train"] else "external")
              for c in cfg["design"]["train"] + cfg["design"]["external"]]
    return pd.concat(frames, ignore_index=True)


def design_section(rep: Report, cfg: dict, paths: Paths, cohort: pd.DataFrame) -> None:
    quarantine = _read(paths.qc_quarantine)
    rows = []
    for centre, g in cohort.groupby("centre", sort=False):
        row = {"centre": centre, "stage": "training (stage 1)" if g["role"].iloc[0] == "train"
               else "external validation (stage 2)", "patients": len(g),
               "quarantined": int((quarantine["centre"] == centre).sum())}
        for ep in cfg["endpoints"]:
            if ep["type"] == "multiclass":  # patients per class, in the order of `classes`
                counts = g[ep["column"]].map(class_name).value_counts()
                row[f"{ep['name']} ({'/'.join(ep['classes'])})"] = "/".join(
                    str(int(counts.get(c, 0))) for c in ep["classes"])
            else:
                row[f"{ep['name']} events"] = int(pd.to_numeric(g[ep["column"]]).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(table)))
    colours = ["#4c72b0" if s.startswith("training") else "#dd8452" for s in table["stage"]]
    ax.barh(table["centre"], table["patients"], color=colours)
    ep0 = next((ep["name"] for ep in cfg["endpoints"] if ep["type"] != "multiclass"), None)
    if ep0:
        ax.barh(table["centre"], table[f"{ep0} events"], color="none", edgecolor="k", hatch="//",
                label=f"{ep0} events")
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="patients", title="Centres: training (blue) and external validation (orange)")
    rep.add("design", "Study design",
            "<p>Staged validation: models are trained, cross-validated and locked on the training centre(s) "
            "(stage 1); every external centre is then scored by the locked models only (stage 2). Nothing "
            "computed from an external centre's outcomes reaches training.</p>"
            + _table(table) + rep.figure(fig, "design", "patients and events per centre"))


def table_one(cfg: dict, cohort: pd.DataFrame) -> pd.DataFrame:
    """Cohort characteristics per centre with a test across centres (Kruskal-Wallis / chi-square)."""
    centres = list(dict.fromkeys(cohort["centre"]))
    rows = [{"characteristic": "patients", **{c: str(int((cohort["centre"] == c).sum())) for c in centres},
             "p (across centres)": ""}]
    variables = [(c["name"], c["type"]) for c in cfg["cohort"]["clinical"]]
    variables += [(ep["column"], "categorical") for ep in cfg["endpoints"]]
    for name, kind in variables:
        col = cohort[name]
        if kind == "numeric":
            num = pd.to_numeric(col, errors="coerce")
            row = {"characteristic": f"{name}, median (IQR)"}
            for c in centres:
                v = num[cohort["centre"] == c]
                row[c] = f"{v.median():.1f} ({v.quantile(.25):.1f}-{v.quantile(.75):.1f})"
            groups = [num[cohort["centre"] == c].dropna() for c in centres]
            row["p (across centres)"] = f"{stats.kruskal(*groups).pvalue:.3f}" if len(centres) > 1 else ""
            rows.append(row)
            continue
        values = col.astype(str)
        levels = sorted(values.unique())
        ctab = pd.crosstab(values, cohort["centre"]).reindex(index=levels, columns=centres, fill_value=0)
        p = stats.chi2_contingency(ctab.to_numpy())[1] if len(centres) > 1 and len(levels) > 1 else np.nan
        for i, level in enumerate(levels):
            row = {"characteristic": f"{name} = {level}, n (%)"}
            for c in centres:
                n = int(ctab.loc[level, c])
                row[c] = f"{n} ({100 * n / max(1, ctab[c].sum()):.0f}%)"
            row["p (across centres)"] = f"{p:.3f}" if i == 0 and np.isfinite(p) else ""
            rows.append(row)
    return pd.DataFrame(rows)


def cohort_section(rep: Report, cfg: dict, cohort: pd.DataFrame) -> None:
    rep.add("cohort", "Cohort characteristics (Table 1)",
            "<p>Per centre; p-values test for any difference across centres (Kruskal-Wallis for numeric "
            "variables, chi-square for categories). Differences in case mix limit what harmonisation can and "
            "should remove.</p>" + _table(table_one(cfg, cohort)))


def qc_section(rep: Report, paths: Paths) -> None:
    quarantine = _read(paths.qc_quarantine)
    body = (f"<p>{len(quarantine)} case(s) quarantined (left out of the analysis, with the reason):</p>"
            + _table(quarantine)) if len(quarantine) else "<p>No case was quarantined.</p>"
    qc = _read(paths.qc_ingest)
    ok = qc[qc["status"] == "ok"]
    if len(ok):
        summary = ok.groupby("centre").agg(cases=("patient_id", "size"),
                                           voxel_spacing_mm=("spacing_mm", lambda s: ", ".join(sorted(set(s))[:3])),
                                           tumour_ml_median=("mask_volume_ml", "median"),
                                           with_warnings=("warnings", lambda s: int(s.notna().sum()))).reset_index()
        body += "<p>Acquisition per centre (voxel spacings seen, up to three; median tumour volume):</p>" + \
            _table(summary, 2)
        body += _qc_scanners(ok) + _qc_pictures(ok, paths)
    body += _qc_registration(paths)
    rep.add("qc", "Acquisition and quality control", body)


def _qc_registration(paths: Paths) -> str:
    """Multi-sequence studies: how well each sequence was registered to the reference (qc/preprocess.tsv)."""
    pre = _read(paths.qc_preprocess) if paths.qc_preprocess.is_file() else pd.DataFrame()
    reg = [c for c in pre.columns if c.startswith("reg_")]
    if not reg or not (pre["status"] == "ok").any():
        return ""
    table = pre[pre["status"] == "ok"].groupby("centre")[reg].agg(["median", "min"])
    table.columns = [f"{col}_{stat}" for col, stat in table.columns]
    return ("<p>Rigid registration of each sequence to the reference sequence, per centre (median and worst case): "
            "Mattes mutual information at convergence (<code>_mi</code>, higher is better) and, where the sheet gives "
            "a sequence its own mask, Dice of the reference mask carried over against it (<code>_dice</code>). "
            "Per case: qc/preprocess.tsv.</p>" + _table(table.reset_index(), 3))


QC_TAGS = ["modality", "manufacturer", "scanner_model", "kernel", "slice_thickness_mm"]


def _qc_scanners(ok: pd.DataFrame) -> str:
    """Cases per centre and scanner (DICOM inputs; whitelisted technical tags only)."""
    cols = [c for c in QC_TAGS if c in ok and ok[c].notna().any()]
    if not cols:
        return ""
    table = ok.fillna({c: "" for c in cols}).groupby(["centre", *cols]).size().reset_index(name="cases")
    return "<p>Scanners and reconstruction (from DICOM headers):</p>" + _table(table, 2)


def _qc_pictures(ok: pd.DataFrame, paths: Paths, per_centre: int = 3) -> str:
    """The ingest QC pictures (mask outline, 3 planes) of a few cases per centre: those with warnings first,
    then the smallest and largest tumour; every case's picture is in cases/<centre>/<patient>/ingest/qc.png."""
    shown = []
    for centre, group in ok.groupby("centre", sort=True):
        warned = group[group["warnings"].notna()] if "warnings" in group else group.iloc[:0]
        by_size = group.sort_values("mask_volume_ml", kind="stable")
        picks = pd.concat([warned, by_size.head(1), by_size.tail(1)]).drop_duplicates("patient_id")
        for pid in picks["patient_id"].head(per_centre):
            png = paths.case_dir(centre, pid) / "ingest" / "qc.png"
            if png.is_file():
                shown.append(f'<figure><img alt="QC {html.escape(pid)}" src="data:image/png;base64,'
                             f'{base64.b64encode(png.read_bytes()).decode()}"><figcaption>{html.escape(centre)} / '
                             f"{html.escape(pid)}</figcaption></figure>")
    if not shown:
        return ""
    return ("<p>Mask outlines (red) on three planes through the tumour centre: cases with warnings, then the "
            "smallest and largest tumour of each centre.</p>" + "".join(shown))


def harmonisation_section(rep: Report, cfg: dict, paths: Paths) -> None:
    h = cfg["harmonise"]
    excluded = _read(paths.excluded_features)
    body = "<p>" + (
        f"ComBat ({'parametric' if h['parametric'] else 'non-parametric'} "
        f"{'empirical Bayes' if h['eb'] else 'without empirical Bayes'}{', mean only' if h['mean_only'] else ''}"
        f"{', preserving ' + ', '.join(h['covariates']) if h['covariates'] else ''}) with training centre "
        f"{html.escape(cfg['design']['train'][0])} as the reference batch, left unchanged; each external "
        "centre's batch effect is estimated from its own unlabelled features." if h["activate"]
        else "Off: raw features go to the models.") + f" {len(excluded)} feature(s) constant in training were " \
        "excluded.</p>"
    summary_file = paths.harmonise_file("diagnostics.json")
    if summary_file.is_file():
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
        body += ("<p>Does harmonisation remove the centre and keep the signal? Identifiability at or below 0.5 "
                 "means the centres cannot be told apart (ComBat equalises each centre's mean on all its cases, "
                 "so a cross-validated classifier is pushed slightly the wrong way).</p>" + _table(table)
                 + rep.figure(fig, "harmonisation_pca", "PCA of features before and after ComBat"))
    rep.add("harmonisation", "Harmonisation", body)


def robustness_section(rep: Report, cfg: dict, paths: Paths) -> None:
    """Contour robustness (features.robustness): ICC(3,1) distribution and kept/dropped counts per class."""
    rob = cfg["features"]["robustness"]
    flags = _read(paths.feature_flags()) if paths.feature_flags().is_file() else pd.DataFrame()
    body = (f"<p>{len(flags)} case/feature-class QC flag(s): features a case could not give (ROI too small, "
            "flat intensity region) are NaN there and listed in qc/feature_flags.tsv; harmonisation excludes "
            "features NaN in a training case.</p>")
    if not rob["activate"] or not paths.robustness.is_file():
        rep.add("robustness", "Feature robustness", body + "<p>Contour-robustness filter off.</p>")
        return
    t = _read(paths.robustness)
    t["class"] = t["feature"].str.split("_").str[3]
    bins = pd.cut(t["icc"], [-np.inf, 0.5, rob["threshold"], 0.9, np.inf], right=False,
                  labels=["< 0.5", f"0.5-{rob['threshold']}", f"{rob['threshold']}-0.9", ">= 0.9"])
    kept = t.groupby("class")["kept"]
    table = (pd.crosstab(t["class"], bins.cat.add_categories("undefined").fillna("undefined"), dropna=False)
             .assign(kept=kept.sum(), dropped=kept.size() - kept.sum()).rename_axis(columns=None).reset_index())
    body += (f"<p>ICC(3,1) of each feature over {', '.join(rob['perturbations'])} perturbations of up to "
             f"{rob['cases']} sampled training-centre cases (Zwanenburg et al. 2019): "
             f"{int(t['kept'].sum())} of {len(t)} features have ICC &ge; {rob['threshold']} and are kept; "
             f"{int((~t['kept']).sum())} are dropped before modelling. Median ICC {t['icc'].median():.3f}.</p>"
             + _table(table))
    rep.add("robustness", "Feature robustness", body)


def deep_section(rep: Report, cfg: dict, paths: Paths) -> None:
    """Deep stage (when it ran): training curves, CV summary and Grad-CAM heatmaps of a few cases per centre."""
    body = ""
    for ep in (e["name"] for e in cfg["endpoints"]):
        d = paths.deep_dir(ep)
        if not (d / "curves.tsv").is_file():
            continue
        meta = json.loads((d / "network.json").read_text())
        opts, summary = meta["options"], meta["summary"]
        curves = _read(d / "curves.tsv")
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for fit, g in curves.groupby("fit", sort=True):
            axes[0].plot(g["epoch"], g["train_loss"], label=f"{fit} train")
            if g["val_loss"].notna().any():
                axes[0].plot(g["epoch"], g["val_loss"], ls="--", label=f"{fit} val")
                axes[1].plot(g["epoch"], g["val_auc"], label=fit)
        axes[0].set(xlabel="epoch", ylabel="BCE loss", title="loss")
        axes[1].set(xlabel="epoch", ylabel="AUC", title="internal validation AUC", ylim=(0, 1))
        axes[0].legend(fontsize=6)
        axes[1].legend(fontsize=6)
        body += (f"<h3>{html.escape(ep)}</h3><p>{html.escape(opts['network'])} (width {opts['width']}, "
                 f"embedding {opts['embedding_size']}) on {opts['crop_mm']} mm tumour-centred crops "
                 f"({opts['crop_voxels']}<sup>3</sup> voxels), {summary['n']} training cases ({summary['events']} "
                 f"events), {opts['folds']}-fold CV with early stopping (patience {opts['patience']}) on a "
                 f"{opts['validation_fraction']:.0%} validation split; best epochs {summary['best_epochs']}, final "
                 f"network trained {summary['final_epochs']} epochs on all training cases; out-of-fold AUC "
                 f"{summary['oof_auc']:.3f}; device {html.escape(summary['device'])}.</p>"
                 + rep.figure(fig, f"deep_curves_{ep}", f"deep training curves {ep}"))
        cams = []
        for centre_dir in sorted(p for p in (d / "gradcam").glob("*") if p.is_dir()):
            for png in sorted(centre_dir.glob("*.png")):
                cams.append(f'<figure style="display:inline-block"><img alt="Grad-CAM {html.escape(png.stem)}" '
                            f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
                            f"<figcaption>{html.escape(centre_dir.name)} / {html.escape(png.stem)}</figcaption>"
                            "</figure>")
        if cams:
            body += ("<p>Grad-CAM (monai.visualize) of the deep score, axial slice through the crop centre, for "
                     "the first cases of each centre:</p>" + "".join(cams))
    if paths.autoseg_dice.is_file():
        body += ("<h3>Auto-segmentation</h3><p>Dice of the UNet's masks against the provided masks; "
                 "<code>feature_masks</code> says which masks the centre's radiomics features were extracted from "
                 "(auto: the UNet's, deep.autoseg.use_for_features).</p>" + _table(_read(paths.autoseg_dice)))
    if body:
        rep.add("deep", "Deep learning", body)


def nomogram_figure(rep: Report, scales: dict, name: str) -> str:
    terms = scales["terms"]
    spans = [max(t["contribution"]) - min(t["contribution"]) for t in terms]
    per_point = max(spans) / 100 if max(spans) > 0 else 1.0
    fig, ax = plt.subplots(figsize=(8, 0.55 * (len(terms) + 3)))
    rows = [("Points", np.linspace(0, 100, 11), [f"{v:.0f}" for v in np.linspace(0, 100, 11)])]
    low = sum(min(t["contribution"]) for t in terms)
    for t in terms:
        pts = (np.array(t["contribution"]) - min(t["contribution"])) / per_point
        labels = [v if isinstance(v, str) else f"{v:g}" for v in t["values"]]
        rows.append((t["name"], pts, labels))
    total_max = sum(spans) / per_point
    total_ticks = np.linspace(0, total_max, 6)
    rows.append(("Total points", total_ticks * 100 / max(total_max, 1e-9), [f"{v:.0f}" for v in total_ticks]))
    probs = [p for p in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)]
    lp = scales["intercept"] + low
    prob_pos = [(np.log(p / (1 - p)) - lp) / per_point * 100 / max(total_max, 1e-9) for p in probs]
    keep = [(x, p) for x, p in zip(prob_pos, probs, strict=True) if 0 <= x <= 100]
    rows.append(("Risk", np.array([x for x, _ in keep]), [f"{p:g}" for _, p in keep]))
    for i, (label, xs, ticks) in enumerate(rows):
        y = -i
        if len(xs):
            ax.plot([min(xs), max(xs)], [y, y], c="k", lw=1)
        last, slot = -1e9, 0
        for x, t in sorted(zip(xs, ticks, strict=True), key=lambda xt: xt[0]):
            slot = (slot + 1) % 3 if x - last < 6 else 0  # crowded ticks: above, below, higher above
            last = x
            ax.plot([x, x], [y, y + 0.12], c="k", lw=1)
            ax.text(x, y + (0.18, -0.38, 0.42)[slot], t, ha="center", fontsize=7)
        ax.text(-4, y, label, ha="right", va="center", fontsize=8)
    ax.set_xlim(-30, 105)
    ax.set_ylim(-len(rows) + 0.5, 0.8)
    ax.axis("off")
    ax.set_title(f"Nomogram ({name}): add the points of each predictor, read the risk")
    return rep.figure(fig, f"nomogram_{name}", "nomogram")


def weights_frame(weights: dict, key: str, value: str, by_size: bool = True) -> pd.DataFrame:
    """A bundle's {input: weight} as a table, largest |weight| first; {input: {class: weight}} (multi-class) as one
    column per class, ordered by the largest |weight| over the classes."""
    rows = [{key: k, **(v if isinstance(v, dict) else {value: v})} for k, v in weights.items()]
    df = pd.DataFrame(rows, columns=None if rows else [key, value])
    if by_size and len(df):
        size = df.drop(columns=[key]).abs().max(axis=1)
        df = df.loc[size.sort_values(ascending=False, kind="stable").index]
    return df


def models_section(rep: Report, cfg: dict, paths: Paths) -> None:
    m = cfg["model"]
    body = ("<p><b>Clinical model</b>: logistic regression of the clinical predictors "
            f"({', '.join(c['name'] for c in cfg['cohort']['clinical'])}; numeric standardised, categories "
            "one-hot). <b>Radiomics model</b>: median imputation, zero-variance filter, standardisation, a "
            f"correlation filter (|r| &gt; {m['correlation_threshold']}, keeping the feature most related to "
            "the outcome), and L1-penalised (LASSO) logistic regression with the penalty chosen by "
            f"{m['inner_folds']}-fold inner cross-validation (one-standard-error rule, C in {m['lasso_C']}). "
            "<b>Nomogram</b>: logistic regression of the out-of-fold rad-score and the clinical predictors "
            "independent of it (backward elimination on the training centre, likelihood-ratio p &le; "
            f"{m['nomogram_clinical_p']}, inside every fold). "
            f"Internal validation: {m['outer_folds']}-fold outer cross-validation on the training centre; the "
            "threshold is locked at the Youden point of the out-of-fold predictions. Multi-class endpoints: "
            "multinomial versions of the three models (the nomogram's rad-scores are the log-ratios of each class "
            "against the first), tuned on the inner-CV macro one-vs-rest AUC; the locked decision is the most "
            "probable class.</p>")
    for ep in cfg["endpoints"]:
        name = ep["name"]
        for model in ("radiomics", "nomogram", "clinical"):
            meta = json.loads((paths.bundle(name, model) / "meta.json").read_text())
            desc = meta["description"]
            manifest = json.loads((paths.bundle(name, model) / "manifest.json").read_text())
            rule = ("the most probable class" if meta["threshold"] is None
                    else f"threshold {meta['threshold']:.3f}")
            body += f"<h3>{model} model ({html.escape(name)})</h3><p>Locked decision: {rule}; " \
                    f"bundle sha256 <code>{manifest['bundle_sha256'][:16]}</code>.</p>"
            if "selected_features" in desc:
                sel = weights_frame(desc["selected_features"], "feature", "coefficient (standardised)")
                if "lasso_C" in desc:
                    chosen = f"LASSO C = {desc['lasso_C']}"
                elif "penalizer" in desc:  # survival: penalised Cox
                    chosen = (f"Cox penalizer {desc['penalizer']}, l1_ratio {desc['l1_ratio']} (inner-CV C-index "
                              f"{desc['inner_cv_c_index']:.3f})")
                else:  # model.selector / model.classifier other than LASSO logistic
                    chosen = f"hyper-parameters {desc['hyper_parameters']}"
                body += f"<p>{chosen}; {len(sel)} feature(s) selected.</p>" + _table(sel, 4)
            if "coefficients" in desc:
                body += _table(weights_frame(desc["coefficients"], "term", "coefficient", by_size=False), 4)
            if "scales" in desc:
                body += nomogram_figure(rep, desc["scales"], name)
    rep.add("models", "Models", body)


def shap_figure(rep: Report, shap: pd.DataFrame, summary: pd.DataFrame, name: str, top: int = 10) -> str:
    """SHAP summary (beeswarm-style): per feature, each training patient's SHAP value coloured by the input."""
    keys = ["model", "class"] if "class" in summary.columns else ["model"]  # multi-class: a panel per class
    panels = list(dict.fromkeys(map(tuple, shap[keys].to_numpy().tolist())))  # models, then classes, in order
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.35 * top + 1.5), squeeze=False)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for ax, panel in zip(axes[0], panels, strict=True):
        here = (summary[keys] == panel).all(axis=1)
        feats = summary.loc[here, "feature"].head(top).tolist()
        rows = (shap[keys] == panel).all(axis=1)
        for i, f in enumerate(feats):
            g = shap[rows & (shap["feature"] == f)]
            v = g["value"].to_numpy(float)
            scaled = (v - v.min()) / (np.ptp(v) or 1.0)
            ax.scatter(g["shap"], -i + rng.uniform(-0.25, 0.25, len(g)), c=scaled, cmap="coolwarm", s=6)
        ax.set_yticks(-np.arange(len(feats)), [f[-40:] for f in feats], fontsize=7)
        ax.axvline(0, c="grey", lw=0.8)
        ax.set(xlabel="SHAP value (log-odds / log-hazard)", title=f"{' '.join(panel)}: blue low, red high input")
    fig.suptitle(f"{name}: SHAP values on the training centre")
    return rep.figure(fig, f"shap_{name}", "SHAP summary plot of the radiomics and nomogram models")


def shap_section(rep: Report, cfg: dict, paths: Paths) -> None:
    body = ""
    for ep in cfg["endpoints"]:
        name = ep["name"]
        if not paths.shap_summary(name).is_file():
            continue
        summary, shap = _read(paths.shap_summary(name)), _read(paths.shap(name))
        cols = [c for c in ("model", "class", "feature", "mean_abs_shap") if c in summary.columns]
        body += f"<h3>{html.escape(name)}</h3>" + shap_figure(rep, shap, summary, name) + _table(summary[cols], 4)
    if body:
        rep.add("shap", "Interpretability (SHAP)",
                "<p>Exact SHAP values of the locked radiomics and nomogram models on the training centre: for a "
                "model linear in its inputs with the training rows as background, each input contributes "
                "coefficient x (input - training mean) to the log-odds (log-hazard). Inputs are the standardised "
                "selected features, or the rad-score and encoded clinical factors.</p>" + body)


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


def _panels(pred: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    panels = [("internal (CV)", pred[pred["stage"] == "internal"])]
    ext = pred[pred["stage"] == "external"]
    panels += [(f"{c} (external)", g) for c, g in ext.groupby("centre")]
    if ext["centre"].nunique() > 1:
        panels.append(("pooled external", ext))
    return panels


def curves_figure(rep: Report, pred: pd.DataFrame, name: str, kind: str) -> str:
    panels = _panels(pred)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), squeeze=False)
    for ax, (title, g) in zip(axes[0], panels, strict=True):
        for model, gm in g.groupby("model", sort=False):
            y, s = gm["label"].to_numpy(int), gm["score"].to_numpy(float)
            if y.min() == y.max():
                continue
            colour = MODEL_COLOURS.get(model)
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, s)
                ax.plot(fpr, tpr, label=model, c=colour)
            elif kind == "calibration":
                cc = calibration_curve(y, s)
                ax.plot(cc["predicted"], cc["observed"], "o-", label=model, c=colour, ms=3)
            else:
                dc = decision_curve(y, {model: s}, np.round(np.arange(0.05, 0.81, 0.05), 2))
                mine = dc[dc["model"] == model]
                ax.plot(mine["threshold"], mine["net_benefit"], label=model, c=colour)
        if kind == "decision":
            y_all = g.drop_duplicates("patient_id")["label"].to_numpy(int)
            t = np.round(np.arange(0.05, 0.81, 0.05), 2)
            prev = y_all.mean()
            ax.plot(t, prev - (1 - prev) * t / (1 - t), c="grey", ls="--", label="treat all")
            ax.axhline(0, c="k", lw=0.8, label="treat none")
            ax.set(ylim=(-0.1, max(0.1, prev + 0.05)), xlabel="threshold probability", ylabel="net benefit")
        else:
            ax.plot([0, 1], [0, 1], ls=":", c="grey")
            ax.set(aspect="equal", xlim=(0, 1), ylim=(0, 1))
            ax.set(xlabel="1 - specificity" if kind == "roc" else "predicted risk",
                   ylabel="sensitivity" if kind == "roc" else "observed rate")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, loc="lower right" if kind != "decision" else "upper right")
    fig.suptitle(f"{name}: {'ROC' if kind == 'roc' else kind} curves")
    return rep.figure(fig, f"{kind}_{name}", f"{kind} curves per centre")


def km_figure(rep: Report, pred: pd.DataFrame, thresholds: dict[str, float], name: str) -> str:
    """Kaplan-Meier curves of the locked risk groups: one row per model, one column per centre panel."""
    from mcrad.validate import km_curves, logrank_p

    panels, models = _panels(pred), list(dict.fromkeys(pred["model"]))
    fig, axes = plt.subplots(len(models), len(panels), figsize=(3 * len(panels), 2.6 * len(models)),
                             squeeze=False, sharex=True, sharey=True)
    for row, model in zip(axes, models, strict=True):
        for ax, (title, g) in zip(row, panels, strict=True):
            gm = g[g["model"] == model]
            for group, curve in km_curves(gm, thresholds[model]).groupby("group", sort=False):
                ax.step(curve["time"], curve["survival"], where="post", label=group,
                        c="#d62728" if group == "high risk" else "#1f77b4")
            high = gm["score"].to_numpy(float) >= thresholds[model]
            p = logrank_p(gm["time"].to_numpy(float), gm["label"].to_numpy(int), high)
            ax.set_title(f"{model}: {title}\nlog-rank p = {p:.3g}", fontsize=8)
            ax.set_ylim(0, 1.02)
        row[0].set_ylabel("survival")
        row[0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{name}: Kaplan-Meier curves of the risk groups locked on training")
    return rep.figure(fig, f"km_{name}", "Kaplan-Meier curves of locked risk groups per centre")


def survival_section(rep: Report, ep: dict, paths: Paths) -> None:
    name = ep["name"]
    metrics, pred = _read(paths.metrics(name)), _read(paths.predictions(name))
    thresholds = {m: json.loads((paths.bundle(name, m) / "meta.json").read_text())["threshold"]
                  for m in dict.fromkeys(pred["model"])}
    cols = ["model", "centre", "stage", "n", "events", "c_index", "c_lo", "c_hi", "n_high", "events_high",
            "events_low", "logrank_p", *[c for c in metrics.columns if c.startswith("td_auc_")], "note"]
    rep.add(f"performance-{name}", f"Performance: {name} (survival)",
            "<p>Harrell's C-index with a 95% interval from its infinitesimal-jackknife variance (as R "
            "survival::concordance); risk groups split at the median training risk of each locked model (high "
            "risk above it) with the log-rank p between them; time-dependent AUC (cumulative/dynamic, inverse "
            "probability of censoring weighted) at the configured times. Internal rows are out-of-fold "
            "predictions on the training centre.</p>" + _table(metrics[cols]) + km_figure(rep, pred, thresholds, name))
    if paths.paired(name).is_file() and len(paired := _read(paths.paired(name))):
        rep.add(f"comparisons-{name}", f"Model comparisons: {name}",
                "<p>Paired C-index tests between models on the same patients (difference = C of model a minus "
                "model b; variance from the infinitesimal-jackknife covariance of the two, as R "
                "survival::concordance).</p>" + _table(paired))


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


def confusion_figure(rep: Report, pred: pd.DataFrame, classes: list[str], name: str) -> str:
    """Confusion matrices of the most probable class: one row per model, one column per centre panel."""
    panels, models = _panels(pred), list(dict.fromkeys(pred["model"]))
    fig, axes = plt.subplots(len(models), len(panels), figsize=(2.6 * len(panels), 2.4 * len(models)),
                             squeeze=False)
    for row, model in zip(axes, models, strict=True):
        for ax, (title, g) in zip(row, panels, strict=True):
            cm = confusion(g[g["model"] == model], classes).to_numpy()
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


def multiclass_section(rep: Report, ep: dict, paths: Paths) -> None:
    name, classes = ep["name"], ep["classes"]
    metrics, pred = _read(paths.metrics(name)), _read(paths.predictions(name))
    cols = ["model", "centre", "stage", "n", "auc", "auc_lo", "auc_hi", "hand_till", "accuracy", "acc_lo", "acc_hi",
            "balanced_accuracy", "kappa", "brier", "log_loss", "note"]
    kappa = "quadratic-weighted (ordinal classes)" if ep.get("ordinal") else "unweighted"
    rep.add(f"performance-{name}", f"Performance: {name} (multi-class: {', '.join(classes)})",
            "<p>Macro-averaged one-vs-rest AUC with a 95% interval from the DeLong influences of the class AUCs "
            "(their covariance included); Hand and Till's M (pairwise class AUC, as R pROC::multiclass.roc); "
            f"accuracy of the most probable class (Wilson interval), balanced accuracy, Cohen's kappa ({kappa}), "
            "multi-class Brier score and log loss. Internal rows are out-of-fold predictions on the training "
            "centre.</p>" + _table(metrics[cols])
            + forest_figure(rep, metrics, name, "macro one-vs-rest AUC (95% CI from DeLong influences)")
            + "<h3>Per class (one vs rest)</h3><p>AUC with DeLong CI; sensitivity (recall) and PPV of the most "
              "probable class with Wilson intervals; calibration intercept and slope of the class probability.</p>"
            + _table(per_class_table(metrics, classes)) + confusion_figure(rep, pred, classes, name))
    body = ""
    if paths.paired(name).is_file() and len(paired := _read(paths.paired(name))):
        body += ("<p>Paired tests of the macro one-vs-rest AUC between models on the same patients (difference = "
                 "model a minus model b; variance from the two models' DeLong influences, which for a binary "
                 "endpoint is the paired DeLong test).</p>" + _table(paired))
    if paths.comparison(name).is_file():
        comp = _read(paths.comparison(name))
        body += ("<h3>With and without ComBat</h3><p>The same locked models score the external centres with "
                 "ComBat-harmonised and with raw features.</p>"
                 + _table(comp.loc[comp["model"] != "clinical", ["model", "centre", "harmonisation", "n", "auc",
                                                                 "hand_till", "accuracy", "kappa", "brier"]]))
    if body:
        rep.add(f"comparisons-{name}", f"Model comparisons: {name}", body)


def prospective_section(rep: Report, ep: dict, paths: Paths) -> None:
    name = ep["name"]
    if not paths.prospective_metrics(name).is_file():
        return
    metrics = _read(paths.prospective_metrics(name))
    keep = ["model", "centre", "stage", "n", "events", "auc", "auc_lo", "auc_hi", "hand_till", "sensitivity",
            "specificity", "ppv", "npv", "accuracy", "balanced_accuracy", "kappa", "c_index", "c_lo", "c_hi",
            "logrank_p", "note"]
    rep.add(f"prospective-{name}", f"Prospective cohort: {name}",
            "<p>Centres held back from stages 1 and 2 were scored by the locked bundles before their outcomes were "
            "read (<code>mcrad predict</code>), then evaluated at the locked thresholds "
            "(<code>mcrad evaluate</code>).</p>" + _table(metrics[[c for c in keep if c in metrics.columns]]))


def performance_sections(rep: Report, cfg: dict, paths: Paths) -> None:
    for ep in cfg["endpoints"]:
        name = ep["name"]
        prospective_section(rep, ep, paths)
        if ep.get("type") == "survival":
            survival_section(rep, ep, paths)
            continue
        if ep.get("type") == "multiclass":
            multiclass_section(rep, ep, paths)
            continue
        metrics, pred = _read(paths.metrics(name)), _read(paths.predictions(name))
        cols = ["model", "centre", "stage", "n", "events", "auc", "auc_lo", "auc_hi", "sensitivity", "specificity",
                "ppv", "npv", "accuracy", "brier", "cal_intercept", "cal_slope", "note"]
        rep.add(f"performance-{name}", f"Performance: {name}",
                "<p>AUC with 95% DeLong CI; sensitivity and specificity at the threshold locked on training; "
                "Brier score; calibration intercept (0 is ideal) and slope (1 is ideal). Internal rows are "
                "out-of-fold predictions on the training centre.</p>" + _table(metrics[cols])
                + forest_figure(rep, metrics, name))
        rep.add(f"curves-{name}", f"ROC, calibration and decision curves: {name}",
                curves_figure(rep, pred, name, "roc") + curves_figure(rep, pred, name, "calibration")
                + "<p>Decision curves: net benefit of acting on each model's risk against treating everyone or "
                  "no one, over threshold probabilities.</p>" + curves_figure(rep, pred, name, "decision"))
        body = ""
        if paths.paired(name).is_file():
            paired = _read(paths.paired(name))
            body += "<p>Paired DeLong tests between models on the same patients (difference = AUC of model a " \
                    "minus model b).</p>" + _table(paired)
        if paths.comparison(name).is_file():
            comp = _read(paths.comparison(name))
            comp = comp[comp["model"] != "clinical"]  # no image features: identical either way
            body += ("<h3>With and without ComBat</h3><p>The same locked models score the external centres with "
                     "ComBat-harmonised and with raw features. A per-feature affine correction barely reorders a "
                     "score within a centre, so look at calibration and at the locked threshold.</p>"
                     + _table(comp[["model", "centre", "harmonisation", "n", "auc", "cal_intercept", "cal_slope",
                                    "brier", "sensitivity", "specificity"]]))
        if body:
            rep.add(f"comparisons-{name}", f"Model comparisons: {name}", body)


def methods_section(rep: Report, cfg: dict, versions: dict[str, str]) -> None:
    p, s, f, h = cfg["preprocess"], cfg["segment"], cfg["features"], cfg["harmonise"]
    params = yaml.safe_load(Path(f["params"]).read_text()) if Path(f["params"]).is_file() else {}
    setting = params.get("setting", {}) or {}
    binning = (f"a fixed bin width of {setting['binWidth']}" if "binWidth" in setting else
               f"{setting['binCount']} bins" if "binCount" in setting else "pyradiomics' default bin width of 25")
    ring = (f" and a {s['peritumoral']['radius_mm']} mm peritumoral ring"
            + (f" excluding voxels below {s['peritumoral']['min_intensity']}"
               if s["peritumoral"]["min_intensity"] is not None else "")) if s["peritumoral"]["activate"] else ""
    text = (
        f"Images were cropped to the tumour bounding box with a {p['crop_margin_mm']} mm margin and resampled to "
        f"{' x '.join(str(v) for v in p['spacing_mm'])} mm voxels ({p['image_interpolator']} interpolation for "
        f"images; masks by linear interpolation thresholded at {p['mask_threshold']}, following IBSI [ibsi]); "
        f"intensities were clipped to [{p['intensity_clip'][0]}, {p['intensity_clip'][1]}]. Features of the "
        f"tumour{ring} were extracted with pyradiomics {versions.get('pyradiomics', '')} [pyradiomics] "
        f"(image types {', '.join((params.get('imageType') or {}).keys()) or 'original'}; {binning}). "
        + (f"Features were harmonised with ComBat [combat, neurocombat] "
           f"({'parametric' if h['parametric'] else 'non-parametric'}"
           f"{', empirical Bayes' if h['eb'] else ''}) using the training centre as the reference batch, each "
           "external centre being mapped from its own features. " if h["activate"] else "")
        + f"Models were trained on centre(s) {', '.join(cfg['design']['train'])} only: LASSO logistic regression "
        f"[lasso] after correlation filtering, with the penalty chosen by inner cross-validation, a clinical "
        f"logistic model and a nomogram of the rad-score and the clinical predictors independent of it (backward "
        f"elimination, likelihood-ratio p <= {cfg['model']['nomogram_clinical_p']}). Internal performance was "
        f"estimated by {cfg['model']['outer_folds']}-fold "
        "cross-validation, and the decision threshold was fixed at the Youden point [youden] of the out-of-fold "
        f"predictions. The locked models were validated on centre(s) {', '.join(cfg['design']['external'])}: "
        "AUC with DeLong confidence intervals and paired DeLong tests [delong], sensitivity and specificity with "
        "Wilson intervals, calibration intercept and slope, Brier score and decision curves [dca]. The study ran "
        "as a Snakemake workflow [snakemake] (mcrad); the report follows TRIPOD+AI [tripod] and CLEAR [clear].")


    cited = list(dict.fromkeys(k for group in re.findall(r"\[([a-z, ]+)\]", text) for k in group.split(", ")))
    number = {k: str(i) for i, k in enumerate(cited, 1)}
    text = re.sub(r"\[([a-z, ]+)\]", lambda m: "[" + ", ".join(number[k] for k in m.group(1).split(", ")) + "]", text)
    refs = "".join(f"<li>{html.escape(REFERENCES[k])}</li>" for k in cited)
    rep.add("methods", "Methods (auto-written from the settings used)", f"<p>{html.escape(text)}</p><ol>{refs}</ol>")


# TRIPOD+AI and CLEAR items, paraphrased by topic (see the statements for their full wording), with the
# section of this report that answers each, or None when the report does not cover it.
CHECKLIST = [
    ("TRIPOD+AI", "Data sources and study setting (centres, dates)", "design"),
    ("TRIPOD+AI", "Eligibility and participants flow; excluded cases with reasons", "qc"),
    ("TRIPOD+AI", "Outcome definition", "cohort"),
    ("TRIPOD+AI", "Predictors and their pre-processing", "methods"),
    ("TRIPOD+AI", "Sample size and number of events per centre", "design"),
    ("TRIPOD+AI", "Missing data handling", "models"),
    ("TRIPOD+AI", "Analytical methods: model type, selection, hyper-parameters, internal validation", "models"),
    ("TRIPOD+AI", "Class imbalance handling", None),
    ("TRIPOD+AI", "Fairness: performance across subgroups", None),
    ("TRIPOD+AI", "Participant characteristics per centre (Table 1)", "cohort"),
    ("TRIPOD+AI", "Model specification (coefficients, threshold, nomogram)", "models"),
    ("TRIPOD+AI", "Performance with confidence intervals (discrimination, calibration)", "performance"),
    ("TRIPOD+AI", "Clinical utility (decision curves)", "curves"),
    ("TRIPOD+AI", "External validation on other centres", "performance"),
    ("TRIPOD+AI", "Code and software availability, versions", "provenance"),
    ("TRIPOD+AI", "Ethics approval, funding, registration, patient involvement", None),
    ("CLEAR", "Imaging protocol and acquisition per centre", "qc"),
    ("CLEAR", "Segmentation method and ROIs", "methods"),
    ("CLEAR", "Image pre-processing (resampling, interpolation, discretisation)", "methods"),
    ("CLEAR", "Feature extraction software, version and parameter file", "methods"),
    ("CLEAR", "Feature robustness / reproducibility analysis", "robustness"),
    ("CLEAR", "Harmonisation and its effect", "harmonisation"),
    ("CLEAR", "Feature selection inside cross-validation", "models"),
    ("CLEAR", "Comparison with a clinical baseline model", "comparisons"),
    ("CLEAR", "Interpretability (feature importance / SHAP)", "shap"),
    ("CLEAR", "Reproducibility: config, input checksums, workflow", "provenance"),
]


def checklist_section(rep: Report) -> None:
    rows = []
    for source, item, anchor in CHECKLIST:
        if anchor and rep.has(anchor):
            target = next(a for a, _, _ in rep.sections if a == anchor or a.startswith(anchor + "-"))
            where = f'<a href="#{target}">{html.escape(target)}</a>'
        else:
            where = '<span class="missing">not covered by this report</span>'
        rows.append(f"<tr><td>{source}</td><td>{html.escape(item)}</td><td>{where}</td></tr>")
    rep.add("checklist", "Reporting checklist (TRIPOD+AI, CLEAR)",
            "<p>Items paraphrased by topic; see Collins et al. 2024 (TRIPOD+AI) and Kocak et al. 2023 (CLEAR) for "
            "the full wording.</p><table class='left'><tr><th>checklist</th><th>item</th><th>answered in</th></tr>"
            + "".join(rows) + "</table>")


def git_commit(start: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(start), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(start), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    if out.returncode != 0:
        return "unknown (not a git checkout)"
    return out.stdout.strip() + (" (with local changes)" if dirty else "")


def runtime_section(rep: Report, paths: Paths) -> None:
    """Snakemake's benchmark files of the heavy rules, gathered: what each stage cost."""
    rows = []
    for f in sorted((paths.root / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(f, sep="\t")
        rows.append({"rule": f.parent.name, "s": float(b["s"].sum()), "max_rss": float(b["max_rss"].max())})
    if not rows:
        return
    table = pd.DataFrame(rows).groupby("rule", sort=False).agg(
        jobs=("s", "size"), total_seconds=("s", "sum"), peak_rss_mb=("max_rss", "max")).reset_index()
    rep.add("runtime", "Runtime", "<p>Per rule: jobs, summed wall time and peak memory of one job "
            "(Snakemake benchmark files under <code>benchmarks/</code>).</p>" + _table(table, 1))


def provenance_section(rep: Report, cfg: dict, paths: Paths, versions: dict[str, str]) -> None:
    qc = _read(paths.qc_ingest)
    ok = qc[qc["status"] == "ok"]
    digest = hashlib.sha256("".join(ok["image_sha256"].astype(str) + ok["mask_sha256"].astype(str)).encode())
    sheet = paths.synth_sheet if cfg["cohort"]["sheet"] is None else Path(cfg["cohort"]["sheet"])
    facts = pd.DataFrame([
        ("mcrad git commit", git_commit(Path(__file__).resolve().parent)),
        ("config sha256", stable_hash(cfg)),
        ("cohort sheet sha256", _sha256(sheet) if sheet.is_file() else "missing"),
        (f"images and masks ({len(ok)} cases) combined sha256", digest.hexdigest()),
    ], columns=["item", "value"])
    versions_table = pd.DataFrame(sorted(versions.items()), columns=["software", "version"])
    rep.add("provenance", "Provenance",
            _table(facts) + "<p class='note'>Per-case image and mask checksums: <code>qc/ingest.tsv</code>.</p>"
            + _table(versions_table)
            + f"<details><summary>configuration</summary><pre>{html.escape(yaml.safe_dump(cfg, sort_keys=True))}"
              "</pre></details>")


def write_report(cfg: dict, root: Path, out: Path, figures_dir: Path | None = None) -> None:
    from mcrad.model import software_versions

    paths, versions = Paths(root), software_versions()
    rep = Report(figures_dir)
    cohort = cohorts(cfg, paths)
    design_section(rep, cfg, paths, cohort)
    cohort_section(rep, cfg, cohort)
    qc_section(rep, paths)
    harmonisation_section(rep, cfg, paths)
    robustness_section(rep, cfg, paths)
    models_section(rep, cfg, paths)
    shap_section(rep, cfg, paths)
    deep_section(rep, cfg, paths)
    performance_sections(rep, cfg, paths)
    if cfg["cohort"]["sheet"] is None and paths.synth_truth.is_file():
        truth = json.loads(paths.synth_truth.read_text())
        rep.add("truth", "Synthetic ground truth",
                "<p>The demo cohort is simulated, so the best achievable performance is known: population AUC of "
                f"the true risk {truth['bayes_auc']:.3f}; of its imaging part (the limit of any image-only model) "
                f"{truth['bayes_auc_imaging']:.3f}."
                + (f" Grade (G1/G2/G3): population macro one-vs-rest AUC of the true class probabilities "
                   f"{truth['bayes_grade_macro_auc']:.3f}." if "bayes_grade_macro_auc" in truth else "") + "</p>")
    methods_section(rep, cfg, versions)
    runtime_section(rep, paths)
    provenance_section(rep, cfg, paths, versions)
    checklist_section(rep)  # last: it points at the sections above
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in rep.sections)
    body = "\n".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in rep.sections)
    title = html.escape(cfg["study"]["name"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mcrad: {title}</title>"
                   f"<style>{CSS}</style></head><body><h1>mcrad multicentre validation report: {title}</h1>"
                   f"<nav>{nav}</nav>{body}</body></html>\n")
