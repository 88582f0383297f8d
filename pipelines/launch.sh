#!/usr/bin/env bash
# Train one benchmark config on GPUs: one GPU with `csdi train`, several with torchrun (DDP).
#
#   bash pipelines/launch.sh pipelines/physionet_10.toml          # one GPU
#   bash pipelines/launch.sh pipelines/pm25.toml 4 --set train.precision=bf16   # four GPUs
#
# Every config under pipelines/*.toml works; extra arguments go to `csdi train`. With N GPUs
# each rank takes train.batch_size windows per step (the global batch is N times larger).
set -euo pipefail
CONFIG=${1:?usage: launch.sh CONFIG.toml [N_GPUS] [csdi train arguments…]}
GPUS=${2:-1}
shift $(( $# >= 2 ? 2 : 1 ))
PY=${PYTHON:-python3}
if [[ $GPUS -le 1 ]]; then
  exec "$PY" -m csdi.cli train --config "$CONFIG" --device cuda "$@"
fi
exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" \
  -m csdi.cli train --config "$CONFIG" --device cuda "$@"
