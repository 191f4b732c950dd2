# Prospective (stage 3): held-back centres scored by the locked bundles without labels, evaluated once they arrive.


rule predict_prospective:
    input:
        bundles=lambda w: [PATHS.bundle(w.endpoint, m) / "manifest.json" for m in models_of(w.endpoint)],
        features=[PATHS.harmonised_external(c) for c in PLAN.prospective],
        deep=lambda w: deep_of(w.endpoint, PLAN.prospective),
        # label-free tables (clinical predictors only): an outcome edit reruns evaluate, never predict
        cohort=[PATHS.predictors_table(c) for c in PLAN.prospective],
    output:
        PATHS.prospective_predictions("{endpoint}"),
    params:
        code=code_hash("prospective", "validate", "model"),
        bundles=lambda w: [PATHS.bundle(w.endpoint, m) for m in models_of(w.endpoint)],
    log:
        PATHS.log("predict_prospective/{endpoint}"),
    shell:
        "{MCRAD} predict --bundle {params.bundles:q} --features {input.features:q} --deep {input.deep:q}"
        " --cohort {input.cohort:q}"
        " --out {output:q} > {log:q} 2>&1"


rule evaluate_prospective:
    input:
        predictions=PATHS.prospective_predictions("{endpoint}"),
        cohort=[PATHS.cohort_table(c) for c in PLAN.prospective],
    output:
        metrics=PATHS.prospective_metrics("{endpoint}"),
        paired=PATHS.prospective_paired("{endpoint}"),
    params:
        code=code_hash("prospective", "validate", "model"),
        cfg=options(CFG, "endpoints", "validate"),
    log:
        PATHS.log("evaluate_prospective/{endpoint}"),
    shell:
        "{MCRAD} evaluate --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --predictions {input.predictions:q}"
        " --cohort {input.cohort:q} --out {output.metrics:q} --paired {output.paired:q} > {log:q} 2>&1"
