# Ingest: per-centre clinical tables, and per shard: read, check and canonicalise images and masks.


rule cohort_tables:
    input:
        PLAN.sheet,
    output:
        tables=[PATHS.cohort_table(c) for c in PLAN.centres],
        predictors=[PATHS.predictors_table(c) for c in PLAN.centres],
    params:
        code=code_hash("study"),
        cfg=options(CFG, "cohort", "design", "endpoints"),
        centres=PLAN.centres,
    log:
        PATHS.log("cohort_tables"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli cohort-tables --sheet {input:q} --config {params.cfg:q} --centres {params.centres:q}"
        " --out {output.tables:q} --predictors {output.predictors:q} > {log:q} 2>&1"


rule ingest:
    input:
        sheet=PLAN.sheet,
        files=lambda w: [f for p in PLAN.shards[w.shard] for f in PLAN.case_files.get(p, [])],
    output:
        PATHS.shard_table("ingest", "{shard}"),
    params:
        root=FILES.root,
        strict=STRICT,
        code=code_hash("ingest"),
        patients=lambda w: ",".join(PLAN.shards[w.shard]),
        cfg=options(CFG, "cohort", "design", "endpoints", "ingest"),
    group:
        # MR Nyul standardisation: preprocess waits for a fit over every training case's ingest
        "ingest" if PLAN.nyul else "cases"
    log:
        PATHS.log("ingest/{shard}"),
    benchmark:
        PATHS.benchmark("ingest", "{shard}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli ingest --sheet {input.sheet:q} --config {params.cfg:q} --patients {params.patients:q}"
        " --root {params.root:q} {params.strict} --out {output:q} > {log:q} 2>&1"


rule qc_ingest:
    input:
        FILES.shard_tables("ingest"),
    output:
        PATHS.qc_ingest,
    params:
        code=code_hash("ingest"),
    log:
        PATHS.log("qc_ingest"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli qc-ingest --shards {input:q} --out {output:q} > {log:q} 2>&1"


rule qc_pictures:
    input:
        PATHS.qc_ingest,
    output:
        directory(PATHS.qc_pictures),
    params:
        root=FILES.root,
        code=code_hash("ingest"),
    log:
        PATHS.log("qc_pictures"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli qc-pictures --qc {input:q} --root {params.root:q} > {log:q} 2>&1"
