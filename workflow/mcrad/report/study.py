"""Report sections about the study and its data: design, cohort (Table 1), acquisition and QC, feature
robustness, harmonisation, and the synthetic ground truth of the demo cohort."""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from mcrad.cases import failure_summary
from mcrad.endpoints import Endpoint
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, png_tag, table


def cohorts(cfg: dict, inputs: ReportInputs) -> pd.DataFrame:
    """The training and external centres' cohort tables, with their role."""
    frames = [inputs.table(inputs.paths.cohort_table(c)).assign(role="train" if c in cfg["design"]["train"]
                                                                 else "external")
              for c in cfg["design"]["train"] + cfg["design"]["external"]]
    return pd.concat(frames, ignore_index=True)


def design_section(rep: Report, inputs: ReportInputs, eps: list[Endpoint], cohort: pd.DataFrame) -> None:
    quarantine = inputs.table(inputs.paths.qc_quarantine)
    rows = []
    for centre, g in cohort.groupby("centre", sort=False):
        row = {"centre": centre, "stage": "training (stage 1)" if g["role"].iloc[0] == "train"
               else "external validation (stage 2)", "patients": len(g),
               "quarantined": int((quarantine["centre"] == centre).sum())}
        for ep in eps:
            row.update(ep.design_counts(g))
        rows.append(row)
    design = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(design)))
    colours = ["#4c72b0" if s.startswith("training") else "#dd8452" for s in design["stage"]]
    ax.barh(design["centre"], design["patients"], color=colours)
    ep0 = next((ep.name for ep in eps if f"{ep.name} events" in design.columns), None)
    if ep0:
        ax.barh(design["centre"], design[f"{ep0} events"], color="none", edgecolor="k", hatch="//",
                label=f"{ep0} events")
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="patients", title="Centres: training (blue) and external validation (orange)")
    rep.add("design", "Study design",
            "<p>Staged validation: models are trained, cross-validated and locked on the training centre(s) "
            "(stage 1); every external centre is then scored by the locked models only (stage 2). Nothing "
            "computed from an external centre's outcomes reaches training.</p>"
            + table(design) + rep.figure(fig, "design", "patients and events per centre"))


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
            "should remove.</p>" + table(table_one(cfg, cohort)))


def qc_section(rep: Report, inputs: ReportInputs) -> None:
    paths = inputs.paths
    quarantine = inputs.table(paths.qc_quarantine)
    body = (f"<p>{len(quarantine)} case(s) quarantined (left out of the analysis), per centre, stage and "
            "reason:</p>" + table(failure_summary(quarantine)) + "<p>Each case, with its file and what to do:</p>"
            + table(quarantine)) if len(quarantine) else "<p>No case was quarantined.</p>"
    qc = inputs.table(paths.qc_ingest)
    ok = qc[qc["status"] == "ok"]
    if len(ok):
        summary = ok.groupby("centre").agg(cases=("patient_id", "size"),
                                           voxel_spacing_mm=("spacing_mm", lambda s: ", ".join(sorted(set(s))[:3])),
                                           tumour_ml_median=("mask_volume_ml", "median"),
                                           with_warnings=("warnings", lambda s: int(s.notna().sum()))).reset_index()
        body += "<p>Acquisition per centre (voxel spacings seen, up to three; median tumour volume):</p>" + \
            table(summary, 2)
        body += qc_scanners(ok) + qc_pictures(inputs)
    body += qc_registration(inputs)
    rep.add("qc", "Acquisition and quality control", body)


def qc_registration(inputs: ReportInputs) -> str:
    """Multi-sequence studies: how well each sequence was registered to the reference (qc/preprocess.tsv)."""
    pre = inputs.table(inputs.paths.qc_preprocess) if inputs.has(inputs.paths.qc_preprocess) else pd.DataFrame()
    reg = [c for c in pre.columns if c.startswith("reg_")]
    if not reg or not (pre["status"] == "ok").any():
        return ""
    summary = pre[pre["status"] == "ok"].groupby("centre")[reg].agg(["median", "min"])
    summary.columns = [f"{col}_{stat}" for col, stat in summary.columns]
    return ("<p>Rigid registration of each sequence to the reference sequence, per centre (median and worst case): "
            "Mattes mutual information at convergence (<code>_mi</code>, higher is better) and, where the sheet gives "
            "a sequence its own mask, Dice of the reference mask carried over against it (<code>_dice</code>). "
            "Per case: qc/preprocess.tsv.</p>" + table(summary.reset_index(), 3))


QC_TAGS = ["modality", "manufacturer", "scanner_model", "kernel", "slice_thickness_mm"]


