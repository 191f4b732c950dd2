# Validate (stage 2): the locked bundles score every external centre; metrics per centre and pooled, paired
# tests, curve tables for the report, and with harmonise.compare the same metrics without ComBat.


rule validate:
    input:
        bundles=lambda w: FILES.bundle_manifests(w.endpoint),
        internal=lambda w: FILES.internal_of(w.endpoint),
        features=[PATHS.harmonised_external(c) for c in PLAN.external],
        deep=lambda w: FILES.deep_of(w.endpoint, PLAN.external),
        cohort=[PATHS.cohort_table(c) for c in PLAN.external],
        raw=[PATHS.raw_features(c) for c in PLAN.external] if FILES.compare else [],
    output:
        metrics=report(PATHS.metrics("{endpoint}"), caption="../report/metrics.rst", category="Validation",
                       subcategory="{endpoint}"),
        predictions=PATHS.predictions("{endpoint}"),
        paired=PATHS.paired("{endpoint}"),
        curves=directory(PATHS.curves_dir("{endpoint}")),
        comparison=[PATHS.comparison("{endpoint}")] if FILES.compare else [],
    params:
        root=FILES.root,
        code=code_hash("validate"),
        cfg=options(CFG, "study", "endpoints", "validate"),
        models_dir=lambda w: FILES.artefacts.models_dir(w.endpoint),
        names=lambda w: PLAN.models_of(w.endpoint),
    log:
        PATHS.log("validate/{endpoint}"),
    benchmark:
        PATHS.benchmark("validate", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli validate --config {params.cfg:q} --endpoint {wildcards.endpoint:q}"
        " --models-dir {params.models_dir:q} --models {params.names:q} --internal {input.internal:q}"
        " --features {input.features:q} --cohort {input.cohort:q} --deep {input.deep:q} --raw-features {input.raw:q}"
        " --root {params.root:q} > {log:q} 2>&1"


rule volume_check:
    input:
        raw=[PATHS.raw_features(c) for c in PLAN.train + PLAN.external],
        train=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train + PLAN.external],
        radiomics=lambda w: PATHS.bundle_files(w.endpoint, "radiomics"),
    output:
        metrics=PATHS.volume_confounding("{endpoint}"),
        correlation=PATHS.volume_correlation("{endpoint}"),
    params:
        code=code_hash("guardrails"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "model", "validate", "guardrails"),
        bundle=lambda w: PATHS.bundle(w.endpoint, "radiomics"),
    log:
        PATHS.log("volume_check/{endpoint}"),
    benchmark:
        PATHS.benchmark("volume_check", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli volume-check --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --raw {input.raw:q}"
        " --train-features {input.train:q} --cohort {input.cohort:q} --radiomics-bundle {params.bundle:q}"
        " --metrics {output.metrics:q} --correlation {output.correlation:q} > {log:q} 2>&1"
