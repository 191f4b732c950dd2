#!/usr/bin/env bash
# GPU check of the deep stage, sized for a 15-minute GPU window. Needs only the repo and its .venv (no downloads).
#   1. makes the demo cohort and runs it up to segmentation (all cores);
#   2. benchmarks/deep_throughput.py: samples/s on CUDA vs CPU and the share of step time waiting for data;
#   3. runs the whole deep stage (CV + final network + scoring + Grad-CAM) through Snakemake on CUDA, timed.
# Usage: benchmarks/gpu_check.sh [--cpu-only]   (--cpu-only: a small cohort and CPU only, to check the script)
# WORK=<dir> keeps the study there (default: a fresh temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SNAKEMAKE=.venv/bin/snakemake
CPU_ONLY=0
[[ "${1:-}" == "--cpu-only" ]] && CPU_ONLY=1
WORK=${WORK:-$(mktemp -d)}
CORES=$(nproc)
if ((CPU_ONLY)); then
  PATIENTS=20; DEVICES="cpu"; EPOCHS=1; REPEAT=1; DEVICE=cpu; DEEP_EPOCHS=2; FOLDS=2
else
  PATIENTS=40; DEVICES="cuda cpu"; EPOCHS=3; REPEAT=8; DEVICE=cuda; DEEP_EPOCHS=30; FOLDS=3
fi
# the demo config with a results folder, cohort size and deep options of this check
$PY - "$WORK" "$PATIENTS" "$DEVICE" "$CORES" "$DEEP_EPOCHS" "$FOLDS" <<'EOF'
import sys, yaml
work, patients, device, cores, epochs, folds = sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:])
cfg = yaml.safe_load(open("config/config.yaml"))
cfg["study"].update(name="gpucheck", results=f"{work}/results")
cfg["cohort"]["synthetic"]["patients_per_centre"] = patients
cfg["deep"] = {**cfg.get("deep", {}), "activate": True, "device": device, "threads": cores, "epochs": epochs,
               "folds": folds, "crop_voxels": 32, "width": 8, "batch_size": 16}
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
$SNAKEMAKE --cores "$CORES" --configfile "$WORK/config.yaml" --until segment cohort_tables --quiet rules
echo "cohort ready in $(( $(date +%s) - start )) s"
echo "== throughput"
$PY benchmarks/deep_throughput.py --root "$WORK/results/gpucheck" --config "$WORK/config.yaml" \
  --devices $DEVICES --epochs "$EPOCHS" --repeat "$REPEAT"
echo "== whole deep stage through Snakemake on $DEVICE"
start=$(date +%s)
TARGETS=$($PY - "$WORK/config.yaml" <<'EOF'
import sys, yaml
sys.path.insert(0, "workflow")
from mcrad.config import Paths, load_config
cfg = load_config(yaml.safe_load(open(sys.argv[1])))
d = cfg["design"]
print(" ".join(str(Paths.from_config(cfg).deep_features(ep["name"], c)) for ep in cfg["endpoints"]
               if ep["type"] == "binary" for c in d["train"] + d["external"] + d.get("prospective", [])))
EOF
)
$SNAKEMAKE $TARGETS --cores "$CORES" --configfile "$WORK/config.yaml" --quiet rules
echo "deep stage in $(( $(date +%s) - start )) s"
for log in "$WORK"/results/gpucheck/logs/deep_train/*.log; do grep "^deep: {" "$log" || true; done
