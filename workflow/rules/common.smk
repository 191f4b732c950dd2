# Validation and small helpers only: the config is checked against the schema and the cohort sheet is
# checked (columns, ids, centres, files) before any job runs.
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError

from mcrad.config import Paths, load_config
from mcrad.errors import McradError
from mcrad.plan import code_hash, options, plan_study

try:
    CFG = load_config(config)
    PLAN = plan_study(CFG)
except McradError as exc:
    raise WorkflowError(f"mcrad: {exc}") from None

PATHS = Paths.from_config(CFG)
ROOT = str(PATHS.root)
MCRAD = f"{shlex.quote(sys.executable)} -m mcrad.cli"
STRICT = "--strict" if CFG["study"]["strict"] else ""
ENDPOINTS = [ep["name"] for ep in CFG["endpoints"]]


def _alternatives(values):
    return "|".join(re.escape(v) for v in values) or "$^"


wildcard_constraints:
    shard=_alternatives(PLAN.shards),
    centre=_alternatives(PLAN.centres),
    endpoint=_alternatives(ENDPOINTS),
