# Shared by every rule file: the validated config, the study plan, the paths, and the file lists rules use.
# The config is checked against the schema and the cohort sheet (columns, ids, centres, files) before any job runs.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mcrad.dag import StudyFiles, alternatives, job_environment
from mcrad.errors import McradError
from mcrad.paths import Paths
from mcrad.plan import code_hash, options, prepare_study

try:
    CFG, PLAN = prepare_study(config)  # with cohort.discover, the sheet is discovered from the DICOM trees first
except McradError as exc:
    raise WorkflowError(f"mcrad: {exc}") from None

PATHS = Paths.from_config(CFG)
FILES = StudyFiles(CFG, PLAN, PATHS)
job_environment(sys.executable, Path(workflow.basedir) / "workflow")
CONDA_ENV = str(Path(workflow.basedir) / "envs" / "mcrad.yaml")
ROOT = str(PATHS.root)

STRICT = "--strict" if CFG["study"]["strict"] else ""
ENDPOINTS = FILES.endpoints
SEQUENCES = ",".join(CFG["cohort"]["sequences"])
SEED = CFG["study"]["seed"]
# deep and auto-segmentation jobs: a GPU unless the config says CPU
DEEP_RESOURCES = {"mem_mb": CFG["deep"]["mem_mb"], "gpu": 0 if CFG["deep"]["device"] == "cpu" else 1}


wildcard_constraints:
    shard=alternatives(PLAN.shards),
    centre=alternatives(PLAN.centres),
    endpoint=alternatives(ENDPOINTS),
