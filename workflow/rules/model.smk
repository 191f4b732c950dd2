# Model (stage 1): trained and locked on the training centre(s). Its inputs cannot include external data.
from mcrad.model.registry import FUSION_MODELS, MODELS


rule train:
    input:
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
        robustness=[PATHS.robustness] if CFG["features"]["robustness"]["activate"] else [],
    output:
        bundles=[f for m in MODELS for f in PATHS.bundle_files("{endpoint}", m)],
        internal=PATHS.internal_predictions("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "model"),
        out=lambda w: PATHS.models_dir(w.endpoint),
        robust=lambda w, input: f"--robustness {shlex.quote(str(input.robustness))}" if input.robustness else "",
    log:
        PATHS.log("train/{endpoint}"),
    benchmark:
        PATHS.benchmark("train", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli train --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --features {input.features:q}"
        " --cohort {input.cohort:q} --out-dir {params.out:q} --internal {output.internal:q} {params.robust}"
        " > {log:q} 2>&1"


rule train_fusion:
    input:
        features=PATHS.harmonised_train,
        deep=[PATHS.deep_features("{endpoint}", c) for c in PLAN.train],
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
        radiomics=PATHS.bundle_manifest("{endpoint}", "radiomics"),
    output:
        bundles=[f for m in FUSION_MODELS for f in PATHS.bundle_files("{endpoint}", m)],
        internal=PATHS.internal_predictions_fusion("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "design", "endpoints", "model"),
        out=lambda w: PATHS.models_dir(w.endpoint),
        radiomics=lambda w: PATHS.bundle(w.endpoint, "radiomics"),
    log:
        PATHS.log("train_fusion/{endpoint}"),
    benchmark:
        PATHS.benchmark("train_fusion", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli train-fusion --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --features {input.features:q}"
        " --deep {input.deep:q} --cohort {input.cohort:q} --radiomics-bundle {params.radiomics:q}"
        " --out-dir {params.out:q} --internal {output.internal:q} > {log:q} 2>&1"


rule explain:
    input:
        bundles=[PATHS.bundle_manifest("{endpoint}", m) for m in MODELS],
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        shap=PATHS.shap("{endpoint}"),
        summary=PATHS.shap_summary("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "endpoints"),
        models=lambda w: PATHS.models_dir(w.endpoint),
    log:
        PATHS.log("explain/{endpoint}"),
    benchmark:
        PATHS.benchmark("explain", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli explain --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --models-dir {params.models:q}"
        " --features {input.features:q} --cohort {input.cohort:q} --out {output.shap:q}"
        " --summary {output.summary:q} > {log:q} 2>&1"


rule sample_size:
    input:
        bundles=lambda w: [f for m in PLAN.models_of(w.endpoint) for f in PATHS.bundle_files(w.endpoint, m)],
        internal=lambda w: FILES.internal_of(w.endpoint),  # training centre(s) only
    output:
        PATHS.sample_size("{endpoint}"),
    params:
        code=code_hash("guardrails"),
        cfg=options(CFG, "endpoints", "guardrails"),
        models_dir=lambda w: PATHS.models_dir(w.endpoint),
        names=lambda w: PLAN.models_of(w.endpoint),
    log:
        PATHS.log("sample_size/{endpoint}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli model-sample-size --config {params.cfg:q} --endpoint {wildcards.endpoint:q}"
        " --models-dir {params.models_dir:q} --models {params.names:q} --internal {input.internal:q}"
        " --out {output:q} > {log:q} 2>&1"
# Y-randomisation (guardrails.y_randomisation): one job per endpoint and model (they parallelise on a cluster),
# each the model's whole stage-1 pipeline on shuffled training outcomes; then one summary per endpoint.
Y_RANDOMISATION = CFG["guardrails"]["y_randomisation"]


rule y_randomisation:
    input:
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
        robustness=[PATHS.robustness] if CFG["features"]["robustness"]["activate"] else [],
    output:
        PATHS.y_randomisation_model("{endpoint}", "{model}"),
    wildcard_constraints:
        model=alternatives(Y_RANDOMISATION["models"]),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "model", "guardrails"),
        robust=lambda w, input: f"--robustness {shlex.quote(str(input.robustness))}" if input.robustness else "",
    log:
        PATHS.log("y_randomisation/{endpoint}.{model}"),
    benchmark:
        PATHS.benchmark("y_randomisation", "{endpoint}.{model}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli y-randomise --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --model {wildcards.model:q}"
        " --features {input.features:q} --cohort {input.cohort:q} {params.robust} --out {output:q} > {log:q} 2>&1"


rule y_randomisation_summary:
    input:
        nulls=[PATHS.y_randomisation_model("{endpoint}", m) for m in Y_RANDOMISATION["models"]],
        internal=PATHS.internal_predictions("{endpoint}"),
    output:
        null=PATHS.y_randomisation("{endpoint}"),
        summary=PATHS.y_randomisation_summary("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "endpoints", "guardrails"),
    log:
        PATHS.log("y_randomisation_summary/{endpoint}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli y-randomisation-summary --config {params.cfg:q} --endpoint {wildcards.endpoint:q}"
        " --nulls {input.nulls:q} --internal {input.internal:q} --out {output.null:q} --summary {output.summary:q}"
        " > {log:q} 2>&1"
