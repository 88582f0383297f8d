#!/usr/bin/env bash
# The PhysioNet 10 % run that fits a 2-core CPU session: CSDI's defaults for a wall-time budget,
# EMA snapshots every 2 epochs, each scored on the first 80 test windows of fold 0 (the records
# of the reference's CPU figure in shared/fixtures/README.md) to trace CRPS against training time.
# Usage: pipelines/physionet_cpu_curve.sh [RUN_DIR] [MINUTES]
set -euo pipefail
run=${1:-runs/physionet_10}
minutes=${2:-64}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE
csdi train --config pipelines/physionet_10.toml --output "$run" \
  --set train.max_minutes="$minutes" --set train.snapshot_every=2
for snap in "$run"/snapshots/epoch_*.pt; do
  csdi evaluate --model "$run" --weights "$snap" --max-windows 80 --samples 10 \
    --sampler ancestral --steps 10 --reports reports/physionet_cpu_curve
done
python pipelines/benchmarks/sampler_quality.py --model "$run" --windows 20 --samples 10 --quick
