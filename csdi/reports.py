"""Reports from results records: a Markdown file and a self-contained HTML page with plots.

`build_report` turns the records of ``reports/<benchmark>/results.json`` (`csdi.results`) into
``report.md`` (with PNG files beside it) and ``report.html`` (the same PNGs inlined as base64, no
external asset). Per protocol, a table method × metric gives the mean ± sample std (ddof 1) over
seeds; a rerun with the same seed replaces the earlier record of that configuration. The best
value of each column is marked: the lowest, except for ``coverage_X`` where the closest to the
nominal X % is best. Published figures appear in a separate, labelled row with their source and
are never marked best.

Plots: CRPS against missing ratio by method; calibration (nominal against empirical coverage of
the central 50 % and 90 % intervals, and a PIT histogram when samples are supplied); CRPS against
sampler steps and wall time when a method was evaluated with several step counts; imputed windows
with 50 %/90 % bands against the truth when a samples ``.npz`` (`load_window_samples`) is given.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csdi.checkpoint import write_text_atomic

#: Table columns in order; crps_sum only for forecasting protocols (those with a horizon).
METRIC_COLUMNS: tuple[str, ...] = (
    "crps",
    "crps_exact",
    "crps_sum",
    "mae",
    "rmse",
    "nrmse",
    "coverage_50",
    "coverage_90",
    "energy_score",
    "nelbo",  # −ELBO of the held-out values, nats per value (model records that carry one)
)
#: Nominal level of each coverage column: best is the closest to it.
NOMINAL: dict[str, float] = {"coverage_50": 0.5, "coverage_90": 0.9}
SAMPLE_KEYS = ("samples", "values", "cond", "targets", "feature_names", "method")


class ReportError(ValueError):
    """Records or sample files a report cannot be built from."""


@dataclass(frozen=True)
class Reference:
    """Published figures for one protocol: shown in their own row, never marked best."""

    label: str
    source: str
    protocol: dict[str, Any]  # matched against a section's protocol (these keys only)
    metrics: dict[str, float]


_CSDI_PAPER = (
    "CSDI paper, Tashiro et al. 2021 (NeurIPS), PhysioNet tables; "
    "as quoted, to be checked against the paper"
)
PHYSIONET_REFERENCES: tuple[Reference, ...] = (
    *(
        Reference("CSDI (published)", _CSDI_PAPER, {"missing_ratio": r}, {"crps": c, "mae": m})
        for r, c, m in ((0.1, 0.238, 0.217), (0.5, 0.330, 0.301), (0.9, 0.522, 0.481))
    ),
    Reference(
        "CSDI pretrained checkpoint",
        "the reference implementation's own PhysioNet 10 % checkpoint on these 80 windows "
        "(fold0_test[:80]), 20 samples of its 50-step sampler: CRPS 0.2343, MAE 0.2157, RMSE "
        "0.4929 (tests/fixtures/README.md)",
        {"missing_ratio": 0.1, "n_windows": 80},
        {"crps": 0.2343, "mae": 0.2157, "rmse": 0.4929},
    ),
)


PM25_REFERENCES = (
    Reference(
        "CSDI (published)",
        "CSDI paper, Tashiro et al. 2021, air-quality tables (CRPS 0.108 ± 0.001, MAE 9.60 ± "
        "0.04, 100 samples); as quoted, to be checked against the paper",
        {},
        {"crps": 0.108, "mae": 9.60},
    ),
)
_TIMEGRAD_TABLE = (
    "TimeGrad paper, Rasul et al. 2021 (ICML), Table 2, CRPS-sum mean ± std of 10 runs; checked "
    "against a transcription of the table (VES and VAR reach 0.005 there)"
)
EXCHANGE_REFERENCES = (
    Reference("TimeGrad (published)", _TIMEGRAD_TABLE + ": 0.006 ± 0.001", {"horizon": 30},
              {"crps_sum": 0.006}),
    Reference("GP-copula (published)", _TIMEGRAD_TABLE + ": 0.007 ± 0.000", {"horizon": 30},
              {"crps_sum": 0.007}),
)  # fmt: skip


def references_for(benchmark: str) -> tuple[Reference, ...]:
    """The published figures we quote for a benchmark (none for unknown names)."""
    return {
        "physionet": PHYSIONET_REFERENCES,
        "pm25": PM25_REFERENCES,
        "exchange_rate_nips": EXCHANGE_REFERENCES,
    }.get(benchmark, ())


@dataclass(frozen=True)
class Row:
    """One configuration of one method under one protocol, aggregated over seeds."""

    label: str
    method: str
    n_samples: int
    details: str
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float]
    impute_seconds: float | None
    steps: int | None = None


@dataclass
class Section:
    """The rows of one protocol (dataset, units and protocol fields)."""

    dataset: str
    units: str
    protocol: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    @property
    def title(self) -> str:
        fields_ = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.protocol.items())
        return f"{self.dataset}: {fields_} ({self.units} units)"

    @property
    def columns(self) -> list[str]:
        present = {k for r in self.rows for k in r.mean}
        forecast = "horizon" in self.protocol
        return [c for c in METRIC_COLUMNS if c in present and (c != "crps_sum" or forecast)]


def _label(record: dict[str, Any]) -> str:
    if record.get("sampler"):
        return f"{record['method']} ({record['sampler']}, {record['steps']} steps)"
    return str(record["method"])


def _details(record: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted((record.get("options") or {}).items())]
    if record.get("train_windows") is not None:
        parts.append(f"train windows {record['train_windows']}")
    if record.get("eta") is not None:
        parts.append(f"η={record['eta']:g}")
    if record.get("time_grid") not in (None, "uniform"):
        parts.append(f"{record['time_grid']} grid")
    if record.get("epochs") is not None:
        parts.append(f"{record['epochs']} epochs")
    if record.get("train_seconds"):
        parts.append(f"{record['train_seconds'] / 60:.0f} min training")
    if record.get("model_dir"):
        parts.append(f"model {record['model_dir']}")
    if record.get("deterministic"):
        parts.append("point method")
    return ", ".join(parts)


def _check_record(i: int, record: Any) -> None:
    need = ("dataset", "protocol", "method", "metrics", "n_samples", "seed")
    if not isinstance(record, dict) or any(k not in record for k in need):
        raise ReportError(f"record {i} lacks one of the fields {list(need)}")


def summarise(records: Sequence[dict[str, Any]]) -> list[Section]:
    """Group records by protocol, then by (method, sampler, steps, n_samples, details).

    Within a group one record per seed is kept (the last one: a rerun replaces the earlier),
    and the metrics are averaged over seeds with their sample standard deviation (NaN for one
    seed).
    """
    groups: dict[tuple[Any, ...], dict[tuple[Any, ...], dict[int, dict[str, Any]]]] = {}
    heads: dict[tuple[Any, ...], Section] = {}
    for i, rec in enumerate(records):
        _check_record(i, rec)
        protocol = dict(rec["protocol"])
        # protocol values may be lists (PM2.5's test months): key on their JSON text
        pkey = (rec["dataset"], rec.get("units", ""), json.dumps(protocol, sort_keys=True))
        heads.setdefault(pkey, Section(rec["dataset"], rec.get("units", "?"), protocol))
        gkey = (_label(rec), rec["n_samples"], _details(rec))
        groups.setdefault(pkey, {}).setdefault(gkey, {})[int(rec["seed"])] = rec
    sections = []
    for pkey in sorted(heads, key=lambda k: tuple(str(x) for x in k)):
        section = heads[pkey]
        for (label, n_samples, details), by_seed in groups[pkey].items():
            recs = list(by_seed.values())
            names = [k for k in recs[0]["metrics"] if k != "n_targets"]
            table = {k: np.array([float(r["metrics"].get(k, np.nan)) for r in recs]) for k in names}
            if any(r.get("elbo") for r in recs):
                table["nelbo"] = np.array(
                    [r["elbo"]["nats_per_value"] if r.get("elbo") else np.nan for r in recs]
                )
            seconds = [r["impute_seconds"] for r in recs if r.get("impute_seconds") is not None]
            section.rows.append(
                Row(
                    label=label,
                    method=str(recs[0]["method"]),
                    n_samples=int(n_samples),
                    details=details,
                    seeds=tuple(sorted(by_seed)),
                    mean={k: float(np.mean(v)) for k, v in table.items()},
                    std={
                        k: float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
                        for k, v in table.items()
                    },
                    impute_seconds=float(np.mean(seconds)) if seconds else None,
                    steps=recs[0].get("steps"),
                )
            )
        section.rows.sort(key=lambda r: r.mean.get("crps", np.inf))
        sections.append(section)
    return sections


def best_rows(section: Section, column: str) -> set[int]:
    """Indices of the best rows in ``column``: lowest, or closest to the nominal coverage."""
    values = np.array([r.mean.get(column, np.nan) for r in section.rows])
    if column in NOMINAL:
        values = np.abs(values - NOMINAL[column])
    if np.all(np.isnan(values)):
        return set()
    best = np.nanmin(values)
    return {i for i, v in enumerate(values) if np.isfinite(v) and np.isclose(v, best, rtol=1e-9)}


def matching_references(section: Section, references: Sequence[Reference]) -> list[Reference]:
    """References whose protocol fields all equal the section's."""
    return [
        ref
        for ref in references
        if all(
            k in section.protocol and np.isclose(float(section.protocol[k]), float(v))
            for k, v in ref.protocol.items()
        )
    ]


