"""The CPU sampler's levers: glibc keeping freed memory, the softmax of short attention rows
spelt out, and the gate's tanh written with sigmoids.

Times `csdi.inference.sample_windows` — the whole sampler, as `csdi impute` runs it — on the
own-data network (`own_data_config()`, freshly initialised: its cost does not depend on its
weights) for the issue's sensor file: 41 windows of 48 rows × 11 features (1 464 rows at the
3/4 stitching stride), 30 samples, the defaults' sampler and precision. Each variant runs in a
process of its own (malloc's state is per process), in alternation, `--repeats` times:

- malloc "default" or "kept" (`csdi.allocator.keep_freed_memory`, which every `csdi` command
  calls);
- softmax "fused" (`torch.softmax` on the feature attention's rows of 11) or "spelt"
  (amax, exp, sum: `csdi.nn.transformer.SOFTMAX_VECTOR`);
- gate "tanh" (σ(g)·tanh(f), as written before) or "sigmoid" (2·σ(g)·σ(2f) − σ(g):
  `csdi.nn.score_network.gated_activation`).

Writes reports/performance/sampler_cpu.{json,md}: the median wall seconds of the sampler, and
the median system seconds of its process (page faults and the kernel's zeroing of fresh pages).
A lever of a few per cent is lost in the noise of whole runs on a shared machine, so the gate is
also timed per network call, in one process: the two gates in alternation on the same inputs
(one batch of the sampler: 120 rows of 48 × 11, no grad, the sampler's precision), and the
median of the paired ratios.

    python pipelines/benchmarks/sampler_cpu.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunk_size import add_workload_options, sensor_windows
from record import command_line, write_record

import csdi.nn.score_network as score_network
import csdi.nn.transformer as transformer
from csdi.allocator import keep_freed_memory
from csdi.config import own_data_config
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.schedule import get_schedule
from csdi.inference import sample_windows
from csdi.nn.precision import network_precision, resolve_precision
from csdi.nn.score_network import NetworkConfig, ScoreNetwork

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "performance" / "sampler_cpu"
#: (malloc, softmax, gate): before any lever, the tenth session's two, and all three
VARIANTS = [("default", "fused", "tanh"), ("kept", "spelt", "tanh"), ("kept", "spelt", "sigmoid")]


def tanh_gate(gate: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """The gate as CSDI writes it, σ(g)·tanh(f): the "tanh" variant."""
    return torch.sigmoid(gate) * torch.tanh(filt)


def sample_once(threads: int, features: int, windows: int, samples: int) -> float:
    """Seconds of one whole sampler run on random windows (N, L, K), 20 % of entries to impute."""
    torch.set_num_threads(threads)
    config = own_data_config()
    length = config.data.window
    network = ScoreNetwork(NetworkConfig(n_features=features, **dataclasses.asdict(config.model)))
    values, cond_mask, stamps = sensor_windows(windows, length, features)
    cfg = dataclasses.replace(config.sampling, n_samples=samples)
    schedule = get_schedule(config.diffusion.schedule)
    result = sample_windows(network, schedule, values, cond_mask, stamps, cfg, torch.device("cpu"))
    return result.seconds


def gate_per_call(threads: int, features: int, rows: int, repeats: int) -> dict[str, float]:
    """Median ms of one no-grad network call with each gate, alternating on the same inputs
    (rows × 48 × features), and the median of the paired ratios sigmoid / tanh."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    config = own_data_config()
    network = ScoreNetwork(NetworkConfig(n_features=features, **dataclasses.asdict(config.model)))
    network.eval()
    g = torch.Generator().manual_seed(0)
    shape = (rows, features, config.data.window)
    x = torch.randn(shape, generator=g)
    mask = (torch.rand(shape, generator=g) > 0.2).float()
    cond, t = Conditioning(x=x * mask, mask=mask), torch.full((rows,), 0.5)
    cpu = torch.device("cpu")
    gates = {"tanh": tanh_gate, "sigmoid": score_network.gated_activation}
    times: dict[str, list[float]] = {name: [] for name in gates}
    with torch.no_grad(), network_precision(resolve_precision(config.sampling.precision, cpu), cpu):
        for i in range(repeats + 1):  # the first round warms up
            for name, gate in gates.items():
                score_network.gated_activation = gate
                start = time.perf_counter()
                network(x, t, cond)
                if i:
                    times[name].append(time.perf_counter() - start)
    score_network.gated_activation = gates["sigmoid"]
    ratios = [a / b for a, b in zip(times["sigmoid"], times["tanh"], strict=True)]
    return {
        "tanh_ms": 1e3 * statistics.median(times["tanh"]),
        "sigmoid_ms": 1e3 * statistics.median(times["sigmoid"]),
        "paired_ratio": statistics.median(ratios),
        "repeats": repeats,
        "rows": rows,
    }


