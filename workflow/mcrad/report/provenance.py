"""Report sections that make the study reusable and checkable: the auto-written methods paragraph with its
references, the runtime of each rule, provenance (commit, config, input checksums, versions) and the TRIPOD+AI /
CLEAR checklist."""
from __future__ import annotations

import hashlib
import html
import re
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from mcrad.files import file_sha256, stable_hash
from mcrad.report.inputs import ReportInputs
from mcrad.report.page import Report, table

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


def methods_section(rep: Report, cfg: dict, inputs: ReportInputs, versions: dict[str, str]) -> None:
    p, s, f, h = cfg["preprocess"], cfg["segment"], cfg["features"], cfg["harmonise"]
    params = yaml.safe_load(inputs.bytes(Path(f["params"]))) if inputs.has(Path(f["params"])) else {}
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
    ("TRIPOD+AI", "Number of participants and events per centre", "design"),
    ("TRIPOD+AI", "Sample size: how it was arrived at (minimum per model, Riley 2020)", "guardrails-sample-size"),
    ("TRIPOD+AI", "Missing data handling", "models"),
    ("TRIPOD+AI", "Analytical methods: model type, selection, hyper-parameters, internal validation", "models"),
    ("TRIPOD+AI", "Class imbalance handling", None),
    ("TRIPOD+AI", "Fairness: performance across subgroups", None),
    ("TRIPOD+AI", "Participant characteristics per centre (Table 1)", "cohort"),
    ("TRIPOD+AI", "Model specification (coefficients, threshold, nomogram)", "models"),
    ("TRIPOD+AI", "Performance with confidence intervals (discrimination, calibration)", "performance"),
    ("TRIPOD+AI", "Clinical utility (decision curves)", "curves"),
    ("TRIPOD+AI", "External validation on other centres", "performance"),
    ("TRIPOD+AI", "Performance beyond chance: y-randomisation null, permutation p of external AUC/C", "nulls"),
    ("TRIPOD+AI", "Code and software availability, versions", "provenance"),
    ("TRIPOD+AI", "Ethics approval, funding, registration, patient involvement", None),
    ("CLEAR", "Imaging protocol and acquisition per centre", "qc"),
    ("CLEAR", "Segmentation method and ROIs", "methods"),
    ("CLEAR", "Image pre-processing (resampling, interpolation, discretisation)", "methods"),
    ("CLEAR", "Feature extraction software, version and parameter file", "methods"),
    ("CLEAR", "Feature robustness / reproducibility analysis", "robustness"),
    ("CLEAR", "Sample size calculation", "guardrails-sample-size"),
    ("CLEAR", "Harmonisation and its effect", "harmonisation"),
    ("CLEAR", "Confounding: do the selected features measure more than tumour volume", "guardrails-volume"),
    ("CLEAR", "Feature selection inside cross-validation", "models"),
    ("CLEAR", "Comparison with a clinical baseline model", "comparisons"),
    ("CLEAR", "Negative controls (shuffled, sampled, relocated ROI) through the same pipeline", "negative-controls"),
    ("CLEAR", "Interpretability (feature importance / SHAP)", "shap"),
    ("CLEAR", "Reproducibility: config, input checksums, workflow", "provenance"),
]


def checklist_section(rep: Report) -> None:
    rows = []
    for source, item, anchor in CHECKLIST:
        target = rep.anchor(anchor) if anchor else None
        if target:
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


def runtime_section(rep: Report, inputs: ReportInputs) -> None:
    """Snakemake's benchmark files of the heavy rules (declared inputs of the report), gathered: what each stage
    cost."""
    rows = []
    for f in inputs.declared_under(inputs.paths.benchmarks_dir):
        b = inputs.table(f)
        rule = f.parent.name if f.parent != inputs.paths.benchmarks_dir.resolve() else f.stem
        rows.append({"rule": rule, "s": float(b["s"].sum()), "max_rss": float(b["max_rss"].max())})
    if not rows:
        return
    runtime = pd.DataFrame(rows).groupby("rule", sort=False).agg(
        jobs=("s", "size"), total_seconds=("s", "sum"), peak_rss_mb=("max_rss", "max")).reset_index()
    rep.add("runtime", "Runtime", "<p>Per rule: jobs, summed wall time and peak memory of one job "
            "(Snakemake benchmark files under <code>benchmarks/</code>).</p>" + table(runtime, 1))


def provenance_section(rep: Report, cfg: dict, inputs: ReportInputs, sheet: Path, versions: dict[str, str]) -> None:
    qc = inputs.table(inputs.paths.qc_ingest)
    ok = qc[qc["status"] == "ok"]
    digest = hashlib.sha256("".join(ok["image_sha256"].astype(str) + ok["mask_sha256"].astype(str)).encode())
    facts = pd.DataFrame([
        ("mcrad git commit", git_commit(Path(__file__).resolve().parent)),
        ("config sha256", stable_hash(cfg)),
        ("cohort sheet sha256", file_sha256(sheet) if inputs.has(sheet) else "missing"),
        (f"images and masks ({len(ok)} cases) combined sha256", digest.hexdigest()),
    ], columns=["item", "value"])
    versions_table = pd.DataFrame(sorted(versions.items()), columns=["software", "version"])
    rep.add("provenance", "Provenance",
            table(facts) + "<p class='note'>Per-case image and mask checksums: <code>qc/ingest.tsv</code>.</p>"
            + table(versions_table)
            + f"<details><summary>configuration</summary><pre>{html.escape(yaml.safe_dump(cfg, sort_keys=True))}"
              "</pre></details>")
