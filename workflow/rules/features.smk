# Features: pyradiomics per shard, then one table per centre and one for the study (plus quarantine list).


rule features:
    input:
        shard=PATHS.shard_table("segment", "{shard}"),
        params=CFG["features"]["params"],
        autoseg=lambda w: autoseg_for_features(w.shard),
    output:
        PATHS.shard_table("features", "{shard}"),
    params:
        code=code_hash("features", "cases", "segment"),
        opts=options(CFG, "features"),
        segment=options(CFG, "segment"),
        sequences=",".join(CFG["cohort"]["sequences"]),
        root=ROOT,
        auto_masks=lambda w: "--auto-masks" if autoseg_for_features(w.shard) else "",
    group:
        # auto masks come from outside the per-shard group (autoseg of the whole centre), so features leave it
        "features" if AUTOSEG_FOR_FEATURES else "cases"
    log:
        PATHS.log("features/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "features" / "{shard}.tsv"
    shell:
        "{MCRAD} features --shard {input.shard:q} --options {params.opts:q} --segment-options {params.segment:q}"
        " --sequences={params.sequences:q} --root {params.root:q} {STRICT} {params.auto_masks} --out {output:q}"
        " > {log:q} 2>&1"


rule features_centre:
    input:
        lambda w: [PATHS.shard_table("features", s) for s in PLAN.shards_of(w.centre)],
    output:
        features=PATHS.raw_features("{centre}"),
        quarantine=PATHS.quarantine_centre("{centre}"),
        flags=PATHS.feature_flags("{centre}"),
    params:
        code=code_hash("features"),
    log:
        PATHS.log("features_centre/{centre}"),
    shell:
        "{MCRAD} gather --shards {input:q} --out {output.features:q} --quarantine {output.quarantine:q}"
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
        code=code_hash(),
    log:
        PATHS.log("features_study"),
    shell:
        "({MCRAD} concat --inputs {input.features:q} --out {output.features:q} &&"
        " {MCRAD} concat --inputs {input.quarantine:q} --out {output.quarantine:q} &&"
        " {MCRAD} concat --inputs {input.flags:q} --out {output.flags:q}) > {log:q} 2>&1"


rule robustness:
    input:
        features=[PATHS.raw_features(c) for c in PLAN.train],
        params=CFG["features"]["params"],
    output:
        PATHS.robustness,
    params:
        code=code_hash("features", "segment"),
        opts=options(CFG, "features"),
        segment=options(CFG, "segment"),
        sequences=",".join(CFG["cohort"]["sequences"]),
        seed=CFG["study"]["seed"],
        root=ROOT,
    log:
        PATHS.log("robustness"),
    benchmark:
        PATHS.root / "benchmarks" / "robustness.tsv"
    shell:
        "{MCRAD} robustness --features {input.features:q} --options {params.opts:q}"
        " --segment-options {params.segment:q} --sequences={params.sequences:q} --seed {params.seed}"
        " --root {params.root:q} --out {output:q} > {log:q} 2>&1"
