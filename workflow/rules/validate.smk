# Validate (stage 2): the locked bundles score every external centre; metrics per centre and pooled.


rule validate:
    input:
        bundles=[PATHS.bundle("{endpoint}", m) / "manifest.json" for m in MODELS],
        internal=PATHS.internal_predictions("{endpoint}"),
        features=[PATHS.harmonised_external(c) for c in PLAN.external],
        cohort=[PATHS.cohort_table(c) for c in PLAN.external],
    output:
        metrics=PATHS.metrics("{endpoint}"),
        predictions=PATHS.predictions("{endpoint}"),
    params:
        cfg=options(CFG, "endpoints", "validate"),
        models=lambda w: PATHS.root / "models" / w.endpoint,
    log:
        PATHS.log("validate/{endpoint}"),
    shell:
        "{MCRAD} validate --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --models-dir {params.models:q}"
        " --internal {input.internal:q} --features {input.features:q} --cohort {input.cohort:q}"
        " --metrics {output.metrics:q} --predictions {output.predictions:q} > {log:q} 2>&1"
