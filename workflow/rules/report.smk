# Report: one self-contained HTML page for the study. It reads exactly the inputs declared here (mcrad.report).
from mcrad.model.registry import MODELS

rule report:
    input:
        metrics=[PATHS.metrics(ep) for ep in ENDPOINTS],
        paired=[PATHS.paired(ep) for ep in ENDPOINTS],
        curves=[PATHS.curves_dir(ep) for ep in ENDPOINTS],
        comparison=[PATHS.comparison(ep) for ep in ENDPOINTS] if FILES.compare else [],
        shap=[f(ep) for ep in ENDPOINTS for f in (PATHS.shap, PATHS.shap_summary)],
        bundles=[f for ep in ENDPOINTS for m in MODELS for f in PATHS.bundle_files(ep, m)],
        prospective=[PATHS.prospective_metrics(ep) for ep in ENDPOINTS] if PLAN.prospective else [],
        qc=[PATHS.qc_ingest, PATHS.qc_preprocess, PATHS.qc_quarantine, PATHS.qc_pictures, PATHS.feature_flags()],
        harmonise=[PATHS.excluded_features, PATHS.harmonise_diagnostics, PATHS.harmonise_pca,
                   PATHS.harmonise_outcome_check],
        robustness=[PATHS.robustness] if CFG["features"]["robustness"]["activate"] else [],
        guardrails=FILES.guardrail_outputs,
        nulls=FILES.y_randomisation_outputs,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train + PLAN.external],
        truth=[PATHS.synth_truth] if PLAN.synthetic else [],
        deep=FILES.deep_outputs + FILES.autoseg_outputs,
        controls=FILES.negative_controls,
        params=CFG["features"]["params"],
        sheet=PLAN.sheet,
        benchmarks=FILES.benchmark_files(),
        sites=FILES.site_files,  # centres run from the site kit, once `mcrad kit collect` has merged them
    output:
        html=report(PATHS.report, caption="../report/study_report.rst", category="Report"),
        design=report(PATHS.figure("design"), caption="../report/design.rst", category="Study design"),
        pca=report(PATHS.figure("harmonisation_pca"), caption="../report/pca.rst", category="Harmonisation"),
        figures=[report(f.pop("path"), **f) for f in FILES.report_figures()],
    params:
        root=FILES.root,
        code=code_hash("report"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "preprocess", "segment", "features",
                    "harmonise", "model", "validate", "guardrails", "negative_controls"),
        figures=PATHS.figures_dir,
    log:
        PATHS.log("report"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli report --config {params.cfg:q} --root {params.root:q} --inputs {input:q} --sheet {input.sheet:q}"
        " --out {output.html:q} --figures {params.figures:q} > {log:q} 2>&1"
