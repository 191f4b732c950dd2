# Harmonise: ComBat fitted on the training centre(s) only; each external centre mapped onto that reference.


rule harmonise_fit:
    input:
        features=[PATHS.raw_features(c) for c in PLAN.train],
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        model=PATHS.harmoniser,
        features=PATHS.harmonised_train,
        excluded=PATHS.excluded_features,
    params:
        code=code_hash("harmonise"),
        cfg=options(CFG, "cohort", "design", "harmonise"),
    log:
        PATHS.log("harmonise_fit"),
    shell:
        "{MCRAD} harmonise-fit --features {input.features:q} --cohort {input.cohort:q} --config {params.cfg:q}"
        " --model {output.model:q} --out {output.features:q} --excluded {output.excluded:q} > {log:q} 2>&1"


rule harmonise_apply:
    input:
        model=PATHS.harmoniser,
        features=PATHS.raw_features("{centre}"),
        cohort=PATHS.predictors_table("{centre}"),  # covariates only: an outcome edit does not rerun it
    output:
        PATHS.harmonised_external("{centre}"),
    params:
        code=code_hash("harmonise"),
    log:
        PATHS.log("harmonise_apply/{centre}"),
    shell:
        "{MCRAD} harmonise-apply --model {input.model:q} --features {input.features:q} --cohort {input.cohort:q}"
        " --out {output:q}"
        " > {log:q} 2>&1"


rule harmonise_study:
    input:
        [PATHS.harmonised_train]
        + [PATHS.harmonised_external(c) for c in PLAN.external],
    output:
        PATHS.harmonised_features,
    params:
        code=code_hash(),
    log:
        PATHS.log("harmonise_study"),
    shell:
        "{MCRAD} concat --inputs {input:q} --out {output:q} > {log:q} 2>&1"


rule harmonise_diagnostics:
    input:
        raw=PATHS.raw_features(),
        harmonised=PATHS.harmonised_features,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        summary=PATHS.harmonise_file("diagnostics.json"),
        kruskal=PATHS.harmonise_file("kruskal_wallis.tsv"),
        pca=PATHS.harmonise_file("pca.tsv"),
    params:
        code=code_hash("harmonise"),
        cfg=options(CFG, "study", "design", "endpoints"),
    log:
        PATHS.log("harmonise_diagnostics"),
    shell:
        "{MCRAD} harmonise-diagnostics --config {params.cfg:q} --raw {input.raw:q} --harmonised {input.harmonised:q}"
        " --cohort {input.cohort:q} --summary {output.summary:q} --kruskal {output.kruskal:q} --pca {output.pca:q}"
        " > {log:q} 2>&1"