def child(args: argparse.Namespace) -> None:
    if args.malloc == "kept" and not keep_freed_memory():
        raise SystemExit("this C library has no glibc mallopt")
    if args.softmax == "fused":
        transformer.SOFTMAX_VECTOR = 0  # every row through torch.softmax, as before
    if args.gate == "tanh":
        score_network.gated_activation = tanh_gate
    seconds = sample_once(args.threads, args.features, args.windows, args.samples)
    print(json.dumps({"seconds": seconds}))


def timed_child(
    args: argparse.Namespace, malloc: str, softmax: str, gate: str
) -> tuple[float, float]:
    """(sampler seconds, system seconds of the child process) of one child run."""
    argv = [sys.executable, __file__, "--child", "--malloc", malloc, "--softmax", softmax]
    argv += ["--gate", gate]
    argv += ["--threads", str(args.threads), "--features", str(args.features)]
    argv += ["--windows", str(args.windows), "--samples", str(args.samples)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    system = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - before
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"]), system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_options(p)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--malloc", choices=["default", "kept"], default="kept")
    p.add_argument("--softmax", choices=["fused", "spelt"], default="spelt")
    p.add_argument("--gate", choices=["tanh", "sigmoid"], default="sigmoid")
    p.add_argument("--call-repeats", type=int, default=40, help="paired calls per gate")
    args = p.parse_args()
    if args.child:
        child(args)
        return
    times: dict[tuple[str, str, str], list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            seconds, system = timed_child(args, *variant)
            times[variant].append((seconds, system))
            print(f"malloc, softmax, gate {variant}: {seconds:.1f} s ({system:.1f} s system)")
    base = statistics.median(s for s, _ in times[VARIANTS[0]])
    rows: list[dict[str, Any]] = []
    for (malloc, softmax, gate), runs in times.items():
        seconds = statistics.median(s for s, _ in runs)
        rows.append(
            {
                "malloc": malloc,
                "softmax": softmax,
                "gate": gate,
                "seconds": seconds,
                "system_seconds": statistics.median(y for _, y in runs),
                "speed_up": base / seconds,
                "all_seconds": [s for s, _ in runs],
            }
        )
    per_call = gate_per_call(args.threads, args.features, 120, args.call_repeats)
    machine = f"{platform.machine()}, {args.threads} thread(s), torch {torch.__version__}"
    command = command_line(__file__)
    lines = [
        "# The CPU sampler: freed memory kept, the short softmax spelt out, the gate's tanh",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}; {machine}. The whole sampler on "
        f"{args.windows} windows of 48 rows × {args.features} features, {args.samples} samples "
        "(DPM-Solver++ 10 steps, log-SNR grid, bf16 where native), each variant in a process of "
        f"its own, in alternation, {args.repeats} times; medians. `kept` + `spelt` + "
        "`sigmoid` is what `csdi impute` runs.",
        "",
        "| malloc | softmax of rows of 11 | gate | sampler s | system s | speed-up |",
        "|---|---|---|---:|---:|---:|",
        *[
            f"| {r['malloc']} | {r['softmax']} | {r['gate']} | {r['seconds']:.1f} | "
            f"{r['system_seconds']:.1f} | {r['speed_up']:.2f}× |"
            for r in rows
        ],
        "",
        f"One network call on {per_call['rows']} rows, the gates in alternation, "
        f"{per_call['repeats']} pairs: tanh {per_call['tanh_ms']:.0f} ms, sigmoid "
        f"{per_call['sigmoid_ms']:.0f} ms; median paired ratio sigmoid / tanh "
        f"{per_call['paired_ratio']:.3f}.",
    ]
    write_record(REPORT, command, machine, {"sampler": rows, "gate_per_call": per_call}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
