# Report: one self-contained HTML page for the study.
BINARY = [ep["name"] for ep in CFG["endpoints"] if ep["type"] == "binary"]
SURVIVAL = [ep["name"] for ep in CFG["endpoints"] if ep["type"] == "survival"]
MULTICLASS = [ep["name"] for ep in CFG["endpoints"] if ep["type"] == "multiclass"]


rule report:
    input:
        metrics=[PATHS.metrics(ep) for ep in ENDPOINTS],
        paired=[PATHS.paired(ep) for ep in ENDPOINTS],
        shap=[PATHS.shap_summary(ep) for ep in ENDPOINTS] + [PATHS.shap(ep) for ep in ENDPOINTS],
        prospective=[PATHS.prospective_metrics(ep) for ep in ENDPOINTS] if PLAN.prospective else [],
        predictions=expand(PATHS.predictions("{endpoint}"), endpoint=ENDPOINTS),
        qc=PATHS.qc_ingest,
        qc_preprocess=PATHS.qc_preprocess,
        quarantine=PATHS.qc_quarantine,
        harmonised=PATHS.harmonised_features,
        diagnostics=[PATHS.harmonise_file(f) for f in ("diagnostics.json", "kruskal_wallis.tsv", "pca.tsv")],
        cohort=[PATHS.cohort_table(c) for c in PLAN.centres],
        truth=[PATHS.synth_truth] if PLAN.synthetic else [],
        deep=DEEP_OUTPUTS + AUTOSEG_OUTPUTS,
    output:
        html=report(PATHS.report, caption="../report/study_report.rst", category="Report"),
        design=report(PATHS.figure("design"), caption="../report/design.rst", category="Study design"),
        pca=report(PATHS.figure("harmonisation_pca"), caption="../report/pca.rst", category="Harmonisation"),
        figures=[
            report(PATHS.figure(f"{kind}_{ep}"), caption=f"../report/{kind}.rst", category="Validation",
                   subcategory=ep, labels={"endpoint": ep, "figure": kind})
            for ep in BINARY
            for kind in ("forest", "roc", "calibration", "decision")
        ]
        + [
            report(PATHS.figure(f"nomogram_{ep}"), caption="../report/nomogram.rst", category="Models",
                   labels={"endpoint": ep, "figure": "nomogram"})
            for ep in BINARY
        ]
        + [
            report(PATHS.figure(f"{kind}_{ep}"), caption=f"../report/{kind}.rst", category="Validation",
                   subcategory=ep, labels={"endpoint": ep, "figure": kind})
            for ep in MULTICLASS
            for kind in ("forest", "confusion")
        ]
        + [
            report(PATHS.figure(f"km_{ep}"), caption="../report/km.rst", category="Validation", subcategory=ep,
                   labels={"endpoint": ep, "figure": "km"})
            for ep in SURVIVAL
        ]
        + [
            report(PATHS.figure(f"shap_{ep}"), caption="../report/shap.rst", category="Models",
                   labels={"endpoint": ep, "figure": "shap"})
            for ep in ENDPOINTS
        ],
    params:
        code=code_hash("report", "model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "preprocess", "segment", "features",
                    "harmonise", "model", "validate"),
        root=ROOT,
        figures=PATHS.figure("x").parent,
    log:
        PATHS.log("report"),
    shell:
        "{MCRAD} report --config {params.cfg:q} --root {params.root:q} --out {output.html:q}"
        " --figures {params.figures:q} > {log:q} 2>&1"
