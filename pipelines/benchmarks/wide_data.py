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

writes reports/performance/wide_data.json and .md.
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


def _markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Wide data: memory and time",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "Each row ran in its own process; peak RSS is that process's peak resident memory "
        "(model, data and Python included; 'before' is after building the network).",
        "",
        "| case | K | L | B | seconds | unit | peak RSS MiB | before MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['features']} | {r['length']} | {r['batch']} | "
            f"{r['seconds']:.4f} | {r['unit']} | {r['peak_rss_mib']:.0f} | "
            f"{r['rss_before_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="fewer sampler steps and samples")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case (JSON)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.one is not None:
        print(json.dumps(run_case(Case(**json.loads(args.one)), device)))
        return
    results = []
    for case in cases(args.features, args.quick):
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
    (args.output / "wide_data.json").write_text(
        json.dumps({"command": command, "results": results}, indent=2) + "\n"
    )
    (args.output / "wide_data.md").write_text(_markdown(results, command))


if __name__ == "__main__":
    main()
