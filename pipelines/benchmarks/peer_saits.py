"""A peer on our own-data files: PyPOTS's SAITS (Du, Côté & Liu 2023) trained for a wall-time
budget on train.csv, then imputing test.csv, as a user of PyPOTS would run it.

Runs in its own virtual environment, never the project's (PyPOTS is not a dependency):

    python -m venv ../pypots_venv && ../pypots_venv/bin/pip install torch==2.13.0 pypots==1.5
    ../pypots_venv/bin/python pipelines/benchmarks/peer_saits.py runs/own_data/gp_smooth \
        --window 48 --minutes 8 --threads 1

and imports only numpy, pandas and PyPOTS. The folder is one of `own_data.py`'s (train.csv,
test.csv); it writes FOLDER/saits/imputed.csv (test.csv with every gap filled, data units) and
FOLDER/saits/run.json (epochs, seconds, settings). `own_data.py --peer saits` scores them.

What a careful PyPOTS user does, and nothing more: columns standardised by the training file's
mean and std; training windows of the set's length from every `window // 4` rows; the last
tenth of the training rows kept for validation, 10 % of its values hidden to score it; SAITS at
the size of its paper's PhysioNet model scaled to this CPU (2 layers, d_model 128, 4 heads);
one epoch at a time until the budget is spent, keeping the weights with the best validation
MAE; the test file cut into windows half a window apart, each row taken from the window where
it lies nearest the centre.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pypots.imputation import SAITS


def windows(values: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) → windows (N, length, K) starting every `stride` rows, the last ending at T;
    and their starts (N,)."""
    t = values.shape[0]
    starts = list(range(0, max(t - length, 0) + 1, stride))
    if starts[-1] + length < t:
        starts.append(t - length)
    idx = np.asarray(starts)[:, None] + np.arange(length)
    return values[idx], np.asarray(starts)


def stitch_centre(parts: np.ndarray, starts: np.ndarray, t: int) -> np.ndarray:
    """Windows (N, L, K) → (T, K), each row from the window whose centre is nearest it."""
    length = parts.shape[1]
    centres = starts + (length - 1) / 2
    rows = np.arange(t)
    best = np.abs(rows[:, None] - centres[None, :])
    inside = (rows[:, None] >= starts[None, :]) & (rows[:, None] < starts[None, :] + length)
    best[~inside] = np.inf
    which = best.argmin(axis=1)  # (T,)
    return parts[which, rows - starts[which]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train = pd.read_csv(args.folder / "train.csv", index_col=0)
    test = pd.read_csv(args.folder / "test.csv", index_col=0)
    mean, std = train.mean().to_numpy(), train.std().to_numpy()
    std = np.where(std > 0, std, 1.0)
    x_train = ((train.to_numpy(float) - mean) / std).astype(np.float32)  # (T, K)
    x_test = ((test.to_numpy(float) - mean) / std).astype(np.float32)
    n_valid = max(args.window, x_train.shape[0] // 10)
    fit_part, valid_part = x_train[:-n_valid], x_train[-n_valid:]
    fit_windows, _ = windows(fit_part, args.window, 1)
    valid_ori, _ = windows(valid_part, args.window, args.window)
    valid_x = valid_ori.copy()
    valid_x[rng.random(valid_x.shape) < 0.1] = np.nan
    scored = np.isnan(valid_x) & ~np.isnan(valid_ori)

    model = SAITS(
        n_steps=args.window,
        n_features=x_train.shape[1],
        n_layers=2,
        d_model=128,
        n_heads=4,
        d_k=32,
        d_v=32,
        d_ffn=128,
        dropout=0.1,
        batch_size=32,
        epochs=1,
        device="cpu",
        verbose=False,
    )
    start = time.perf_counter()
    best, best_mae, epochs = None, np.inf, 0
    while time.perf_counter() - start < 60 * args.minutes:
        model.fit({"X": fit_windows})  # one more epoch from the current weights
        epochs += 1
        guess = model.predict({"X": valid_x})["imputation"]
        mae = float(np.abs(guess - valid_ori)[scored].mean())
        if mae < best_mae:
            best, best_mae = copy.deepcopy(model.model.state_dict()), mae
    train_seconds = time.perf_counter() - start
    assert best is not None
    model.model.load_state_dict(best)

    start = time.perf_counter()
    parts, starts = windows(x_test, args.window, max(1, args.window // 2))
    filled = model.predict({"X": parts})["imputation"]  # (N, L, K)
    whole = stitch_centre(filled, starts, x_test.shape[0]) * std + mean  # (T, K) data units
    given = ~np.isnan(test.to_numpy(float))
    whole = np.where(given, test.to_numpy(float), whole)
    impute_seconds = time.perf_counter() - start

    out = args.folder / "saits"
    out.mkdir(exist_ok=True)
    pd.DataFrame(whole, index=test.index, columns=test.columns).to_csv(out / "imputed.csv")
    run = {
        "peer": "SAITS (PyPOTS 1.5)",
        "epochs": epochs,
        "train_seconds": train_seconds,
        "impute_seconds": impute_seconds,
        "best_validation_mae": best_mae,
        "training_windows": int(fit_windows.shape[0]),
        "settings": "2 layers, d_model 128, 4 heads, d_k = d_v = 32, d_ffn 128, dropout 0.1, "
        f"batch 32, Adam lr 1e-3 (PyPOTS's default), {args.minutes:g} minutes, "
        f"{args.threads} thread(s)",
    }
    (out / "run.json").write_text(json.dumps(run, indent=1))
    print(json.dumps(run))


if __name__ == "__main__":
    main()
