# Segment: tumour and peritumoral ROIs for each case of a shard; and, with deep.autoseg, a MONAI UNet that learns
# the training centre's provided masks and predicts a mask for every case (Dice per centre in the report).


rule segment:
    input:
        PATHS.shard_table("preprocess", "{shard}"),
    output:
        PATHS.shard_table("segment", "{shard}"),
    params:
        root=FILES.root,
        strict=STRICT,
        code=code_hash("segment"),
        opts=options(CFG, "segment"),
    group:
        "cases"
    log:
        PATHS.log("segment/{shard}"),
    benchmark:
        PATHS.benchmark("segment", "{shard}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli segment --shard {input:q} --options {params.opts:q} --root {params.root:q} {params.strict}"
        " --out {output:q} > {log:q} 2>&1"


rule autoseg_train:
    input:
        FILES.shard_tables("preprocess", PLAN.train),
    output:
        unet=PATHS.autoseg_network,
        meta=PATHS.autoseg_network_meta,
    params:
        root=FILES.root,
        seed=SEED,
        code=code_hash("autoseg"),
        opts=options(CFG, "deep"),
    threads: CFG["deep"]["threads"]
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("autoseg_train"),
    benchmark:
        PATHS.benchmark("autoseg_train")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli autoseg-train --options {params.opts:q} --seed {params.seed} --shards {input:q} --root {params.root:q}"
        " > {log:q} 2>&1"


rule autoseg_predict:
    input:
        shards=lambda w: FILES.shard_tables("preprocess", [w.centre]),
        unet=PATHS.autoseg_network,
        meta=PATHS.autoseg_network_meta,
    output:
        PATHS.autoseg_centre("{centre}"),
    params:
        root=FILES.root,
        seed=SEED,
        code=code_hash("autoseg"),
        segment=options(CFG, "segment"),
    threads: CFG["deep"]["threads"]
    resources:
        **DEEP_RESOURCES,
    log:
        PATHS.log("autoseg_predict/{centre}"),
    benchmark:
        PATHS.benchmark("autoseg_predict", "{centre}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli autoseg-predict --seed {params.seed} --shards {input.shards:q} --segment-options {params.segment:q}"
        " --root {params.root:q} --out {output:q} > {log:q} 2>&1"


rule autoseg_dice:
    input:
        [PATHS.autoseg_centre(c) for c in PLAN.centres],
    output:
        PATHS.autoseg_dice,
    params:
        code=code_hash("autoseg"),
        train=PLAN.train,
        use="--use-for-features" if PLAN.autoseg_features else "",
    log:
        PATHS.log("autoseg_dice"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli autoseg-summary --inputs {input:q} --train {params.train:q} {params.use} --out {output:q}"
        " > {log:q} 2>&1"
