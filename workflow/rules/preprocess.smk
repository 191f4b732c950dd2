# Preprocess: crop, resample and clip each case of a shard; see workflow/mcrad/preprocess.py.


rule preprocess:
    input:
        PATHS.shard_table("ingest", "{shard}"),
    output:
        PATHS.shard_table("preprocess", "{shard}"),
    params:
        code=code_hash("preprocess", "cases"),
        opts=options(CFG, "preprocess"),
        root=ROOT,
    group:
        "cases"
    log:
        PATHS.log("preprocess/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "preprocess" / "{shard}.tsv"
    shell:
        "{MCRAD} preprocess --shard {input:q} --options {params.opts:q} --root {params.root:q} {STRICT}"
        " --out {output:q} > {log:q} 2>&1"
