# Deep (MONAI): CV deep scores and embeddings on the training centre(s), the final network scores the others.
# Writes deep/<endpoint>/features_<centre>.tsv for the model stage; see workflow/mcrad/deep.py.


rule deep_train:
    input:
        shards=FILES.shard_tables("segment", PLAN.train),
        cohort=[PATHS.cohort_table(c) for c in PLAN.train],
    output:
        features=[PATHS.deep_features("{endpoint}", c) for c in PLAN.train],
        gradcam=[directory(PATHS.deep_gradcam("{endpoint}", c)) for c in PLAN.train],
        network=PATHS.deep_network("{endpoint}"),
        meta=PATHS.deep_network_meta("{endpoint}"),
        curves=PATHS.deep_curves("{endpoint}"),
    params:
        root=FILES.root,
        seed=SEED,
        code=code_hash("deep"),
        opts=options(CFG, "deep"),
        preprocess=options(CFG, "preprocess"),
        column=lambda w: PLAN.endpoint(w.endpoint).column,
        centres=PLAN.train,
    threads: CFG["deep"]["threads"]
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("deep_train/{endpoint}"),
    benchmark:
        PATHS.benchmark("deep_train", "{endpoint}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli deep-train --options {params.opts:q} --preprocess {params.preprocess:q} --seed {params.seed}"
        " --threads {threads} --endpoint {wildcards.endpoint:q} --column {params.column:q}"
        " --shards {input.shards:q} --cohort {input.cohort:q} --centres {params.centres:q} --root {params.root:q}"
        " > {log:q} 2>&1"


rule deep_score:
    input:
        shards=lambda w: FILES.shard_tables("segment", [w.centre]),
        network=PATHS.deep_network("{endpoint}"),
        meta=PATHS.deep_network_meta("{endpoint}"),
    output:
        features=PATHS.deep_features("{endpoint}", "{centre}"),
        gradcam=directory(PATHS.deep_gradcam("{endpoint}", "{centre}")),
    wildcard_constraints:
        centre=alternatives([c for c in PLAN.centres if c not in PLAN.train]),
    params:
        root=FILES.root,
        seed=SEED,
        code=code_hash("deep"),
        opts=options(CFG, "deep"),
    threads: 1  # inference on a few dozen crops: one thread, so the centres score side by side
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("deep_score/{endpoint}/{centre}"),
    benchmark:
        PATHS.benchmark("deep_score", "{endpoint}.{centre}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli deep-score --options {params.opts:q} --seed {params.seed} --threads {threads}"
        " --endpoint {wildcards.endpoint:q} --centre {wildcards.centre:q} --shards {input.shards:q}"
        " --root {params.root:q} > {log:q} 2>&1"
