# mcrad: a multicentre radiomics study of head-and-neck cancer, end to end. Logic lives in workflow/mcrad.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/harmonise.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        PATHS.report,
