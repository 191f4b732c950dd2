# The synthetic multicentre demo cohort (only when cohort.sheet is null).
if PLAN.synthetic:

    rule synth_cohort:
        output:
            sheet=PATHS.synth_sheet,
            truth=PATHS.synth_truth,
        params:
            seed=SEED,
            code=code_hash("study"),
            opts=options(CFG["cohort"], "synthetic"),
            out=PATHS.synth_dir,
        log:
            PATHS.log("synth_cohort"),
        conda:
            CONDA_ENV
        shell:
            "python -m mcrad.cli synth --options {params.opts:q} --seed {params.seed} --out-dir {params.out:q} > {log:q} 2>&1"
