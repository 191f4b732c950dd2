# Prospective (stage 3): held-back centres scored by the locked bundles without labels, evaluated once they arrive.


rule predict_prospective:
    input:
        bundles=lambda w: FILES.bundle_manifests(w.endpoint),
        features=[PATHS.harmonised_external(c) for c in PLAN.prospective],
        deep=lambda w: FILES.deep_of(w.endpoint, PLAN.prospective),
        # label-free tables (clinical predictors only): an outcome edit reruns evaluate, never predict
        predictors=[PATHS.predictors_table(c) for c in PLAN.prospective],
    output:
        PATHS.prospective_predictions("{endpoint}"),
    params:
        code=code_hash("prospective"),
        bundles=lambda w: [FILES.artefacts.bundle(w.endpoint, m) for m in PLAN.models_of(w.endpoint)],
    log:
        PATHS.log("predict_prospective/{endpoint}"),
    benchmark:
        PATHS.benchmark("predict_prospective", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli predict --bundle {params.bundles:q} --features {input.features:q} --deep {input.deep:q}"
        " --cohort {input.predictors:q} --out {output:q} > {log:q} 2>&1"


rule evaluate_prospective:
    input:
        predictions=PATHS.prospective_predictions("{endpoint}"),
        cohort=[PATHS.cohort_table(c) for c in PLAN.prospective],
    output:
        metrics=PATHS.prospective_metrics("{endpoint}"),
        paired=PATHS.prospective_paired("{endpoint}"),
    params:
        code=code_hash("prospective"),
        cfg=options(CFG, "endpoints", "validate"),
    log:
        PATHS.log("evaluate_prospective/{endpoint}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli evaluate --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --predictions {input.predictions:q}"
        " --cohort {input.cohort:q} --out {output.metrics:q} --paired {output.paired:q} > {log:q} 2>&1"