def qc_scanners(ok: pd.DataFrame) -> str:
    """Cases per centre and scanner (DICOM inputs; whitelisted technical tags only)."""
    cols = [c for c in QC_TAGS if c in ok and ok[c].notna().any()]
    if not cols:
        return ""
    scanners = ok.fillna({c: "" for c in cols}).groupby(["centre", *cols]).size().reset_index(name="cases")
    return "<p>Scanners and reconstruction (from DICOM headers):</p>" + table(scanners, 2)


def qc_pictures(inputs: ReportInputs) -> str:
    """The ingest QC pictures chosen by the qc_pictures rule (qc/pictures/): per centre, cases with warnings
    first, then the smallest and largest tumour; every case's picture is in cases/<centre>/<patient>/ingest/."""
    paths = inputs.paths
    if not inputs.has(paths.qc_pictures_index):
        return ""
    shown = [f"<figure>{png_tag(inputs.bytes(paths.qc_picture_copy(r.centre, r.patient_id)), f'QC {r.patient_id}')}"
             f"<figcaption>{html.escape(r.centre)} / {html.escape(r.patient_id)}</figcaption></figure>"
             for r in inputs.table(paths.qc_pictures_index).itertuples()]
    if not shown:
        return ""
    return ("<p>Mask outlines (red) on three planes through the tumour centre: cases with warnings, then the "
            "smallest and largest tumour of each centre.</p>" + "".join(shown))


def harmonisation_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
    h, paths = cfg["harmonise"], inputs.paths
    excluded = inputs.table(paths.excluded_features)
    body = "<p>" + (
        f"ComBat ({'parametric' if h['parametric'] else 'non-parametric'} "
        f"{'empirical Bayes' if h['eb'] else 'without empirical Bayes'}{', mean only' if h['mean_only'] else ''}"
        f"{', preserving ' + ', '.join(h['covariates']) if h['covariates'] else ''}) with training centre "
        f"{html.escape(cfg['design']['train'][0])} as the reference batch, left unchanged; each external "
        "centre's batch effect is estimated from its own unlabelled features." if h["activate"]
        else "Off: raw features go to the models.") + f" {len(excluded)} feature(s) constant in training were " \
        "excluded.</p>"
    if inputs.has(paths.harmonise_diagnostics):
        d = inputs.json(paths.harmonise_diagnostics)
        outcome = inputs.json(paths.harmonise_outcome_check) if inputs.has(paths.harmonise_outcome_check) else {}
        rows = harmonisation_rows(d, outcome)
        fmt = lambda v: "" if v is None else str(v) if isinstance(v, int) else f"{v:.3f}"  # noqa: E731
        diagnostics = pd.DataFrame([(n, fmt(b), fmt(a)) for n, b, a in rows],
                                   columns=["diagnostic", "before ComBat", "after ComBat"])
        pca = inputs.table(paths.harmonise_pca)
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
        for ax, (which, g) in zip(axes, pca.groupby("harmonisation", sort=False), strict=True):
            for centre, gc in g.groupby("centre"):
                ax.scatter(gc["pc1"], gc["pc2"], s=10, label=centre)
            ax.set(title=f"PCA, {which} ComBat", xlabel="PC1", ylabel="PC2")
        axes[0].legend(fontsize=7)
        body += ("<p>Does harmonisation remove the centre and keep the signal? \"After\" is judged on held-out "
                 f"cases: in each of {d.get('folds', '')} folds (stratified by centre) ComBat is refitted on the "
                 "other cases exactly as the workflow fits it (training centre as reference, each other centre "
                 "mapped from its own cases in the other folds), the held-out cases are harmonised by that model, "
                 "and a centre classifier trained on the other cases scores them. Identifiability 0.5 means the "
                 "centres can no longer be told apart. The share of variance explained by centre is one-way ANOVA "
                 "omega-squared per feature (about 0 without a centre effect), averaged over the folds' held-out "
                 "cases; per feature in <code>harmonise/centre_variance.tsv</code>. After ComBat it holds what "
                 "ComBat leaves and the imprecision of its estimates from each centre's cases (larger for small "
                 "centres), which shifts a centre's new cases at random rather than systematically.</p>"
                 + table(diagnostics)
                 + all_cases_note(d)
                 + rep.figure(fig, "harmonisation_pca", "PCA of features before and after ComBat"))
    rep.add("harmonisation", "Harmonisation", body)


