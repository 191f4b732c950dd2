# Ingest: per-centre clinical tables, and per shard: read, check and canonicalise images and masks.
from mcrad.cohort import sequence_inputs

# MR Nyul standardisation (preprocess.smk): preprocess waits for a fit over all training cases' ingest, so ingest
# cannot share the per-shard job group with preprocess then.
NYUL = (CFG["preprocess"]["modality"], CFG["preprocess"]["mr_normalise"]) == ("MR", "nyul")
# multi-sequence MRI: the other sequences' files of each patient (sheet columns image_<SEQ>, mask_<SEQ>)
SEQUENCE_FILES = sequence_inputs(PLAN.sheet, CFG) if not PLAN.synthetic else {}


rule cohort_tables:
    input:
        PLAN.sheet,
    output:
        tables=[PATHS.cohort_table(c) for c in PLAN.centres],
        predictors=[PATHS.predictors_table(c) for c in PLAN.centres],
    params:
        code=code_hash("cohort"),
        cfg=options(CFG, "cohort", "design", "endpoints"),
        centres=PLAN.centres,
    log:
        PATHS.log("cohort_tables"),
    shell:
        "{MCRAD} cohort-tables --sheet {input:q} --config {params.cfg:q} --centres {params.centres:q}"
        " --out {output.tables:q} --predictors {output.predictors:q} > {log:q} 2>&1"


rule ingest:
    input:
        sheet=PLAN.sheet,
        files=lambda w: [f for p in PLAN.shards[w.shard]
                         for f in PLAN.case_files.get(p, []) + SEQUENCE_FILES.get(p, [])],
    output:
        PATHS.shard_table("ingest", "{shard}"),
    params:
        code=code_hash("ingest", "dicom", "cases", "cohort"),
        patients=lambda w: ",".join(PLAN.shards[w.shard]),
        cfg=options(CFG, "cohort", "design", "endpoints", "ingest"),
        root=ROOT,
    group:
        "ingest" if NYUL else "cases"
    log:
        PATHS.log("ingest/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "ingest" / "{shard}.tsv"
    shell:
        "{MCRAD} ingest --sheet {input.sheet:q} --config {params.cfg:q} --patients {params.patients:q}"
        " --root {params.root:q} {STRICT} --out {output:q} > {log:q} 2>&1"


rule qc_ingest:
    input:
        [PATHS.shard_table("ingest", s) for s in PLAN.shards],
    output:
        PATHS.qc_ingest,
    params:
        code=code_hash(),
    log:
        PATHS.log("qc_ingest"),
    shell:
        "{MCRAD} concat --inputs {input:q} --out {output:q} > {log:q} 2>&1"
