"""What the convolution along time (`model.temporal_kernel`) costs per training step and forward.

Times, in one process, the own-data network (2 heads, no dropout, both conditioning inputs)
with `temporal_kernel` 0 and 5 at the shapes of the own-data sets (K = 6, L = 48 and 24, batch
16 and 32) and at PhysioNet's (K = 35, L = 48, batch 16): the median of a training step
(forward, masked ε-MSE, backward, Adam step) and of a no-grad forward, alternating the two
networks so that a change in the machine's speed hits both.

    .venv/bin/python pipelines/benchmarks/temporal_conv_speed.py --threads 2

writes reports/performance/temporal_conv.json and .md.
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

SHAPES = ((16, 6, 48), (32, 6, 24), (16, 35, 48))  # (B, K, L)
KERNELS = (0, 5)


def _network(k: int, kernel: int) -> ScoreNetwork:
    torch.manual_seed(0)
    config = NetworkConfig(
        n_features=k, n_heads=2, dropout=0.0, cond_input="both", temporal_kernel=kernel
    )
    return ScoreNetwork(config)


def benchmark(threads: int, repeats: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rows = []
    for b, k, l in SHAPES:
        batch = make_batch(b, k, l, torch.Generator().manual_seed(0))
        nets = {kernel: _network(k, kernel) for kernel in KERNELS}
        steps = {kernel: training_step(net, batch) for kernel, net in nets.items()}
        step_s: dict[int, list[float]] = {kernel: [] for kernel in KERNELS}
        forward_s: dict[int, list[float]] = {kernel: [] for kernel in KERNELS}
        for _ in range(repeats):  # alternate, so drifts in machine speed hit both
            for kernel, net in nets.items():
                step_s[kernel].append(median_seconds(steps[kernel], warmup=1, repeats=3))

                def forward(net: ScoreNetwork = net, batch: Batch = batch) -> None:
                    with torch.no_grad():
                        net(batch.z, batch.t, batch.cond)

                net.eval()
                forward_s[kernel].append(median_seconds(forward, warmup=1, repeats=3))
                net.train()
        for kernel in KERNELS:
            rows.append(
                {
                    "batch": b,
                    "K": k,
                    "L": l,
                    "temporal_kernel": kernel,
                    "step_ms": 1000 * statistics.median(step_s[kernel]),
                    "forward_ms": 1000 * statistics.median(forward_s[kernel]),
                }
            )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch "
        f"{torch.__version__}",
        "command": "python pipelines/benchmarks/temporal_conv_speed.py "
        f"--threads {threads} --repeats {repeats}",
        "rows": rows,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The convolution along time: cost per training step and forward",
        "",
        f"`{report['command']}` ({report['date']}, {report['machine']}). Own-data network "
        "(2 heads, no dropout, both conditioning inputs), medians; the two networks timed "
        "alternately in one process.",
        "",
        "| batch | K | L | step, none (ms) | step, width 5 (ms) | ratio "
        "| forward, none (ms) | forward, width 5 (ms) | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = report["rows"]
    for none, conv in zip(rows[::2], rows[1::2], strict=True):
        lines.append(
            f"| {none['batch']} | {none['K']} | {none['L']} | {none['step_ms']:.1f} "
            f"| {conv['step_ms']:.1f} | {conv['step_ms'] / none['step_ms']:.2f} "
            f"| {none['forward_ms']:.1f} | {conv['forward_ms']:.1f} "
            f"| {conv['forward_ms'] / none['forward_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="alternations per shape")
    parser.add_argument("--output-dir", type=Path, default=Path("reports") / "performance")
    args = parser.parse_args()
    report = benchmark(args.threads, args.repeats)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "temporal_conv.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.output_dir / "temporal_conv.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
