"""What each of the network's options costs per training step and per forward.

Times, in one process, the own-data network (32 channels unless `--channels`, 2 heads, no
dropout, both conditioning inputs) with none of its options and with each of them, one at a
time (the convolution along time, the distance bias, the feature-pair bias) and all together
(the own-data defaults). Shapes: the own-data sets' batches (K = 6, L = 48 and 24, batch 16
and 32; K = 11 as the PM2.5 stations file), PhysioNet's (K = 35, L = 48, batch 16) and one
sampler call on the 11-column file (124 windows, forward only). Timed: the median of a
training step (forward, masked ε-MSE, backward, Adam step), of a no-grad forward in fp32, and
of one in bf16 autocast (what `sampling.precision=auto` runs where the CPU has bf16). The
networks are timed alternately, so that a change in the machine's speed hits all of them.

    .venv/bin/python pipelines/benchmarks/network_options_speed.py --threads 2

writes reports/performance/network_options.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from csdi.nn.score_network import NetworkConfig, ScoreNetwork

sys.path.insert(0, str(Path(__file__).resolve().parent))
from network_speed import Batch, make_batch, median_seconds, training_step

#: (B, K, L, whether to time a training step): the own-data and PhysioNet training batches, and
#: one network call of the sampler on the 11-column file (65 536 entries → 124 windows)
SHAPES = (
    (16, 6, 48, True),
    (32, 6, 24, True),
    (16, 11, 48, True),
    (16, 35, 48, True),
    (124, 11, 48, False),
)
#: name → the NetworkConfig fields it sets over the plain own-data network
OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "conv": {"temporal_kernel": 5},
    "time_bias": {"time_bias": 24},
    "feature_bias": {"feature_bias": True},
    "defaults": {"temporal_kernel": 5, "time_bias": 24, "feature_bias": True},
}
TIMINGS = ("step_ms", "forward_ms", "forward_bf16_ms")


def _network(k: int, channels: int, options: dict[str, Any]) -> ScoreNetwork:
    torch.manual_seed(0)
    config = NetworkConfig(
        n_features=k, channels=channels, n_heads=2, dropout=0.0, cond_input="both", **options
    )
    return ScoreNetwork(config)


def _forward(net: ScoreNetwork, batch: Batch, bf16: bool) -> None:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(batch.z, batch.t, batch.cond)


def _time_shape(
    b: int, k: int, l: int, train: bool, channels: int, repeats: int
) -> list[dict[str, Any]]:
    batch = make_batch(b, k, l, torch.Generator().manual_seed(0))
    nets = {name: _network(k, channels, options) for name, options in OPTIONS.items()}
    steps = {name: training_step(net, batch) for name, net in nets.items()}
    seconds: dict[str, dict[str, list[float]]] = {
        name: {timing: [] for timing in TIMINGS} for name in OPTIONS
    }
    for _ in range(repeats):  # alternate, so drifts in machine speed hit every network
        for name, net in nets.items():
            if train:
                net.train()
                seconds[name]["step_ms"].append(median_seconds(steps[name], warmup=1, repeats=3))
            net.eval()
            for timing, bf16 in (("forward_ms", False), ("forward_bf16_ms", True)):

                def forward(n: ScoreNetwork = net, b16: bool = bf16) -> None:
                    _forward(n, batch, b16)

                seconds[name][timing].append(median_seconds(forward, warmup=1, repeats=3))
    rows = []
    for name in OPTIONS:
        row: dict[str, Any] = {"batch": b, "K": k, "L": l, "options": name}
        for timing in TIMINGS:
            times, base = seconds[name][timing], seconds["none"][timing]
            # paired: each alternation's time over the plain network's in the same alternation
            row[timing] = 1000 * statistics.median(times) if times else None
            row[timing.replace("_ms", "_ratio")] = (
                statistics.median(t / t0 for t, t0 in zip(times, base, strict=True))
                if times
                else None
            )
        rows.append(row)
    return rows


def benchmark(threads: int, channels: int, repeats: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rows = [
        row for b, k, l, train in SHAPES for row in _time_shape(b, k, l, train, channels, repeats)
    ]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch "
        f"{torch.__version__}",
        "command": "python pipelines/benchmarks/network_options_speed.py "
        f"--threads {threads} --channels {channels} --repeats {repeats}",
        "channels": channels,
        "options": OPTIONS,
        "rows": rows,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The network's options: cost per training step and forward",
        "",
        f"`{report['command']}` ({report['date']}, {report['machine']}). Own-data network "
        f"({report['channels']} channels, 2 heads, no dropout, both conditioning inputs) with "
        "none of its options, "
        "each alone, and all of them (the own-data defaults); medians, the networks timed "
        "alternately in one process. A ratio is the median over the alternations of the time "
        "over that of the network with none in the same alternation (paired), same shape.",
        "",
        "Options: "
        + "; ".join(
            f"`{name}` = {', '.join(f'{k}={v}' for k, v in opts.items()) or 'none'}"
            for name, opts in report["options"].items()
        )
        + ".",
        "",
        "| batch | K | L | options | step (ms) | ratio | forward fp32 (ms) | ratio "
        "| forward bf16 (ms) | ratio |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        cells = " | ".join(
            "— | —"
            if row[timing] is None
            else f"{row[timing]:.1f} | {row[timing.replace('_ms', '_ratio')]:.2f}"
            for timing in TIMINGS
        )
        lines.append(f"| {row['batch']} | {row['K']} | {row['L']} | {row['options']} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=32, help="the own-data defaults' 32")
    parser.add_argument("--repeats", type=int, default=5, help="alternations per shape")
    parser.add_argument("--output-dir", type=Path, default=Path("reports") / "performance")
    args = parser.parse_args()
    report = benchmark(args.threads, args.channels, args.repeats)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "network_options.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.output_dir / "network_options.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
