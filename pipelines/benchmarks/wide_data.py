"""Wide data: peak memory and time per training step and per sample with hundreds of features.

On a synthetic set of K features (default 300) × L steps, each case runs in a fresh Python
process (so the process's peak resident memory, `resource.getrusage().ru_maxrss`, belongs to
that case alone; on CUDA `torch.cuda.max_memory_allocated` is reported too) and times
  - a training step (random mask, `dsm_simple` objective, backward, Adam step) at batch B, with
    full attention across features, attention within random feature groups (`feature_subset`),
    and linear attention across features;
  - sampling S samples of B windows with the ancestral sampler (`csdi.inference.sample_windows`),
    all samples in one batch or chunked to `chunk_size` rows per network call.

    .venv/bin/python pipelines/benchmarks/wide_data.py [--features 300] [--quick]

writes reports/performance/wide_data.json and .md. With `--scaling` it sweeps K (L = 48) and L
(K = 8) instead, with full attention and the option meant to keep the cost near-linear (feature
groups of 32 across K), and writes reports/performance/scaling.json and .md; the
"µs per entry" column (seconds / (B·K·L), per network evaluation for sampling) is flat where the
cost is linear in K·L.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPORT = Path("reports/performance")


@dataclass(frozen=True)
class Case:
    """One measurement: `kind` train | sample, and the settings that change memory and time."""

    name: str
    kind: str
    features: int
    length: int
    batch: int
    feature_subset: int | None = None
    attention: str = "full"
    n_samples: int = 0
    steps: int = 0
    chunk_size: int | None = None
    repeats: int = 3


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _synthetic(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(B, L, K) smooth values with 20 % missing: random-walk factors mixed into K features."""
    factors = rng.standard_normal((case.batch, case.length, 8)).cumsum(axis=1) / 4.0
    values = factors @ rng.standard_normal((8, case.features)) / 3.0  # (B, L, K)
    observed = rng.random(values.shape) > 0.2
    return values.astype(np.float32), observed


