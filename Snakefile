# mcrad: a multicentre radiomics study of head-and-neck cancer, end to end. Logic lives in workflow/mcrad.
from snakemake.utils import min_version

min_version("9.0")


# The demo config only when no --configfile is given: Snakemake would otherwise deep-merge a user's study
# config into the demo's, so options the user left out (a prospective centre, say) leaked in from the demo.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# Table concatenations and copies run on the submitting node: a cluster job for each would cost more than the work.
localrules:
    all,
    cohort_tables,
    qc_ingest,
    qc_preprocess,
    qc_pictures,
    features_centre,
    features_study,
    harmonise_study,
    autoseg_dice,
    controls_centre,
    controls_summary,
    y_randomisation_summary,


include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/harmonise.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/prospective.smk"
include: "workflow/rules/deep.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/kit.smk"


rule all:
    input:
        FILES.targets,


onsuccess:
    print(FILES.failure_line())
