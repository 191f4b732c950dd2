# Deep (MONAI): CV deep scores and embeddings on the training centre(s), the final network scores the others.
# Writes deep/<endpoint>/features_<centre>.tsv for the model stage; see workflow/mcrad/deep.py.
DEEP = CFG["deep"]
# the deep score is the probability of a binary endpoint; centres other than the training ones are scored
DEEP_ENDPOINTS = [ep["name"] for ep in CFG["endpoints"] if ep["type"] == "binary"]
DEEP_SCORED = [c for c in PLAN.centres if c not in PLAN.train]
DEEP_RESOURCES = {"mem_mb": DEEP["mem_mb"], "gpu": 0 if DEEP["device"] == "cpu" else 1}


def _deep_gradcam(endpoint, centre):
    return PATHS.deep_dir(endpoint) / "gradcam" / centre


DEEP_OUTPUTS = (
    [PATHS.deep_features(ep, c) for ep in DEEP_ENDPOINTS for c in PLAN.centres]
    + [PATHS.deep_dir(ep) / "curves.tsv" for ep in DEEP_ENDPOINTS]
    if DEEP["activate"]
    else []
)


rule deep_train:
    input:
        shards=[PATHS.shard_table("segment", s) for c in PLAN.train for s in PLAN.shards_of(c)],
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        features=[PATHS.deep_features("{endpoint}", c) for c in PLAN.train],
        gradcam=[directory(_deep_gradcam("{endpoint}", c)) for c in PLAN.train],
        network=PATHS.deep_dir("{endpoint}") / "network.pt",
        meta=PATHS.deep_dir("{endpoint}") / "network.json",
        curves=PATHS.deep_dir("{endpoint}") / "curves.tsv",
    params:
        code=code_hash("deep"),
        opts=options(CFG, "deep"),
        preprocess=options(CFG, "preprocess"),
        seed=CFG["study"]["seed"],
        column=lambda w: next(ep["column"] for ep in CFG["endpoints"] if ep["name"] == w.endpoint),
        centres=PLAN.train,
        root=ROOT,
        out_dir=lambda w: PATHS.deep_dir(w.endpoint),
    threads: DEEP["threads"]
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("deep_train/{endpoint}"),
    benchmark:
        PATHS.root / "benchmarks" / "deep_train" / "{endpoint}.tsv"
    shell:
        "{MCRAD} deep-train --options {params.opts:q} --preprocess {params.preprocess:q} --seed {params.seed}"
        " --threads {threads}"
        " --column {params.column:q} --shards {input.shards:q} --cohort {input.cohort:q} --root {params.root:q}"
        " --centres {params.centres:q} --out {output.features:q} --gradcam {output.gradcam:q}"
        " --out-dir {params.out_dir:q} --curves {output.curves:q} > {log:q} 2>&1"


rule deep_score:
    input:
        shards=lambda w: [PATHS.shard_table("segment", s) for s in PLAN.shards_of(w.centre)],
        network=PATHS.deep_dir("{endpoint}") / "network.pt",
        meta=PATHS.deep_dir("{endpoint}") / "network.json",
    output:
        features=PATHS.deep_features("{endpoint}", "{centre}"),
        gradcam=directory(_deep_gradcam("{endpoint}", "{centre}")),
    wildcard_constraints:
        centre=_alternatives(DEEP_SCORED),
    params:
        code=code_hash("deep"),
        opts=options(CFG, "deep"),
        seed=CFG["study"]["seed"],
        root=ROOT,
        model_dir=lambda w: PATHS.deep_dir(w.endpoint),
    threads: 1  # inference on a few dozen crops: one thread, so the centres score side by side
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("deep_score/{endpoint}/{centre}"),
    shell:
        "{MCRAD} deep-score --options {params.opts:q} --model-dir {params.model_dir:q} --seed {params.seed}"
        " --threads {threads}"
        " --shards {input.shards:q} --root {params.root:q} --out {output.features:q}"
        " --gradcam {output.gradcam:q} > {log:q} 2>&1"
