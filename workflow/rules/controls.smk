# Negative controls (negative_controls.activate): control versions of every training and external case (one job
# per control kind x shard), then per endpoint and kind the same ComBat, models and external validation as the
# real data, and the comparison table. Rules call mcrad.controls; outputs under controls/<kind>/ and validation/.
from mcrad.controls import check_config

try:
    check_config(CFG)
except McradError as exc:
    raise WorkflowError(f"mcrad: {exc}") from None

NC_KINDS = FILES.control_kinds


wildcard_constraints:
    kind=alternatives(NC_KINDS),
    control=alternatives(FILES.control_runs),


rule controls:
    input:
        shard=PATHS.shard_table("features", "{shard}"),
        params=CFG["features"]["params"],
        nyul=[PATHS.nyul_standard] if PLAN.nyul else [],
    output:
        PATHS.controls("{kind}").shard_table("features", "{shard}"),
    params:
        root=FILES.root,
        sequences=SEQUENCES,
        strict=STRICT,
        code=code_hash("controls"),
        cfg=options(CFG, "study", "preprocess", "segment", "features", "negative_controls"),
    log:
        PATHS.log("controls/{kind}.{shard}"),
    benchmark:
        PATHS.benchmark("controls", "{kind}.{shard}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli controls --config {params.cfg:q} --kind {wildcards.kind} --shard {input.shard:q}"
        " --sequences={params.sequences:q} --root {params.root:q} {params.strict} --out {output:q} > {log:q} 2>&1"


rule controls_centre:
    input:
        lambda w: FILES.control_shard_tables(w.kind, w.centre),
    output:
        features=PATHS.controls("{kind}").raw_features("{centre}"),
        quarantine=PATHS.controls("{kind}").quarantine_centre("{centre}"),
        flags=PATHS.controls("{kind}").feature_flags("{centre}"),
    params:
        code=code_hash("features"),
    log:
        PATHS.log("controls_centre/{kind}.{centre}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli gather --shards {input:q} --out {output.features:q} --quarantine {output.quarantine:q}"
        " --flags {output.flags:q} > {log:q} 2>&1"


rule controls_validate:
    input:
        features=lambda w: FILES.control_features(w.control),
        predictors=[PATHS.predictors_table(c) for c in FILES.control_centres],
        cohort=[PATHS.cohort_table(c) for c in FILES.control_centres],
        robustness=[PATHS.robustness] if CFG["features"]["robustness"]["activate"] else [],
    output:
        PATHS.controls("{control}").negative_controls("{endpoint}"),
    params:
        code=code_hash("controls"),
        cfg=options(CFG, "study", "cohort", "design", "endpoints", "harmonise", "model", "validate",
                    "negative_controls"),
        models=lambda w: PATHS.controls(w.control).models_dir(w.endpoint),
        robust=lambda w, input: f"--robustness {shlex.quote(str(input.robustness))}" if input.robustness else "",
    log:
        PATHS.log("controls_validate/{endpoint}.{control}"),
    benchmark:
        PATHS.benchmark("controls_validate", "{endpoint}.{control}")
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli controls-validate --config {params.cfg:q} --endpoint {wildcards.endpoint:q}"
        " --control {wildcards.control} --features {input.features:q} --predictors {input.predictors:q}"
        " --cohort {input.cohort:q} {params.robust} --models-dir {params.models:q} --out {output:q} > {log:q} 2>&1"


rule controls_summary:
    input:
        metrics=PATHS.metrics("{endpoint}"),
        controls=lambda w: FILES.control_tables(w.endpoint),
    output:
        PATHS.negative_controls("{endpoint}"),
    params:
        code=code_hash("controls"),
        cfg=options(CFG, "endpoints", "negative_controls"),
    log:
        PATHS.log("controls_summary/{endpoint}"),
    conda:
        CONDA_ENV
    shell:
        "python -m mcrad.cli controls-summary --config {params.cfg:q} --endpoint {wildcards.endpoint:q}"
        " --metrics {input.metrics:q} --controls {input.controls:q} --out {output:q} > {log:q} 2>&1"