def run_case(case: Case, device: torch.device) -> dict[str, Any]:
    """Time and memory of one case in this process."""
    from csdi.config import SamplingConfig
    from csdi.data.masking import random_mask
    from csdi.diffusion.conditioning import Conditioning
    from csdi.diffusion.losses import get_objective
    from csdi.diffusion.schedule import get_schedule
    from csdi.inference import sample_windows
    from csdi.nn.score_network import NetworkConfig, ScoreNetwork

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    values, observed = _synthetic(case, rng)
    network = ScoreNetwork(
        NetworkConfig(
            n_features=case.features,
            feature_subset=case.feature_subset,
            attention=case.attention,  # type: ignore[arg-type]
        )
    ).to(device)
    schedule = get_schedule("csdi_quad").to(device)
    rss_before = _peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    if case.kind == "train":
        objective = get_objective("dsm_simple")
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        generator = torch.Generator(device=device).manual_seed(0)
        x0 = torch.from_numpy(values.transpose(0, 2, 1)).to(device)  # (B, K, L)
        obs = torch.from_numpy(observed.transpose(0, 2, 1).astype(np.float32)).to(device)
        stamps = torch.arange(case.length, dtype=torch.float32, device=device).expand(
            case.batch, -1
        )
        network.train()
        for _ in range(case.repeats + 1):  # the first step warms up
            start = time.perf_counter()
            cond_mask = random_mask(obs, generator)
            cond = Conditioning(x=x0 * cond_mask, mask=cond_mask, timestamps=stamps)
            loss = objective(
                network, x0, cond, obs * (1 - cond_mask), schedule, generator=generator
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        per = statistics.median(times[1:])
        unit = "s per training step"
    else:
        cfg = SamplingConfig(n_samples=case.n_samples, steps=case.steps, chunk_size=case.chunk_size)
        stamps_np = np.broadcast_to(
            np.arange(case.length, dtype=np.float32), (case.batch, case.length)
        ).copy()
        for _ in range(case.repeats):
            res = sample_windows(network, schedule, values, observed, stamps_np, cfg, device)
            times.append(res.seconds)
        per = statistics.median(times) / (case.batch * case.n_samples)
        unit = "s per sample (one window, all steps)"
    out = {
        **asdict(case),
        "seconds": per,
        "unit": unit,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_mib": rss_before,
        "parameters": sum(p.numel() for p in network.parameters()),
        "device": str(device),
    }
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def cases(features: int, quick: bool) -> list[Case]:
    length, batch = 24, 4
    steps, samples = (5, 8) if quick else (20, 16)
    train = Case("train", "train", features, length, batch)
    sample = Case("sample", "sample", features, length, 2, n_samples=samples, steps=steps)
    return [
        replace(train, name="train, full attention"),
        replace(train, name="train, feature_subset 64", feature_subset=64),
        replace(train, name="train, linear attention", attention="linear"),
        replace(sample, name=f"sample {samples}, one batch"),
        replace(sample, name=f"sample {samples}, chunk 4 rows", chunk_size=4),
        replace(sample, name=f"sample {samples}, linear attention", attention="linear"),
    ]


def scaling_cases(quick: bool) -> list[Case]:
    """K = 16 … 512 at L = 48 and L = 48 … 384 at K = 8: a training step and sampling each."""
    batch, steps, samples = 4, 5, 4
    sizes_k = (16, 64, 256) if quick else (16, 64, 256, 512)
    sizes_l = (48, 192) if quick else (48, 96, 192, 384)
    out = []
    for k in sizes_k:
        train = Case(f"train K={k}", "train", k, 48, batch, repeats=2)
        out.append(train)
        if k > 32:
            out.append(replace(train, name=f"train K={k}, groups of 32", feature_subset=32))
        out.append(Case(f"sample K={k}", "sample", k, 48, 1, n_samples=samples, steps=steps))
    for length in sizes_l:
        out.append(Case(f"train L={length}", "train", 8, length, batch, repeats=2))
        out.append(
            Case(f"sample L={length}", "sample", 8, length, 1, n_samples=samples, steps=steps)
        )
    return out


def _per_entry_us(r: dict[str, Any]) -> float:
    """Seconds per entry of the state: train step / (B·K·L), sample / (K·L·steps)."""
    entries = r["features"] * r["length"]
    if r["kind"] == "train":
        return 1e6 * r["seconds"] / (r["batch"] * entries)
    return 1e6 * r["seconds"] / (entries * r["steps"])


def _markdown(results: list[dict[str, Any]], command: str, title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "Each row ran in its own process; peak RSS is that process's peak resident memory "
        "(model, data and Python included; 'before' is after building the network).",
        "",
        "| case | K | L | B | seconds | unit | µs per entry | peak RSS MiB | before MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['features']} | {r['length']} | {r['batch']} | "
            f"{r['seconds']:.4f} | {r['unit']} | {_per_entry_us(r):.1f} | "
            f"{r['peak_rss_mib']:.0f} | {r['rss_before_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="fewer sampler steps and samples")
    parser.add_argument("--scaling", action="store_true", help="sweep K and L instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case (JSON)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.one is not None:
        print(json.dumps(run_case(Case(**json.loads(args.one)), device)))
        return
    results = []
    todo = scaling_cases(args.quick) if args.scaling else cases(args.features, args.quick)
    name, title = ("scaling", "Scaling in K and L") if args.scaling else ("wide_data", "Wide data")
    for case in todo:
        proc = subprocess.run(
            [sys.executable, __file__, "--device", args.device, "--one", json.dumps(asdict(case))],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(
            f"{case.name}: {results[-1]['seconds']:.4f} {results[-1]['unit']}, "
            f"peak RSS {results[-1]['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    command = " ".join([Path(sys.executable).name, *sys.argv])
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{name}.json").write_text(
        json.dumps({"command": command, "results": results}, indent=2) + "\n"
    )
    markdown = _markdown(results, command, f"{title}: memory and time")
    (args.output / f"{name}.md").write_text(markdown)


if __name__ == "__main__":
    main()
