# Preprocess: crop, resample and clip (CT) or N4 + normalise (MR) each case of a shard, and register further MR
# sequences (cohort.sequences) to the reference. MR Nyul standardisation is learned on the training centre(s) only.


rule nyul_fit:
    input:
        FILES.shard_tables("ingest", PLAN.train),
    output:
        PATHS.nyul_standard,
    params:
        root=FILES.root,
        code=code_hash("preprocess"),
        opts=options(CFG, "preprocess"),
    log:
        PATHS.log("nyul_fit"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli nyul-fit --shards {input:q} --options {params.opts:q} --root {params.root:q} > {log:q} 2>&1"


rule preprocess:
    input:
        shard=PATHS.shard_table("ingest", "{shard}"),
        standard=[FILES.artefacts.nyul_standard] if PLAN.nyul else [],  # a site run: the kit's landmarks
    output:
        PATHS.shard_table("preprocess", "{shard}"),
    params:
        root=FILES.root,
        seed=SEED,
        sequences=SEQUENCES,
        strict=STRICT,
        code=code_hash("preprocess"),
        opts=options(CFG, "preprocess"),
        standard=lambda w, input: f"--standard {shlex.quote(str(input.standard))}" if input.standard else "",
    group:
        "cases"
    log:
        PATHS.log("preprocess/{shard}"),
    benchmark:
        PATHS.benchmark("preprocess", "{shard}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli preprocess --shard {input.shard:q} --options {params.opts:q} --sequences={params.sequences:q}"
        " --seed {params.seed} --root {params.root:q} {params.strict} {params.standard} --out {output:q} > {log:q} 2>&1"


rule qc_preprocess:
    input:
        FILES.shard_tables("preprocess"),
    output:
        PATHS.qc_preprocess,
    params:
        code=code_hash("study"),
    log:
        PATHS.log("qc_preprocess"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli concat --inputs {input:q} --out {output:q} > {log:q} 2>&1"
