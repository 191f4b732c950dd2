# Model (stage 1): trained and locked on the training centre(s). Its inputs cannot include external data.
from mcrad.model import FUSION_MODELS, MODELS, model_names

ENDPOINT_CFG = {ep["name"]: ep for ep in CFG["endpoints"]}
DEEP_ACTIVE = CFG["deep"]["activate"]


def models_of(endpoint):
    """The endpoint's model registry: clinical, radiomics, nomogram, plus deep and fusion models when active."""
    return list(model_names(ENDPOINT_CFG[endpoint], DEEP_ACTIVE))


def fused(endpoint):
    return any(m in FUSION_MODELS for m in models_of(endpoint))


def internal_of(endpoint):
    return [PATHS.internal_predictions(endpoint)] + (
        [PATHS.internal_predictions_fusion(endpoint)] if fused(endpoint) else []
    )


def deep_of(endpoint, centres):
    return [PATHS.deep_features(endpoint, c) for c in centres] if fused(endpoint) else []


rule train:
    input:
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
        robustness=[PATHS.robustness] if CFG["features"]["robustness"]["activate"] else [],
    output:
        bundles=[PATHS.bundle("{endpoint}", m) / f for m in MODELS for f in ("model.pkl", "meta.json", "manifest.json")],
        internal=PATHS.internal_predictions("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "model"),
        out=lambda w: PATHS.root / "models" / w.endpoint,
        robust=lambda w, input: f"--robustness {shlex.quote(str(input.robustness))}" if input.robustness else "",
    log:
        PATHS.log("train/{endpoint}"),
    benchmark:
        PATHS.root / "benchmarks" / "train" / "{endpoint}.tsv"
    shell:
        "{MCRAD} train --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --features {input.features:q}"
        " --cohort {input.cohort:q} --out-dir {params.out:q} --internal {output.internal:q} {params.robust}"
        " > {log:q} 2>&1"


rule train_fusion:
    input:
        features=PATHS.harmonised_train,
        deep=[PATHS.deep_features("{endpoint}", c) for c in PLAN.train],
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
        radiomics=PATHS.bundle("{endpoint}", "radiomics") / "manifest.json",
    output:
        bundles=[PATHS.bundle("{endpoint}", m) / f for m in FUSION_MODELS for f in ("model.pkl", "meta.json", "manifest.json")],
        internal=PATHS.internal_predictions_fusion("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "design", "endpoints", "model"),
        out=lambda w: PATHS.root / "models" / w.endpoint,
        radiomics=lambda w: PATHS.bundle(w.endpoint, "radiomics"),
    log:
        PATHS.log("train_fusion/{endpoint}"),
    shell:
        "{MCRAD} train-fusion --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --features {input.features:q}"
        " --deep {input.deep:q} --cohort {input.cohort:q} --radiomics-bundle {params.radiomics:q}"
        " --out-dir {params.out:q} --internal {output.internal:q} > {log:q} 2>&1"


rule explain:
    input:
        bundles=[PATHS.bundle("{endpoint}", m) / "manifest.json" for m in MODELS],
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        shap=PATHS.shap("{endpoint}"),
        summary=PATHS.shap_summary("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "endpoints"),
        models=lambda w: PATHS.root / "models" / w.endpoint,
    log:
        PATHS.log("explain/{endpoint}"),
    shell:
        "{MCRAD} explain --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --models-dir {params.models:q}"
        " --features {input.features:q} --cohort {input.cohort:q} --out {output.shap:q}"
        " --summary {output.summary:q} > {log:q} 2>&1"
