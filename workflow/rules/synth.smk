# The synthetic multicentre demo cohort (only when cohort.sheet is null).
if PLAN.synthetic:

    rule synth_cohort:
        output:
            sheet=PATHS.synth_sheet,
            truth=PATHS.synth_truth,
        params:
            code=code_hash("synth"),
            opts=options(CFG["cohort"], "synthetic"),
            seed=CFG["study"]["seed"],
            out=PATHS.synth_dir,
        log:
            PATHS.log("synth_cohort"),
        shell:
            "{MCRAD} synth --options {params.opts:q} --seed {params.seed} --out-dir {params.out:q} > {log:q} 2>&1"
