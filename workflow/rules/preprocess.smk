# Preprocess: crop, resample and clip (CT) or N4 + normalise (MR) each case of a shard, and register further MR
# sequences (cohort.sequences) to the reference; see workflow/mcrad/preprocess.py. MR Nyul standardisation is learned on the training centre(s) only (like ComBat).


rule nyul_fit:
    input:
        [PATHS.shard_table("ingest", s) for c in PLAN.train for s in PLAN.shards_of(c)],
    output:
        PATHS.nyul_standard,
    params:
        code=code_hash("preprocess", "cases"),
        opts=options(CFG, "preprocess"),
        root=ROOT,
    log:
        PATHS.log("nyul_fit"),
    shell:
        "{MCRAD} nyul-fit --shards {input:q} --options {params.opts:q} --root {params.root:q} --out {output:q}"
        " > {log:q} 2>&1"


rule preprocess:
    input:
        shard=PATHS.shard_table("ingest", "{shard}"),
        standard=[PATHS.nyul_standard] if NYUL else [],
    output:
        PATHS.shard_table("preprocess", "{shard}"),
    params:
        code=code_hash("preprocess", "cases"),
        opts=options(CFG, "preprocess"),
        sequences=",".join(CFG["cohort"]["sequences"]),
        seed=CFG["study"]["seed"],
        root=ROOT,
    group:
        "cases"
    log:
        PATHS.log("preprocess/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "preprocess" / "{shard}.tsv"
    shell:
        "{MCRAD} preprocess --shard {input.shard:q} --options {params.opts:q} --sequences={params.sequences:q}"
        " --seed {params.seed} --root {params.root:q} {STRICT}"
        " --out {output:q} > {log:q} 2>&1"


rule qc_preprocess:
    input:
        [PATHS.shard_table("preprocess", s) for s in PLAN.shards],
    output:
        PATHS.qc_preprocess,
    params:
        code=code_hash(),
    log:
        PATHS.log("qc_preprocess"),
    shell:
        "{MCRAD} concat --inputs {input:q} --out {output:q} > {log:q} 2>&1"
