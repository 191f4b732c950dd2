"""Report sections about the locked models: pipelines, selected features and coefficients, locked thresholds,
bundle hashes, the nomogram, SHAP values, and the deep-learning stage."""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, png_tag, table


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


def models_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
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
            meta, manifest = inputs.bundle(name, model)
            desc = meta["description"]
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
                body += f"<p>{chosen}; {len(sel)} feature(s) selected.</p>" + table(sel, 4)
            if "coefficients" in desc:
                body += table(weights_frame(desc["coefficients"], "term", "coefficient", by_size=False), 4)
            if "scales" in desc:
                body += nomogram_figure(rep, desc["scales"], name)
    rep.add("models", "Models", body)


def shap_figure(rep: Report, shap: pd.DataFrame, summary: pd.DataFrame, name: str, top: int = 10) -> str:
    """SHAP summary (beeswarm-style): per feature, each training patient's SHAP value coloured by the input."""
    keys = ["model", "class"] if "class" in summary.columns else ["model"]  # multi-class: a panel per class
    panels = list(dict.fromkeys(map(tuple, shap[keys].to_numpy().tolist())))  # models, then classes, in order
    if not panels:  # no model kept an input (e.g. no signal: the lasso selected nothing)
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.text(0.5, 0.5, "no SHAP values: the models kept no input", ha="center", va="center")
        ax.set_axis_off()
        return rep.figure(fig, f"shap_{name}", "no SHAP values")
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


def shap_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
    paths = inputs.paths
    body = ""
    for ep in cfg["endpoints"]:
        name = ep["name"]
        if not inputs.has(paths.shap_summary(name)):
            continue
        summary, shap = inputs.table(paths.shap_summary(name)), inputs.table(paths.shap(name))
        cols = [c for c in ("model", "class", "feature", "mean_abs_shap") if c in summary.columns]
        body += f"<h3>{html.escape(name)}</h3>" + shap_figure(rep, shap, summary, name) + table(summary[cols], 4)
    if body:
        rep.add("shap", "Interpretability (SHAP)",
                "<p>Exact SHAP values of the locked radiomics and nomogram models on the training centre: for a "
                "model linear in its inputs with the training rows as background, each input contributes "
                "coefficient x (input - training mean) to the log-odds (log-hazard). Inputs are the standardised "
                "selected features, or the rad-score and encoded clinical factors.</p>" + body)


def deep_section(rep: Report, cfg: dict, inputs: ReportInputs) -> None:
    """Deep stage (when it ran): training curves, CV summary and Grad-CAM heatmaps of a few cases per centre."""
    paths, body = inputs.paths, ""
    centres = sorted(cfg["design"]["train"] + cfg["design"]["external"] + cfg["design"]["prospective"])
    for ep in (e["name"] for e in cfg["endpoints"]):
        if not inputs.has(paths.deep_curves(ep)):
            continue
        meta = inputs.json(paths.deep_network_meta(ep))
        opts, summary = meta["options"], meta["summary"]
        curves = inputs.table(paths.deep_curves(ep))
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
        for centre in (c for c in centres if inputs.has(paths.deep_gradcam(ep, c))):
            for png in inputs.files(paths.deep_gradcam(ep, centre), "*.png"):
                cams.append(f'<figure style="display:inline-block">{png_tag(inputs.bytes(png), f"Grad-CAM {png.stem}")}'
                            f"<figcaption>{html.escape(centre)} / {html.escape(png.stem)}</figcaption></figure>")
        if cams:
            body += ("<p>Grad-CAM (monai.visualize) of the deep score, axial slice through the crop centre, for "
                     "the first cases of each centre:</p>" + "".join(cams))
    if inputs.has(paths.autoseg_dice):
        body += ("<h3>Auto-segmentation</h3><p>Dice of the UNet's masks against the provided masks; "
                 "<code>feature_masks</code> says which masks the centre's radiomics features were extracted from "
                 "(auto: the UNet's, deep.autoseg.use_for_features).</p>" + table(inputs.table(paths.autoseg_dice)))
    if body:
        rep.add("deep", "Deep learning", body)


