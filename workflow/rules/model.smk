# Model (stage 1): trained and locked on the training centre(s). Its inputs cannot include external data.
from mcrad.model import MODELS


rule train:
    input:
        features=PATHS.harmonised_train,
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        bundles=[PATHS.bundle("{endpoint}", m) / f for m in MODELS for f in ("model.pkl", "meta.json", "manifest.json")],
        internal=PATHS.internal_predictions("{endpoint}"),
    params:
        code=code_hash("model"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "model"),
        out=lambda w: PATHS.root / "models" / w.endpoint,
    log:
        PATHS.log("train/{endpoint}"),
    benchmark:
        PATHS.root / "benchmarks" / "train" / "{endpoint}.tsv"
    shell:
        "{MCRAD} train --config {params.cfg:q} --endpoint {wildcards.endpoint:q} --features {input.features:q}"
        " --cohort {input.cohort:q} --out-dir {params.out:q} --internal {output.internal:q} > {log:q} 2>&1"