def harmonisation_rows(d: dict, outcome: dict) -> list[tuple[str, object, object]]:
    """(diagnostic, before, after) rows of harmonise/diagnostics.json and outcome_check.json."""
    after = "centre_auc_after_in_fold"
    rows: list[tuple[str, object, object]] = []
    if "centre_auc_before" in d:
        rows.append(("centre identifiability (CV AUC of predicting the centre; 0.5 = not separable)",
                     d["centre_auc_before"], d.get(after)))
    if "centre_variance_share_median_before" in d:
        rows.append(("share of variance explained by centre, median over features (omega-squared)",
                     d["centre_variance_share_median_before"], d.get("centre_variance_share_median_after")))
        rows.append(("share of variance explained by centre, 90th percentile over features",
                     d["centre_variance_share_p90_before"], d.get("centre_variance_share_p90_after")))
        rows.append(("share of features differing across centres (Kruskal-Wallis p < 0.05; chance 0.05)",
                     d["kruskal_share_below_0.05_before"], d.get("kruskal_share_below_0.05_after")))
    for key in sorted(k for k in outcome if k.startswith("train_outcome_auc_") and k.endswith("_before")):
        endpoint = key[len("train_outcome_auc_"):-len("_before")]
        rows.append((f"training-centre outcome AUC ({endpoint}, CV ridge logistic, training labels only)",
                     outcome[key], outcome[key.replace("_before", "_after")]))
    return rows


def all_cases_note(d: dict) -> str:
    if "centre_auc_after_all_cases" not in d:
        return ""
    missing = f"<p class='missing'>{html.escape(d['in_fold_not_computed'])}</p>" if "in_fold_not_computed" in d else ""
    return missing + ("<p class='note'>For comparison only: on the harmonised table itself, where each centre's ComBat "
            "estimates came from every one of its cases, held-out ones included, the cross-validated "
            f"identifiability is {d['centre_auc_after_all_cases']:.3f} and "
            f"{d['kruskal_p_below_0.05_after_all_cases']} of {d['features']} features differ across centres "
            f"(Kruskal-Wallis p &lt; 0.05; before ComBat {d['kruskal_p_below_0.05_before']}). Below-chance "
            "identifiability there is an artefact of judging ComBat on the cases it was fitted on (each centre's "
            "mean is equalised by construction), not over-correction.</p>")


def robustness_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
    """Contour robustness (features.robustness): ICC(3,1) distribution and kept/dropped counts per class."""
    rob, paths = cfg["features"]["robustness"], inputs.paths
    flags = inputs.table(paths.feature_flags()) if inputs.has(paths.feature_flags()) else pd.DataFrame()
    body = (f"<p>{len(flags)} case/feature-class QC flag(s): features a case could not give (ROI too small, "
            "flat intensity region) are NaN there and listed in qc/feature_flags.tsv; harmonisation excludes "
            "features NaN in a training case.</p>")
    if not rob["activate"] or not inputs.has(paths.robustness):
        rep.add("robustness", "Feature robustness", body + "<p>Contour-robustness filter off.</p>")
        return
    t = inputs.table(paths.robustness)
    t["class"] = t["feature"].str.split("_").str[3]
    bins = pd.cut(t["icc"], [-np.inf, 0.5, rob["threshold"], 0.9, np.inf], right=False,
                  labels=["< 0.5", f"0.5-{rob['threshold']}", f"{rob['threshold']}-0.9", ">= 0.9"])
    kept = t.groupby("class")["kept"]
    counts = (pd.crosstab(t["class"], bins.cat.add_categories("undefined").fillna("undefined"), dropna=False)
              .assign(kept=kept.sum(), dropped=kept.size() - kept.sum()).rename_axis(columns=None).reset_index())
    body += (f"<p>ICC(3,1) of each feature over {', '.join(rob['perturbations'])} perturbations of up to "
             f"{rob['cases']} sampled training-centre cases (Zwanenburg et al. 2019): "
             f"{int(t['kept'].sum())} of {len(t)} features have ICC &ge; {rob['threshold']} and are kept; "
             f"{int((~t['kept']).sum())} are dropped before modelling. Median ICC {t['icc'].median():.3f}.</p>"
             + table(counts))
    rep.add("robustness", "Feature robustness", body)


def truth_section(rep: Report, inputs: ReportInputs) -> None:
    """The demo cohort is simulated: the best achievable performance is known."""
    if not inputs.has(inputs.paths.synth_truth):
        return
    truth = inputs.json(inputs.paths.synth_truth)
    rep.add("truth", "Synthetic ground truth",
            "<p>The demo cohort is simulated, so the best achievable performance is known: population AUC of "
            f"the true risk {truth['bayes_auc']:.3f}; of its imaging part (the limit of any image-only model) "
            f"{truth['bayes_auc_imaging']:.3f}."
            + (f" Grade (G1/G2/G3): population macro one-vs-rest AUC of the true class probabilities "
               f"{truth['bayes_grade_macro_auc']:.3f}." if "bayes_grade_macro_auc" in truth else "") + "</p>")
