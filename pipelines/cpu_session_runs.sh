#!/usr/bin/env bash
# What a 2-core CPU session can run of the PM2.5, exchange-rate and ETTh1 benchmarks (issue 4)
# and of the few-step sampler comparison (issue 6), exactly as the figures in reports/ were made.
# Trainings: CSDI's configs, epochs cut to what ~68 min on one thread each allows (three in
# parallel), so the learning-rate milestones still fall inside the run. Evaluations: two queues of
# one thread each. The full protocols are the configs' own commands (see their headers).
# Usage: pipelines/cpu_session_runs.sh [RUN_ROOT]     (CSDI_DATA_DIR must hold the data)
set -euo pipefail
root=${1:-runs}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

# --- training (three processes, ~68 min each) ---
csdi train --config pipelines/pm25.toml --output "$root/pm25" --no-tracking \
  --set train.epochs=4 --set train.max_minutes=68 &
csdi train --config pipelines/exchange_rate.toml --output "$root/exchange_rate" --no-tracking \
  --set train.epochs=3 --set train.max_minutes=68 &
# ETTh1 validates and tests on every 24th window (120 of 2857; Informer uses stride 1)
csdi train --config pipelines/etth1_24.toml --output "$root/etth1_24" --no-tracking \
  --set train.epochs=2 --set train.max_minutes=68 --set data.test_stride=24 &
wait

# --- baselines (seconds) ---
csdi baselines --config pipelines/pm25.toml --methods mean,locf,linear --no-tracking
csdi baselines --config pipelines/exchange_rate.toml --methods seasonal_naive,locf \
  --option seasonal_naive.season=5 --no-tracking
csdi baselines --config pipelines/etth1_24.toml --set data.test_stride=24 \
  --methods seasonal_naive,locf --option seasonal_naive.season=24 --no-tracking
csdi baselines --config pipelines/etth1_24.toml --methods seasonal_naive \
  --option seasonal_naive.season=24 --no-tracking   # all 2857 windows, for comparison
csdi baselines --config pipelines/etth1_96.toml --methods seasonal_naive,locf \
  --option seasonal_naive.season=24 --no-tracking   # horizon 96 (no model trained here)

# --- evaluation, queue A: PM2.5 (all 82 test windows × 100 samples), then the 10-step
# DPM-Solver beside the 50-step ancestral sampler on the first 16 PM2.5 test windows ---
(
  csdi evaluate --model "$root/pm25" --samples 100 --sampler dpm_solver --steps 10 --no-tracking
  csdi evaluate --model "$root/pm25" --max-windows 16 --samples 20 --sampler dpm_solver \
    --steps 10 --no-tracking --samples-output reports/pm25/samples/csdi_samples.npz
  csdi evaluate --model "$root/pm25" --max-windows 16 --samples 20 --no-tracking
) &
# --- evaluation, queue B: ETTh1, exchange rate, the PhysioNet sampler comparison ---
(
  csdi evaluate --model "$root/etth1_24" --samples 50 --sampler dpm_solver --steps 10 \
    --no-tracking
  csdi evaluate --model "$root/exchange_rate" --samples 100 --sampler dpm_solver --steps 10 \
    --no-tracking
  csdi evaluate --model "$root/exchange_rate" --samples 100 --no-tracking   # ancestral, 50 steps
  python pipelines/benchmarks/sampler_quality.py --model "$root/physionet_10" --windows 20 \
    --samples 20 --focus
  # the 50-step ancestral sampler beside the 10-step DPM-Solver on the first 16 ETTh1 windows
  csdi evaluate --model "$root/etth1_24" --max-windows 16 --samples 20 --sampler dpm_solver \
    --steps 10 --no-tracking
  csdi evaluate --model "$root/etth1_24" --max-windows 16 --samples 20 --no-tracking
  # DPM-Solver on the log-SNR grid (the best 10-NFE setting on PhysioNet)
  csdi evaluate --model "$root/exchange_rate" --samples 100 --sampler dpm_solver --steps 10 \
    --time-grid logsnr --no-tracking
  csdi evaluate --model "$root/etth1_24" --max-windows 16 --samples 20 --sampler dpm_solver \
    --steps 10 --time-grid logsnr --no-tracking
) &
wait
csdi report --experiment pm25 --samples reports/pm25/samples/csdi_samples.npz
for b in exchange_rate_nips etth1; do csdi report --experiment "$b"; done
