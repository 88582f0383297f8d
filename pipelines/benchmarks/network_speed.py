"""CPU speed of the score network: ours against the eager CSDI reference, in the same run.

At CSDI's reference configuration (batch 16, K = 35, L = 48, 4 layers, 64 channels) this times
the median of
  - a training step (forward + masked ε-MSE + backward + Adam step), and
  - a no-grad forward,
for (a) `CSDIReference` (nn.TransformerEncoderLayer, Conv1d, side information rebuilt on every
call: the CSDI way) and (b) `ScoreNetwork` (fused attention, channel-last, factored side
information), plus torch.compile and bf16-autocast variants of (b) with their largest absolute
output difference from fp32 eager; then the no-grad forward per window at chunk sizes 16…160,
and FLOPs by `torch.utils.flop_counter.FlopCounterMode` → achieved GFLOP/s.

    .venv/bin/python pipelines/benchmarks/network_speed.py --quick

writes reports/performance/network_speed.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from csdi.diffusion.conditioning import Conditioning
from csdi.nn.reference import reference_from
from csdi.nn.score_network import NetworkConfig, ScoreNetwork

log = logging.getLogger("network_speed")


def _cpu_sdpa_flops(q: torch.Size, k: torch.Size, v: torch.Size, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(q, k, v)


def _cpu_sdpa_backward_flops(
    grad_out: torch.Size, q: torch.Size, k: torch.Size, v: torch.Size, *args: Any, **kwargs: Any
) -> int:
    return sdpa_backward_flop_count(grad_out, q, k, v)


# FlopCounterMode has no formula for the CPU flash-attention kernels; count them as the CUDA
# ones (QKᵀ and AV forward, five matmuls backward).
_CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


@dataclass(frozen=True)
class Batch:
    z: Tensor  # (B, K, L)
    t: Tensor  # (B,)
    cond: Conditioning
    eps: Tensor  # (B, K, L) regression target
    target: Tensor  # (B, K, L) 1 where the loss is taken


def make_batch(b: int, k: int, l: int, generator: torch.Generator) -> Batch:
    """Random windows with ~10 % conditioning entries and hourly time stamps."""
    x = torch.randn(b, k, l, generator=generator)
    mask = (torch.rand(b, k, l, generator=generator) < 0.1).float()
    cond = Conditioning(
        x=x, mask=mask, timestamps=torch.arange(l, dtype=torch.float32).expand(b, l)
    )
    eps = torch.randn(b, k, l, generator=generator)
    t = torch.rand(b, generator=generator)
    return Batch(
        z=torch.randn(b, k, l, generator=generator), t=t, cond=cond, eps=eps, target=1 - mask
    )


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_SDPA_FLOPS)
    with counter:
        fn()
    return counter.get_total_flops()


def _autocast(bf16: bool) -> AbstractContextManager[Any]:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def training_step(model: nn.Module, batch: Batch, bf16: bool = False) -> Callable[[], None]:
    """Forward, masked ε-MSE over target entries, backward, Adam step (CSDI's lr and decay)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)

    def step() -> None:
        with _autocast(bf16):
            out = model(batch.z, batch.t, batch.cond)
        loss = ((out.float() - batch.eps) ** 2 * batch.target).sum() / batch.target.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def no_grad_forward(
    model: nn.Module, batch: Batch, bf16: bool = False, cached: bool = False
) -> Callable[[], Tensor]:
    model.eval()
    predict: Callable[[Tensor, Tensor, Conditioning], Tensor] = model
    if cached:
        predict = model.cached()  # type: ignore[operator]

    def forward() -> Tensor:
        with torch.no_grad(), _autocast(bf16):
            return predict(batch.z, batch.t, batch.cond).float()

    return forward


@dataclass
class Row:
    variant: str
    train_step_ms: float | None = None
    forward_ms: float | None = None
    train_gflops_per_s: float | None = None
    forward_gflops_per_s: float | None = None
    max_abs_diff_vs_fp32: float | None = None
    compile_s: float | None = None
    error: str | None = None


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    warmup, repeats = (1, 3) if args.quick else (5, 30)
    k, l, b = 35, 48, 16
    config = NetworkConfig(n_features=k)
    torch.manual_seed(0)  # nn.Module initialisation draws from the global RNG
    ours = ScoreNetwork(config)
    # the zero-initialised output layer would make every output 0 and every difference vacuous
    nn.init.kaiming_normal_(ours.output_projection.weight)
    reference = reference_from(ours)
    batch = make_batch(b, k, l, torch.Generator().manual_seed(1))
    fp32_out = no_grad_forward(ours, batch)()
    scale = float(fp32_out.abs().max())

    def flops(model: nn.Module, cached: bool = False) -> tuple[int, int]:
        """(no-grad forward, training step) FLOPs, counted on the eager fp32 model."""
        return (
            count_flops(no_grad_forward(model, batch, cached=cached)),
            count_flops(training_step(copy.deepcopy(model), batch)),
        )

    def measure(
        name: str,
        model: nn.Module,
        counts: tuple[int, int],
        train_model: nn.Module | None = None,
        bf16: bool = False,
        cached: bool = False,
    ) -> Row:
        log.info("measuring %s", name)
        row = Row(name)
        forward = no_grad_forward(model, batch, bf16, cached)
        row.max_abs_diff_vs_fp32 = float((forward() - fp32_out).abs().max())
        row.forward_ms = 1e3 * median_seconds(forward, warmup, repeats)
        row.forward_gflops_per_s = counts[0] / (row.forward_ms * 1e6)
        if train_model is not None:
            step = training_step(train_model, batch, bf16)
            row.train_step_ms = 1e3 * median_seconds(step, warmup, repeats)
            row.train_gflops_per_s = counts[1] / (row.train_step_ms * 1e6)
        return row

    log.info("counting FLOPs")
    ref_flops, our_flops = flops(reference), flops(ours)
    rows = [
        measure("reference eager (CSDI)", reference, ref_flops, copy.deepcopy(reference)),
        measure("ours eager", ours, our_flops, copy.deepcopy(ours)),
        measure("ours eager, cond cache", ours, flops(ours, cached=True), cached=True),
        measure("ours bf16 autocast", ours, our_flops, copy.deepcopy(ours), bf16=True),
    ]
    # the training-budget "fast" recipe's network: another function (2 heads of width 32, no
    # dropout), so its output is not compared with the fp32 reference
    fast_config = replace(config, n_heads=2, dropout=0.0)
    fast = ScoreNetwork(fast_config)
    nn.init.kaiming_normal_(fast.output_projection.weight)
    fast_flops = flops(fast)
    for name, bf16 in (("ours fast config (2 heads, no dropout)", False), ("… bf16", True)):
        row = measure(name, fast, fast_flops, copy.deepcopy(fast), bf16=bf16)
        row.max_abs_diff_vs_fp32 = None
        rows.append(row)
    # the "fast_c32" recipe's network: the fast config with half the channels
    narrow = ScoreNetwork(replace(fast_config, channels=32))
    nn.init.kaiming_normal_(narrow.output_projection.weight)
    row = measure("ours fast config, 32 channels", narrow, flops(narrow), copy.deepcopy(narrow))
    row.max_abs_diff_vs_fp32 = None
    rows.append(row)
    if not args.no_compile:
        for name, net, net_flops in (
            ("ours torch.compile", ours, our_flops),
            ("… fast config, torch.compile", fast, fast_flops),
        ):
            row = Row(name)
            try:
                log.info("compiling %s", name)
                compiled = cast(nn.Module, torch.compile(copy.deepcopy(net)))
                start = time.perf_counter()
                no_grad_forward(compiled, batch)()
                training_step(compiled, batch)()
                compile_s = time.perf_counter() - start
                # the training steps move the weights: compare the forward before them
                compiled_eval = cast(nn.Module, torch.compile(net))
                row = measure(name, compiled_eval, net_flops, compiled)
                row.compile_s = compile_s
            except Exception as exc:  # report any backend failure instead of aborting the run
                row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if net is fast:
                row.max_abs_diff_vs_fp32 = None  # another function than the reference's
            rows.append(row)

    chunks = []
    chunk_repeats = 1 if args.quick else 10
    for size in (16, 32, 64, 128, 160):
        chunk = make_batch(size, k, l, torch.Generator().manual_seed(2))
        log.info("chunk %d", size)
        entry: dict[str, Any] = {"chunk": size}
        for name, model, cached in (("reference", reference, False), ("ours_cached", ours, True)):
            seconds = median_seconds(no_grad_forward(model, chunk, cached=cached), 1, chunk_repeats)
            entry[f"{name}_ms_per_window"] = 1e3 * seconds / size
        chunks.append(entry)

    return {
        "flops": {"reference": ref_flops, "ours": our_flops},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
        },
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": asdict(config),
        "batch": b,
        "length": l,
        "warmup": warmup,
        "repeats": repeats,
        "chunk_repeats": chunk_repeats,
        "n_parameters": sum(p.numel() for p in ours.parameters()),
        "output_max_abs_fp32": scale,
        "results": [asdict(r) for r in rows],
        "chunks": chunks,
    }


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Score network speed (CPU)",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; torch {report['torch']}; {report['threads']} threads; "
        f"{m['platform']}, {m['cpu_count']} CPUs (1-min load average at the end: "
        f"{m['load_average_1min_at_end']:.1f}).  ",
        f"Batch {report['batch']}, K = {report['config']['n_features']}, L = {report['length']}, "
        f"{report['config']['n_layers']} layers, {report['config']['channels']} channels, "
        f"{report['n_parameters']} parameters; median of {report['repeats']} after "
        f"{report['warmup']} warm-up runs. "
        f"Output scale max|ε̂| = {report['output_max_abs_fp32']:.2f}.",
        "",
        "| variant | train step ms | forward ms | train GFLOP/s | forward GFLOP/s "
        "| max abs diff vs fp32 | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if r["error"]:
            lines.append(f"| {r['variant']} | failed: {r['error']} ||||||")
            continue
        lines.append(
            f"| {r['variant']} | {_fmt(r['train_step_ms'])} | {_fmt(r['forward_ms'])} "
            f"| {_fmt(r['train_gflops_per_s'])} | {_fmt(r['forward_gflops_per_s'])} "
            f"| {_fmt(r['max_abs_diff_vs_fp32'], '.2e')} | {_fmt(r['compile_s'])} |"
        )
    lines += [
        "",
        "No-grad forward, milliseconds per window:",
        "",
        "| chunk | reference | ours (cond cache) | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    for c in report["chunks"]:
        ref, ours = c["reference_ms_per_window"], c["ours_cached_ms_per_window"]
        lines.append(f"| {c['chunk']} | {ref:.2f} | {ours:.2f} | {ref / ours:.2f}× |")
    lines += [
        "",
        "FLOPs from `FlopCounterMode` (matmuls, convolutions and attention; the CPU "
        "flash-attention kernels counted with PyTorch's SDPA formulas). Ours does fewer FLOPs "
        "than the reference for the same function: the side-information projection is factored "
        "into time, feature and mask parts.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 warm-up run and 3 repeats (chunks: 1 repeat)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--output-dir", type=Path, default=Path("reports") / "performance")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = benchmark(args)
    markdown = to_markdown(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "network_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output_dir / "network_speed.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
