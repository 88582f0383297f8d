#!/usr/bin/env bash
# One prepared GPU check (≤ 8 minutes on one GPU): PhysioNet 10 % training steps in fp32 and bf16
# (step time, windows per second), the DDP path through torchrun with one process, and the
# first 200 test windows evaluated with 100 samples at 10 and 50 steps. Every figure goes to
# $OUT (default runs/gpu_check): summary.json, summary.md, the metrics records and logs.
#
#   OUT=/some/dir bash pipelines/gpu_check.sh            # on a GPU machine
#   bash pipelines/gpu_check.sh --cpu-dry-run            # the same path on a CPU, tiny sizes
#
# Data: $CSDI_DATA_DIR (default data/raw) must hold physionet2012/set-a.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--cpu-dry-run" ]] && DRY=1
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
rm -f "$OUT/train_ms.txt"
export CSDI_DATA_DIR=${CSDI_DATA_DIR:-data/raw}
PY=${PYTHON:-python3}
if ! "$PY" -c "import csdi" 2>/dev/null; then
  "$PY" -m pip install -q -e . >"$OUT/install.log" 2>&1
fi
if [[ $DRY == 1 ]]; then
  DEVICE=cpu STEPS=6 WINDOWS=4 SAMPLES=2 PRECISIONS="fp32"
  TINY=(--set model.channels=16 --set model.n_layers=1 --set train.batch_size=4)
else
  DEVICE=cuda STEPS=300 WINDOWS=200 SAMPLES=100 PRECISIONS="fp32 bf16"
  TINY=()
fi
"$PY" - "$OUT" "$DEVICE" <<'PYEOF' >"$OUT/machine.txt"
import sys, platform, torch
out, device = sys.argv[1], sys.argv[2]
name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
print(f"{name}; torch {torch.__version__}; cuda {torch.version.cuda}")
PYEOF
RECIPE=(--set model.n_heads=2 --set model.dropout=0 --set train.lr=2e-3
        --set train.lr_schedule=cosine --set train.warmup_steps=50)
COMMON=(--config pipelines/physionet_10.toml --no-tracking --steps "$STEPS"
        --set "train.validate_every=$STEPS" --set "train.device=$DEVICE" "${RECIPE[@]}" "${TINY[@]}")
for prec in $PRECISIONS; do
  start=$(date +%s%N)
  "$PY" -m csdi.cli -q train "${COMMON[@]}" --output "$OUT/train_$prec" \
    --set "train.precision=$prec" >"$OUT/train_$prec.log" 2>&1
  end=$(date +%s%N)
  echo "$prec $(( (end - start) / 1000000 ))" >>"$OUT/train_ms.txt"
done
"$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m csdi.cli -q train \
  "${COMMON[@]}" --output "$OUT/train_ddp" >"$OUT/train_ddp.log" 2>&1
for steps in 10 50; do
  "$PY" -m csdi.cli -q evaluate --model "$OUT/train_fp32" --max-windows "$WINDOWS" \
    --samples "$SAMPLES" --sampler ancestral --steps "$steps" --device "$DEVICE" \
    --reports "$OUT/reports" --no-tracking >"$OUT/evaluate_$steps.log" 2>&1
  cp "$OUT/train_fp32/metrics.json" "$OUT/metrics_ancestral_$steps.json"
done
"$PY" - "$OUT" "$STEPS" <<'PYEOF'
import json, sys, pathlib
import torch
out, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = {}
for line in (out / "train_ms.txt").read_text().split("\n"):
    if line.strip():
        prec, ms = line.split()
        seconds = int(ms) / 1000
        state = json.loads((out / f"train_{prec}" / "experiment.json").read_text())
        batch = state["train"]["batch_size"]
        history = torch.load(out / f"train_{prec}" / "last.pt", weights_only=True)["history"]
        train_s = history["seconds"][-1]
        rows[prec] = {"wall_seconds": float(seconds), "train_seconds": train_s,
                      "step_ms": 1000 * train_s / steps, "windows_per_second": steps * batch / train_s}
evals = {}
for s in (10, 50):
    r = json.loads((out / f"metrics_ancestral_{s}.json").read_text())
    evals[s] = {"crps": r["metrics"]["crps"], "mae": r["metrics"]["mae"],
                "impute_seconds": r["impute_seconds"], "n_windows": r["protocol"]["n_windows"],
                "n_samples": r["n_samples"]}
ddp_ok = (out / "train_ddp" / "model.pt").is_file()
summary = {"machine": (out / "machine.txt").read_text().strip(), "steps": steps,
           "train": rows, "evaluate_ancestral": evals, "ddp_one_process_ok": ddp_ok}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
lines = [f"# GPU check: {summary['machine']}", "", "| precision | step ms | windows/s |", "|---|---:|---:|"]
lines += [f"| {p} | {r['step_ms']:.1f} | {r['windows_per_second']:.0f} |" for p, r in rows.items()]
lines += ["", "| sampler steps | windows | samples | CRPS | MAE | seconds |", "|---:|---:|---:|---:|---:|---:|"]
lines += [f"| {s} | {e['n_windows']} | {e['n_samples']} | {e['crps']:.4f} | {e['mae']:.4f} | {e['impute_seconds']:.1f} |" for s, e in evals.items()]
lines += ["", f"torchrun --nproc_per_node 1 through the DDP path: {'ok' if ddp_ok else 'FAILED'}"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
