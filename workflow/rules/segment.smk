# Segment: tumour and peritumoral ROIs for each case of a shard; see workflow/mcrad/segment.py.


rule segment:
    input:
        PATHS.shard_table("preprocess", "{shard}"),
    output:
        PATHS.shard_table("segment", "{shard}"),
    params:
        code=code_hash("segment", "cases"),
        opts=options(CFG, "segment"),
        root=ROOT,
    group:
        "cases"
    log:
        PATHS.log("segment/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "segment" / "{shard}.tsv"
    shell:
        "{MCRAD} segment --shard {input:q} --options {params.opts:q} --root {params.root:q} {STRICT}"
        " --out {output:q} > {log:q} 2>&1"
