# Kit (a site run from a site kit, kit.locked): label-free feature summaries, QC counts and the site report that
# `mcrad kit run` packs into the return beside the validation tables. Only in a site run; see workflow/mcrad/kit.
if FILES.locked:

    rule site_summary:
        input:
            raw=[PATHS.raw_features(c) for c in PLAN.centres],
            harmonised=[PATHS.harmonised_external(c) for c in PLAN.centres],
            qc=PATHS.qc_ingest,
            quarantine=PATHS.qc_quarantine,
            metrics=[PATHS.metrics(ep) for ep in ENDPOINTS] if PLAN.external else [],
            predictions=[PATHS.prospective_predictions(ep) for ep in ENDPOINTS] if PLAN.prospective else [],
        output:
            features=PATHS.site_feature_summary,
            qc=PATHS.site_qc_summary,
            report=PATHS.site_report,
        params:
            code=code_hash("kit"),
            title=f"{CFG['study']['name']}, site run of {', '.join(PLAN.centres)}",
        log:
            PATHS.log("site_summary"),
        conda:
            CONDA_ENV
        shell:
            "python -m mcrad.cli kit summary --raw {input.raw:q} --harmonised {input.harmonised:q} --qc {input.qc:q}"
            " --quarantine {input.quarantine:q} --metrics {input.metrics:q} --predictions {input.predictions:q}"
            " --title {params.title:q} --out-features {output.features:q} --out-qc {output.qc:q}"
            " --out-report {output.report:q} > {log:q} 2>&1"
