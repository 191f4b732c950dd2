#!/usr/bin/env bash
# GPU check of the deep stage, sized for a 15-minute GPU window. Needs only the repo and its .venv (no downloads).
#   1. makes the demo cohort and runs it up to segmentation (all cores);
#   2. benchmarks/deep_throughput.py: samples/s on CUDA vs CPU and the share of step time waiting for data;
#   3. runs the whole deep stage (CV + final network + scoring + Grad-CAM) through Snakemake on CUDA, timed.
# Usage: benchmarks/gpu_check.sh [--cpu-only | --smoke]
#   --cpu-only: a small cohort and CPU only, to check the script;
#   --smoke: CPU only and smaller still (2 centres x 16 small cases, a tiny network, 1 epoch), the suite's size.
# WORK=<dir> keeps the study there (default: a fresh temporary folder, removed at the end). Snakemake runs in
# that folder (--directory), so nothing is written into the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export PATH="$REPO/.venv/bin:$PATH"  # the rules run `python -m mcrad.cli`
PY=$REPO/.venv/bin/python
SNAKEMAKE=$REPO/.venv/bin/snakemake
MODE=gpu
case "${1:-}" in
  "") ;;
  --cpu-only) MODE=cpu ;;
  --smoke) MODE=smoke ;;
  *) echo "usage: $0 [--cpu-only | --smoke]" >&2; exit 2 ;;
esac
if [[ -z "${WORK:-}" ]]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
CORES=$(nproc)
case $MODE in
  gpu) PATIENTS=40; DEVICES="cuda cpu"; EPOCHS=3; REPEAT=8; DEVICE=cuda; DEEP_EPOCHS=30; FOLDS=3 ;;
  cpu) PATIENTS=20; DEVICES="cpu"; EPOCHS=1; REPEAT=1; DEVICE=cpu; DEEP_EPOCHS=2; FOLDS=2 ;;
  smoke) PATIENTS=16; DEVICES="cpu"; EPOCHS=1; REPEAT=1; DEVICE=cpu; DEEP_EPOCHS=1; FOLDS=2 ;;
esac
# the demo config with a results folder, cohort size and deep options of this check
$PY - "$WORK" "$REPO" "$MODE" "$PATIENTS" "$DEVICE" "$CORES" "$DEEP_EPOCHS" "$FOLDS" <<'EOF'
import sys, yaml
work, repo, mode, patients, device = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
cores, epochs, folds = map(int, sys.argv[6:])
cfg = yaml.safe_load(open("config/config.yaml"))
cfg["study"].update(name="gpucheck", results=f"{work}/results")
cfg["cohort"]["synthetic"]["patients_per_centre"] = patients
cfg["features"]["params"] = f"{repo}/{cfg['features']['params']}"  # Snakemake runs in WORK: an absolute path
cfg["deep"] = {**cfg.get("deep", {}), "activate": True, "device": device, "threads": cores, "epochs": epochs,
               "folds": folds, "crop_voxels": 32, "width": 8, "batch_size": 16}
if mode == "smoke":  # 2 centres of small cases in one shard each, a tiny network
    cfg["cohort"]["synthetic"].update(centres=2, field_of_view_mm=56)
    cfg["design"] = {"train": ["C1"], "external": ["C2"]}
    cfg["preprocess"] = {"spacing_mm": [1.5, 1.5, 1.5]}
    cfg["ingest"] = {"qc_png": False}
    cfg["execution"] = {"shard_size": 100}
    cfg["deep"].update(crop_voxels=12, width=4, embedding_size=4, batch_size=4, gradcam_cases=1)
yaml.safe_dump(cfg, open(f"{work}/config.yaml", "w"))
EOF
echo "== environment"
$PY - <<'EOF'
import torch, monai
print(f"torch {torch.__version__}, monai {monai.__version__}, cuda available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
EOF
echo "== demo cohort up to segmentation ($CORES cores)"
start=$(date +%s)
$SNAKEMAKE --snakefile "$REPO/Snakefile" --directory "$WORK" --cores "$CORES" --configfile "$WORK/config.yaml" \
  --until segment cohort_tables --quiet rules
echo "cohort ready in $(( $(date +%s) - start )) s"
echo "== throughput"
$PY benchmarks/deep_throughput.py --root "$WORK/results/gpucheck" --config "$WORK/config.yaml" \
  --devices $DEVICES --epochs "$EPOCHS" --repeat "$REPEAT"
echo "== whole deep stage through Snakemake on $DEVICE"
start=$(date +%s)
TARGETS=$($PY - "$WORK/config.yaml" <<'EOF'
import sys, yaml
from mcrad.config import load_config
from mcrad.paths import Paths
from mcrad.plan import plan_study
cfg = load_config(yaml.safe_load(open(sys.argv[1])))
plan = plan_study(cfg)
print(" ".join(str(Paths.from_config(cfg).deep_features(ep, c)) for ep in plan.deep_endpoints for c in plan.centres))
EOF
)
$SNAKEMAKE $TARGETS --snakefile "$REPO/Snakefile" --directory "$WORK" --cores "$CORES" \
  --configfile "$WORK/config.yaml" --quiet rules
echo "deep stage in $(( $(date +%s) - start )) s"
for log in "$WORK"/results/gpucheck/logs/deep_train/*.log; do grep "^deep: {" "$log" || true; done
