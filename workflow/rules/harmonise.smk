# Harmonise: ComBat fitted on the training centre(s) only; each external centre mapped onto that reference. These
# rules read label-free tables only (covariates from cohort/predictors); the outcome check has a rule of its own.


rule harmonise_fit:
    input:
        features=[PATHS.raw_features(c) for c in PLAN.train],
        predictors=[PATHS.predictors_table(c) for c in PLAN.train],
    output:
        model=PATHS.harmoniser,
        features=PATHS.harmonised_train,
        excluded=PATHS.excluded_features,
    params:
        code=code_hash("harmonise"),
        cfg=options(CFG, "cohort", "design", "harmonise"),
    log:
        PATHS.log("harmonise_fit"),
    benchmark:
        PATHS.benchmark("harmonise_fit")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli harmonise-fit --config {params.cfg:q} --features {input.features:q}"
        " --predictors {input.predictors:q} --model {output.model:q} --out {output.features:q}"
        " --excluded {output.excluded:q} > {log:q} 2>&1"


rule harmonise_apply:
    input:
        model=FILES.artefacts.harmoniser,  # a site run: the kit's training reference
        features=PATHS.raw_features("{centre}"),
        predictors=PATHS.predictors_table("{centre}"),
    output:
        PATHS.harmonised_external("{centre}"),
    params:
        code=code_hash("harmonise"),
    log:
        PATHS.log("harmonise_apply/{centre}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli harmonise-apply --model {input.model:q} --features {input.features:q}"
        " --predictors {input.predictors:q} --out {output:q} > {log:q} 2>&1"


rule harmonise_study:
    input:
        [PATHS.harmonised_train] + [PATHS.harmonised_external(c) for c in PLAN.external],
    output:
        PATHS.harmonised_features,
    params:
        code=code_hash("study"),
    log:
        PATHS.log("harmonise_study"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli concat --inputs {input:q} --out {output:q} > {log:q} 2>&1"


rule harmonise_diagnostics:
    input:
        raw=PATHS.raw_features(),
        harmonised=PATHS.harmonised_features,
        predictors=[PATHS.predictors_table(c) for c in PLAN.train + PLAN.external],
    output:
        summary=PATHS.harmonise_diagnostics,
        kruskal=PATHS.harmonise_kruskal,
        variance=PATHS.harmonise_centre_variance,
        pca=PATHS.harmonise_pca,
    params:
        code=code_hash("harmonise"),
        cfg=options(CFG, "study", "cohort", "design", "harmonise"),
    log:
        PATHS.log("harmonise_diagnostics"),
    benchmark:
        PATHS.benchmark("harmonise_diagnostics")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli harmonise-diagnostics --config {params.cfg:q} --raw {input.raw:q}"
        " --harmonised {input.harmonised:q} --predictors {input.predictors:q} --summary {output.summary:q}"
        " --kruskal {output.kruskal:q} --variance {output.variance:q} --pca {output.pca:q} > {log:q} 2>&1"


rule harmonise_outcome_check:
    input:
        raw=[PATHS.raw_features(c) for c in PLAN.train],
        harmonised=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],  # training labels only
    output:
        PATHS.harmonise_outcome_check,
    params:
        code=code_hash("harmonise"),
        cfg=options(CFG, "study", "design", "endpoints"),
    log:
        PATHS.log("harmonise_outcome_check"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli harmonise-outcome-check --config {params.cfg:q} --raw {input.raw:q}"
        " --harmonised {input.harmonised:q} --cohort {input.cohort:q} --out {output:q} > {log:q} 2>&1"