def _decimals(v: float) -> int:
    """Three decimals, or three significant digits below 0.1 (CRPS-sum on exchange ≈ 0.006)."""
    return 3 if abs(v) >= 0.1 or v == 0 else 2 - math.floor(math.log10(abs(v)))


def format_metric(v: float) -> str:
    """A metric as the report tables print it (see `_decimals`)."""
    return f"{v:.{_decimals(v)}f}"


def _cell(row: Row, column: str) -> str:
    m = row.mean.get(column, np.nan)
    if not np.isfinite(m):
        return "–"
    s = row.std.get(column, np.nan)
    d = _decimals(m)  # the spread at the mean's precision
    return f"{m:.{d}f} ± {s:.{d}f}" if np.isfinite(s) else f"{m:.{d}f}"


def _seconds(row: Row) -> str:
    return "–" if row.impute_seconds is None else f"{row.impute_seconds:.1f}"


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def _figure(n_cols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_cols, figsize=(width * n_cols, height), squeeze=False)
    return fig, axes[0]


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def plot_crps_vs_ratio(sections: Sequence[Section], references: Sequence[Reference]) -> Any:
    """CRPS (mean ± std over seeds) against the missing ratio, one line per method."""
    points: dict[str, list[tuple[float, float, float]]] = {}
    for sec in sections:
        if "missing_ratio" not in sec.protocol:
            continue
        for row in sec.rows:
            if "crps" in row.mean:
                points.setdefault(row.label, []).append(
                    (float(sec.protocol["missing_ratio"]), row.mean["crps"], row.std["crps"])
                )
    if len({x for pts in points.values() for x, _, _ in pts}) < 2:
        return None
    fig, (ax,) = _figure()
    for label, pts in sorted(points.items()):
        x, y, e = (np.array(v) for v in zip(*sorted(pts), strict=True))
        ax.errorbar(x, y, yerr=np.nan_to_num(e), marker="o", capsize=3, label=label)
    refs = sorted(
        (float(r.protocol["missing_ratio"]), r.metrics["crps"], r.label)
        for r in references
        if "missing_ratio" in r.protocol and "crps" in r.metrics
    )
    if refs:
        ax.plot(
            [r[0] for r in refs], [r[1] for r in refs], "k--", marker="*", markersize=10,
            label=f"{refs[0][2]} (as quoted)",
        )  # fmt: skip
    ax.set_xlabel("missing ratio (share of observed values held out)")
    ax.set_ylabel("CRPS (normalised quantile loss; lower is better)")
    ax.set_title("CRPS against missing ratio")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def pit_values(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Probability integral transform of each target: P(X < y) + ½ P(X = y) over the samples.

    ``samples`` (N, S, L, K), ``truth`` and ``mask`` (N, L, K). Uniform on [0, 1] for a
    calibrated sampler; ties (point methods, quantised data) split half way.
    """
    xs = np.moveaxis(samples, 1, -1)[mask]  # (M, S)
    y = truth[mask][:, None]  # (M, 1)
    return ((xs < y).mean(axis=1) + 0.5 * (xs == y).mean(axis=1)).astype(np.float64)


def plot_calibration(sections: Sequence[Section], samples: Sequence[dict[str, Any]]) -> Any:
    """Nominal against empirical coverage (50 %, 90 %) per method, and PIT histograms."""
    rows = [(sec, row) for sec in sections for row in sec.rows if "coverage_90" in row.mean]
    if not rows and not samples:
        return None
    fig, axes = _figure(1 + len(samples), width=5.0)
    ax = axes[0]
    ax.plot([0, 1], [0, 1], "k:", label="calibrated")
    labels = sorted({row.label for _, row in rows})
    styles = ["-", "--", ":", "-."]
    for sec, row in rows:
        ratio = sec.protocol.get("missing_ratio")
        ratios = sorted({s.protocol.get("missing_ratio", 0) for s, _ in rows})
        ax.plot(
            [0.5, 0.9],
            [row.mean["coverage_50"], row.mean["coverage_90"]],
            marker="o",
            color=f"C{labels.index(row.label) % 10}",
            linestyle=styles[ratios.index(ratio if ratio is not None else 0) % len(styles)],
            label=row.label if ratio is None else f"{row.label}, ratio {ratio}",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage of the targets")
    ax.set_title("Calibration")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    for ax, data in zip(axes[1:], samples, strict=True):
        pit = pit_values(data["samples"], data["values"], data["targets"])
        # PIT of S samples takes the values j/S (a rank histogram): bins centred on them, each
        # of one rank for S < 20, else 10 bins of ~(S + 1)/10 ranks; uniform height S/(S + 1).
        s = data["samples"].shape[1]
        edges = np.linspace(-0.5, s + 0.5, (s + 1 if s < 20 else 10) + 1) / s
        ax.hist(pit, bins=edges, density=True, color="tab:blue", alpha=0.8)
        ax.axhline(s / (s + 1), color="k", linestyle=":", label="uniform (calibrated)")
        ax.set_xlabel("PIT of the held-out value")
        ax.set_ylabel("density")
        ax.set_title(f"PIT histogram: {data['method']}, S = {data['samples'].shape[1]}")
        ax.legend(fontsize=8)
    return fig


def plot_steps(sections: Sequence[Section]) -> Any:
    """CRPS against sampler steps and against wall time, for methods with several step counts."""
    lines: dict[tuple[str, str], list[tuple[int, float, float | None]]] = {}
    for sec in sections:
        for row in sec.rows:
            if row.steps is not None and "crps" in row.mean:
                key = (row.method, sec.title)
                lines.setdefault(key, []).append((row.steps, row.mean["crps"], row.impute_seconds))
    lines = {k: v for k, v in lines.items() if len({s for s, _, _ in v}) >= 2}
    if not lines:
        return None
    fig, (ax_steps, ax_time) = _figure(2)
    for (method, title), pts in sorted(lines.items()):
        pts.sort()
        label = f"{method}: {title}"
        ax_steps.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        timed = [p for p in pts if p[2] is not None]
        ax_time.plot([p[2] for p in timed], [p[1] for p in timed], marker="o", label=label)
    ax_steps.set_xscale("log")
    ax_steps.set_xlabel("sampler steps")
    ax_time.set_xscale("log")
    ax_time.set_xlabel("imputation wall time (s)")
    for ax in (ax_steps, ax_time):
        ax.set_ylabel("CRPS")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_steps.set_title("CRPS against sampler steps")
    ax_time.set_title("CRPS against wall time")
    return fig


def load_window_samples(path: Path) -> dict[str, Any]:
    """Read a samples file: samples (n, S, L, K), values (n, L, K) with NaN where unobserved,
    cond and targets (n, L, K) bool, feature_names (K,), method; optional timestamps (n, L) and
    units. Written by `csdi.evaluation.save_window_samples`."""
    if not Path(path).is_file():
        raise ReportError(f"samples file not found: {path}")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in SAMPLE_KEYS if k not in f]
        if missing:
            raise ReportError(f"{path}: samples file lacks {missing}")
        data = {k: f[k] for k in f.files}
    x, v = data["samples"], data["values"]
    if x.ndim != 4 or x.shape[:1] + x.shape[2:] != v.shape:
        raise ReportError(f"{path}: samples {x.shape} do not match values {v.shape} (n, S, L, K)")
    data["method"] = str(data["method"])
    data["units"] = str(data.get("units", "data"))
    data["targets"] = data["targets"].astype(bool)
    data["cond"] = data["cond"].astype(bool)
    return data


def plot_windows(data: dict[str, Any], n_panels: int = 4) -> Any:
    """Imputed series with median, 50 % and 90 % bands against the held-out truth.

    Panels are the (window, feature) series with the most held-out targets.
    """
    x, values, targets, cond = data["samples"], data["values"], data["targets"], data["cond"]
    counts = targets.sum(axis=1)  # (n, K) targets per series
    order = np.argsort(counts, axis=None)[::-1][:n_panels]
    picks = [np.unravel_index(i, counts.shape) for i in order if counts.flat[i] > 0]
    if not picks:
        return None
    fig, axes = _figure(len(picks), width=4.5, height=3.2)
    times = data.get("timestamps")
    for ax, (w, k) in zip(axes, picks, strict=True):
        t = np.arange(values.shape[1]) if times is None else times[w]
        q05, q25, q50, q75, q95 = np.quantile(x[w, :, :, k], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(t, q05, q95, color="tab:blue", alpha=0.2, label="90 % band")
        ax.fill_between(t, q25, q75, color="tab:blue", alpha=0.4, label="50 % band")
        ax.plot(t, q50, color="tab:blue", label="median")
        seen = cond[w, :, k]
        ax.plot(t[seen], values[w, seen, k], "k.", label="given")
        held = targets[w, :, k]
        ax.plot(t[held], values[w, held, k], "rx", label="held out (truth)")
        ax.set_title(f"window {w}, {data['feature_names'][k]}", fontsize=9)
        ax.set_xlabel("time")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"value ({data['units']} units)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Imputed windows: {data['method']}, S = {x.shape[1]}")
    return fig


# ---------------------------------------------------------------------------------------------
# Markdown and HTML
# ---------------------------------------------------------------------------------------------

_READING = (
    "Each cell is the mean ± sample standard deviation over seeds (a single number: one seed). "
    "**Bold** marks the best value of a column among our runs: the lowest for every error "
    "metric, the closest to the nominal level for coverage_50 (50 %) and coverage_90 (90 %). "
    "crps is CSDI's normalised quantile loss (19 levels), crps_exact the fair sample CRPS in "
    "the data's units; mae and rmse are of the sample median. Point methods (mean, locf, "
    "linear, knn) give identical samples: their crps is their normalised MAE, and their "
    "coverage counts only exact hits. nelbo is the model's negative ELBO of the held-out values "
    "in nats per value (normalised units; an upper bound on −log-likelihood, lower is better; "
    "point methods have none). Published figures are in their own row, in italics, with "
    "their source, and are never marked best."
)


def _markdown(
    title: str,
    sections: Sequence[Section],
    references: Sequence[Reference],
    figures: Sequence[tuple[str, str]],
    command: str | None,
    producers: Sequence[str],
) -> str:
    out = [f"# {title}", "", f"Regenerate: `{command or 'not recorded'}`", "", _READING, ""]
    for sec in sections:
        cols = sec.columns
        out += [f"## {sec.title}", ""]
        out.append("| method | samples | seeds | " + " | ".join(cols) + " | impute s | details |")
        out.append("|" + "---|" * (len(cols) + 5))
        best = {c: best_rows(sec, c) for c in cols}
        for i, row in enumerate(sec.rows):
            cells = [f"**{_cell(row, c)}**" if i in best[c] else _cell(row, c) for c in cols]
            out.append(
                f"| {row.label} | {row.n_samples} | {len(row.seeds)} | "
                + " | ".join(cells)
                + f" | {_seconds(row)} | {row.details} |"
            )
        for ref in matching_references(sec, references):
            cells = [
                f"*{format_metric(ref.metrics[c])}*" if c in ref.metrics else "–" for c in cols
            ]  # fmt: skip
            out.append(
                f"| *{ref.label}* | – | – | " + " | ".join(cells) + f" | – | *{ref.source}* |"
            )
        out.append("")
    for name, caption in figures:
        out += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    out += ["## Records produced by", ""]
    out += [f"- `{c}`" for c in producers]
    return "\n".join(out) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child,td:last-child{text-align:left}"
    "td.best{font-weight:bold;background:#e6f4e6}tr.reference td{font-style:italic;color:#555}"
    "img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4}"
)


def _html(
    title: str,
    sections: Sequence[Section],
    references: Sequence[Reference],
    figures: Sequence[tuple[bytes, str]],
    command: str | None,
    producers: Sequence[str],
) -> str:
    e = html.escape
    reading = e(_READING).replace("**Bold**", "<b>Bold</b>")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Regenerate: <code>{e(command or 'not recorded')}</code></p>",
        f"<p>{reading}</p>",
    ]
    for sec in sections:
        cols = sec.columns
        best = {c: best_rows(sec, c) for c in cols}
        out.append(f"<h2>{e(sec.title)}</h2>")
        out.append('<table class="results"><thead><tr><th>method</th><th>samples</th>')
        out.append("<th>seeds</th>" + "".join(f"<th>{e(c)}</th>" for c in cols))
        out.append("<th>impute s</th><th>details</th></tr></thead><tbody>")
        for i, row in enumerate(sec.rows):
            cells = "".join(
                f'<td class="best">{e(_cell(row, c))}</td>' if i in best[c] else
                f"<td>{e(_cell(row, c))}</td>"
                for c in cols
            )  # fmt: skip
            out.append(
                f"<tr><td>{e(row.label)}</td><td>{row.n_samples}</td><td>{len(row.seeds)}</td>"
                f"{cells}<td>{_seconds(row)}</td><td>{e(row.details)}</td></tr>"
            )
        for ref in matching_references(sec, references):
            cells = "".join(
                f"<td>{format_metric(ref.metrics[c])}</td>" if c in ref.metrics else "<td>–</td>"
                for c in cols
            )
            out.append(
                f'<tr class="reference"><td>{e(ref.label)}</td><td>–</td><td>–</td>{cells}'
                f"<td>–</td><td>{e(ref.source)}</td></tr>"
            )
        out.append("</tbody></table>")
    for png, caption in figures:
        data = base64.b64encode(png).decode("ascii")
        out.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    out.append("<h2>Records produced by</h2><ul>")
    out += [f"<li><code>{e(c)}</code></li>" for c in producers]
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def build_report(
    records: Sequence[dict[str, Any]],
    *,
    output_dir: Path,
    title: str,
    references: Sequence[Reference] = (),
    samples: Sequence[Path] = (),
    command: str | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html and the PNG plots to ``output_dir``; their paths by name.

    ``samples``: .npz files of imputed windows (`load_window_samples`) for band plots and PIT
    histograms. ``command``: the command that regenerates the report, printed at its top.
    """
    if not records:
        raise ReportError("no results records to report")
    sections = summarise(records)
    window_data = [load_window_samples(Path(p)) for p in samples]
    plots: list[tuple[str, str, Any]] = [
        ("crps_vs_missing_ratio", "CRPS against missing ratio (mean ± std over seeds).",
         plot_crps_vs_ratio(sections, references)),
        ("calibration", "Calibration: nominal against empirical coverage of the central "
         "intervals; PIT histograms of the supplied samples.",
         plot_calibration(sections, window_data)),
        ("crps_vs_steps", "CRPS against sampler steps and against wall time.",
         plot_steps(sections)),
    ]  # fmt: skip
    for i, data in enumerate(window_data):
        plots.append(
            (f"imputed_windows_{i}",
             f"Imputed windows ({data['method']}): median, 50 % and 90 % bands; black dots "
             "given, red crosses held out.", plot_windows(data))
        )  # fmt: skip
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    pngs: list[tuple[bytes, str]] = []
    md_figures: list[tuple[str, str]] = []
    for name, caption, fig in plots:
        if fig is None:
            continue
        png = _png(fig)
        path = output_dir / f"{name}.png"
        path.write_bytes(png)
        paths[name] = path
        pngs.append((png, caption))
        md_figures.append((path.name, caption))
    producers = sorted({str(r.get("command")) for r in records if r.get("command")})
    paths["markdown"] = output_dir / "report.md"
    write_text_atomic(
        _markdown(title, sections, references, md_figures, command, producers), paths["markdown"]
    )
    paths["html"] = output_dir / "report.html"
    write_text_atomic(_html(title, sections, references, pngs, command, producers), paths["html"])
    return paths
