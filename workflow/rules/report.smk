# Report: one self-contained HTML page for the study.


rule report:
    input:
        metrics=expand(PATHS.metrics("{endpoint}"), endpoint=ENDPOINTS),
        predictions=expand(PATHS.predictions("{endpoint}"), endpoint=ENDPOINTS),
        qc=PATHS.qc_ingest,
        quarantine=PATHS.qc_quarantine,
        harmonised=PATHS.harmonised_features,
        diagnostics=[PATHS.harmonise_file(f) for f in ("diagnostics.json", "kruskal_wallis.tsv", "pca.tsv")],
        cohort=[PATHS.cohort_table(c) for c in PLAN.centres],
        truth=[PATHS.synth_truth] if PLAN.synthetic else [],
    output:
        PATHS.report,
    params:
        code=code_hash("report", "model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "preprocess", "segment", "features",
                    "harmonise", "model", "validate"),
        root=ROOT,
    log:
        PATHS.log("report"),
    shell:
        "{MCRAD} report --config {params.cfg:q} --root {params.root:q} --out {output:q} > {log:q} 2>&1"
