# Report: one self-contained HTML page for the study.


rule report:
    input:
        metrics=[PATHS.metrics(ep) for ep in ENDPOINTS],
        paired=[PATHS.paired(ep) for ep in ENDPOINTS],
        predictions=expand(PATHS.predictions("{endpoint}"), endpoint=ENDPOINTS),
        qc=PATHS.qc_ingest,
        quarantine=PATHS.qc_quarantine,
        harmonised=PATHS.harmonised_features,
        diagnostics=[PATHS.harmonise_file(f) for f in ("diagnostics.json", "kruskal_wallis.tsv", "pca.tsv")],
        cohort=[PATHS.cohort_table(c) for c in PLAN.centres],
        truth=[PATHS.synth_truth] if PLAN.synthetic else [],
    output:
        html=report(PATHS.report, caption="../report/study_report.rst", category="Report"),
        design=report(PATHS.figure("design"), caption="../report/design.rst", category="Study design"),
        pca=report(PATHS.figure("harmonisation_pca"), caption="../report/pca.rst", category="Harmonisation"),
        figures=[
            report(PATHS.figure(f"{kind}_{ep}"), caption=f"../report/{kind}.rst", category="Validation",
                   subcategory=ep, labels={"endpoint": ep, "figure": kind})
            for ep in ENDPOINTS
            for kind in ("forest", "roc", "calibration", "decision")
        ]
        + [
            report(PATHS.figure(f"nomogram_{ep}"), caption="../report/nomogram.rst", category="Models",
                   labels={"endpoint": ep, "figure": "nomogram"})
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
