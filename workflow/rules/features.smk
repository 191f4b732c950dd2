# Features: pyradiomics per shard, then one table per centre and one for the study (plus quarantine list).


rule features:
    input:
        shard=PATHS.shard_table("segment", "{shard}"),
        params=CFG["features"]["params"],
        autoseg=lambda w: FILES.autoseg_of(w.shard),
    output:
        PATHS.shard_table("features", "{shard}"),
    params:
        root=FILES.root,
        sequences=SEQUENCES,
        strict=STRICT,
        code=code_hash("features"),
        opts=options(CFG, "features"),
        segment=options(CFG, "segment"),
        auto_masks=lambda w: "--auto-masks" if FILES.autoseg_of(w.shard) else "",
    group:
        # auto masks come from outside the per-shard group (autoseg of the whole centre), so features leave it
        "features" if PLAN.autoseg_features else "cases"
    log:
        PATHS.log("features/{shard}"),
    benchmark:
        PATHS.benchmark("features", "{shard}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli features --shard {input.shard:q} --options {params.opts:q} --segment-options {params.segment:q}"
        " --sequences={params.sequences:q} --root {params.root:q} {params.strict} {params.auto_masks} --out {output:q} > {log:q} 2>&1"


rule features_centre:
    input:
        lambda w: FILES.shard_tables("features", [w.centre]),
    output:
        features=PATHS.raw_features("{centre}"),
        quarantine=PATHS.quarantine_centre("{centre}"),
        flags=PATHS.feature_flags("{centre}"),
    params:
        code=code_hash("features"),
    log:
        PATHS.log("features_centre/{centre}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli gather --shards {input:q} --out {output.features:q} --quarantine {output.quarantine:q}"
        " --flags {output.flags:q} > {log:q} 2>&1"


rule features_study:
    input:
        features=[PATHS.raw_features(c) for c in PLAN.centres],
        quarantine=[PATHS.quarantine_centre(c) for c in PLAN.centres],
        flags=[PATHS.feature_flags(c) for c in PLAN.centres],
    output:
        features=PATHS.raw_features(),
        quarantine=PATHS.qc_quarantine,
        flags=PATHS.feature_flags(),
    params:
        code=code_hash("study"),
    log:
        PATHS.log("features_study"),
    conda:
        CONDA_ENV
    shell:
        "(python -m mcrad.cli concat --inputs {input.features:q} --out {output.features:q} &&"
        " python -m mcrad.cli concat --inputs {input.quarantine:q} --out {output.quarantine:q} &&"
        " python -m mcrad.cli concat --inputs {input.flags:q} --out {output.flags:q}) > {log:q} 2>&1"


rule robustness:
    input:
        features=[PATHS.raw_features(c) for c in PLAN.train],
        params=CFG["features"]["params"],
    output:
        PATHS.robustness,
    params:
        root=FILES.root,
        seed=SEED,
        sequences=SEQUENCES,
        code=code_hash("features"),
        opts=options(CFG, "features"),
        segment=options(CFG, "segment"),
    log:
        PATHS.log("robustness"),
    benchmark:
        PATHS.benchmark("robustness")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli robustness --features {input.features:q} --options {params.opts:q}"
        " --segment-options {params.segment:q} --sequences={params.sequences:q} --seed {params.seed}"
        " --root {params.root:q} --out {output:q} > {log:q} 2>&1"
