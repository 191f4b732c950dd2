# Validate (stage 2): the locked bundles score every external centre; metrics per centre and pooled.
COMPARE = CFG["harmonise"]["activate"] and CFG["harmonise"]["compare"] and bool(PLAN.external)


rule validate:
    input:
        bundles=lambda w: [PATHS.bundle(w.endpoint, m) / "manifest.json" for m in models_of(w.endpoint)],
        internal=lambda w: internal_of(w.endpoint),
        features=[PATHS.harmonised_external(c) for c in PLAN.external],
        deep=lambda w: deep_of(w.endpoint, PLAN.external),
        cohort=[PATHS.cohort_table(c) for c in PLAN.external],
        raw=[PATHS.raw_features(c) for c in PLAN.external] if COMPARE else [],
    output:
        metrics=report(PATHS.metrics("{endpoint}"), caption="../report/metrics.rst", category="Validation",
                       subcategory="{endpoint}"),
        predictions=PATHS.predictions("{endpoint}"),
        paired=PATHS.paired("{endpoint}"),
        comparison=[PATHS.comparison("{endpoint}")] if COMPARE else [],
    params:
        code=code_hash("validate", "model"),
        cfg=options(CFG, "endpoints", "validate"),
        models=lambda w: PATHS.root / "models" / w.endpoint,
        names=lambda w: models_of(w.endpoint),
    log:
        PATHS.log("validate/{endpoint}"),
    shell:
        "{MCRAD} validate --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --models-dir {params.models:q}"
        " --models {params.names:q} --internal {input.internal:q} --features {input.features:q} --deep {input.deep:q}"
        " --cohort {input.cohort:q}"
        " --raw-features {input.raw:q} --comparison {output.comparison:q}"
        " --metrics {output.metrics:q} --predictions {output.predictions:q} --paired {output.paired:q} > {log:q} 2>&1"
