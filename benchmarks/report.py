"""Printing, JSON and the chart of the benchmarks; issue 8's acceptance ratios.

A start method is a "series" in `result["series"]`, keyed by name, with `sequential` and
`sweep` parts (see starts.py), or `skipped` with the reason. The chart draws every key of
SERIES in that order and keeps a labelled slot for one that was not measured: adding the
warm pool is measuring it under "service_warm".
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from common import RESULTS

#: (key, label) of every start method, in chart order
SERIES = (
    ("baseline_sdk", "Docker SDK alone"),
    ("service_cold", "service, cold"),
    ("service_warm", "service, warm pool"),
    ("swarm_service", "Swarm service"),
)
START_RATIO, STOP_RATIO, THROUGHPUT_RATIO = 1.25, 1.25, 0.8
#: a start from a warm pool, request to a `running` answer whose port answers at once (ms)
WARM_P50_MS, WARM_P99_MS = 50.0, 150.0


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help=f"where JSON and chart go (default {RESULTS})"
    )


def write(directory: Path, name: str, result: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(f"results: {directory / f'{name}.json'}")


def _measured(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    s = result.get("series", {}).get(key)
    return s if s is not None and "sequential" in s else None


def _ms(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.0f}"


def print_starts(result: dict[str, Any]) -> None:
    print(f"starts and stops, {result['runs']} sequential runs per method ({result['image']}):")
    print(f"  {'method':20s} start p50    p95    stop p50    p95")
    for key, label in SERIES:
        s = result["series"].get(key, {"skipped": "not run"})
        if "sequential" not in s:
            print(f"  {label:20s} {s['skipped']}")
            continue
        q = s["sequential"]
        print(
            f"  {label:20s}    {_ms(q['start'].get('p50_ms'))} {_ms(q['start'].get('p95_ms'))}      "
            f"{_ms(q['stop'].get('p50_ms'))} {_ms(q['stop'].get('p95_ms'))}  ms"
        )
    print("  starts at once: starts/s, start p50/p99 ms, failures")
    for i, width in enumerate(result["widths"]):
        cells = []
        for key, label in SERIES:
            if (s := _measured(result, key)) is not None:
                w = s["sweep"][i]
                cells.append(
                    f"{label}: {w['starts_per_second']:5.1f}/s {_ms(w.get('start_p50_ms')).strip()}/"
                    f"{_ms(w.get('start_p99_ms')).strip()} {w['failures']}"
                )
        print(f"  {width:4d}  " + " | ".join(cells))


def print_lookups(result: dict[str, Any]) -> None:
    print(
        f"requests at {result['offered_rps']:g}/s offered, {result['records']} live instances stored, "
        f"{result['seconds_each']:g} s each:"
    )
    names = {
        "healthz": "GET /healthz (baseline)",
        "instance": "GET /instances/{id}",
        "listing": "GET /instances?owner=",
        "verify": "POST /flags/verify",
    }
    for key, s in result["streams"].items():
        q = s["latency"]
        print(
            f"  {names[key]:26s} {s['achieved_rps']:6.1f}/s  p50 {q.get('p50_ms', float('nan')):6.2f} ms  "
            f"p99 {q.get('p99_ms', float('nan')):6.2f} ms  errors {s['error_count']}"
        )


def ratios(result: dict[str, Any], key: str) -> dict[str, float]:
    """A series' figures over the baseline's: start and stop p50, throughput per width."""
    base, s = _measured(result, "baseline_sdk"), _measured(result, key)
    if base is None or s is None:
        return {}
    out = {
        f"{part}_p50": s["sequential"][part]["p50_ms"] / base["sequential"][part]["p50_ms"]
        for part in ("start", "stop")
        if s["sequential"][part] and base["sequential"][part]
    }
    for w, b in zip(s["sweep"], base["sweep"], strict=True):
        if b["starts_per_second"]:
            out[f"throughput_{w['parallel']}"] = w["starts_per_second"] / b["starts_per_second"]
    return out


def acceptance(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 8's checks: (what, figure, met); met is None when it could not be measured."""
    rows: list[tuple[str, str, bool | None]] = []
    if "series" in result:
        r, widest = ratios(result, "service_cold"), max(result["widths"])
        cold = _measured(result, "service_cold")
        failures = cold["sweep"][-1]["failures"] if cold else None
        rows += [
            _ratio_row("cold start p50 <= 1.25x baseline", r.get("start_p50"), START_RATIO, below=True),
            _ratio_row("stop-to-gone p50 <= 1.25x baseline", r.get("stop_p50"), STOP_RATIO, below=True),
            _throughput_row(widest, r.get(f"throughput_{widest}"), failures),
            *_warm_rows(result),
        ]
    if "lookups" in result:
        lk = result["lookups"]
        rows.append(
            (
                f"status lookup p99 <= 10 ms at {lk['offered_rps']:g}/s, {lk['records']} records",
                f"{lk['lookup_p99_ms']:.2f} ms (/healthz p99 {lk['baseline_p99_ms']:.2f} ms)",
                lk["pass"],
            )
        )
    return rows


def _ratio_row(what: str, value: float | None, limit: float, *, below: bool) -> tuple[str, str, bool | None]:
    if value is None:
        return what, "not measured", None
    return what, f"{value:.2f}x", value <= limit if below else value >= limit


def _throughput_row(width: int, value: float | None, failures: int | None) -> tuple[str, str, bool | None]:
    what = f"{width}-parallel throughput >= 0.8x baseline, 0 failures"
    if value is None or failures is None:
        return what, "not measured", None
    return what, f"{value:.2f}x, {failures} failures", value >= THROUGHPUT_RATIO and failures == 0


def _warm_rows(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The warm pool's sequential starts against issue 8's absolute figures; a start whose first
    request through the proxy was not answered is a failure of the run (it has no sample)."""
    whats = (f"warm start p50 <= {WARM_P50_MS:.0f} ms", f"warm start p99 <= {WARM_P99_MS:.0f} ms, at once")
    warm = _measured(result, "service_warm")
    if warm is None or not warm["sequential"]["start"]:
        return [(what, "not measured", None) for what in whats]
    q, missed = warm["sequential"]["start"], len(warm["sequential"]["errors"])
    return [
        (whats[0], f"{q['p50_ms']:.1f} ms", q["p50_ms"] <= WARM_P50_MS),
        (whats[1], f"{q['p99_ms']:.1f} ms, {missed} not at once", q["p99_ms"] <= WARM_P99_MS and not missed),
    ]


def machine_of(result: dict[str, Any]) -> str:
    """The machine's cores and load around the run, when recorded (the figures depend on it)."""
    before, after = result.get("machine_before"), result.get("machine_after")
    if not before or not after:
        return "machine not recorded"
    return f"{before['cpus']} cores, 1-min load average {before['load_1m']} before, {after['load_1m']} after"


def print_acceptance(result: dict[str, Any]) -> None:
    print(f"issue 8 acceptance (ratios against the baseline measured in this run; {machine_of(result)}):")
    for what, figure, met in acceptance(result):
        verdict = "n/a " if met is None else ("PASS" if met else "MISS")
        print(f"  {verdict}  {what:52s} {figure}")
    swarm = ratios(result, "swarm_service") if "series" in result else {}
    if swarm:
        shown = ", ".join(f"{k} {v:.2f}x" for k, v in swarm.items())
        print(f"  (Swarm service over baseline, for comparison: {shown})")


def print_errors(errors: list[str]) -> bool:
    """Print the run's failures; True if there were any."""
    if errors:
        print(f"FAILURES ({len(errors)}):")
        for e in errors[:30]:
            print(f"  {e}")
    return bool(errors)


# --- chart ------------------------------------------------------------------------------


def chart(directory: Path, name: str, result: dict[str, Any]) -> None:
    """<directory>/<name>.png: start and stop distributions per method, the sweep,
    and (when measured) the lookup latencies."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no chart: matplotlib is not installed; make bench installs it)")
        return
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    if "series" in result:
        _boxes(axes[0][0], result, "start_samples_ms", "start until the port accepts (ms), sequential")
        _boxes(axes[0][1], result, "stop_samples_ms", "stop until gone (ms), sequential")
        _sweep(axes[1][0], result)
    if "lookups" in result:
        _lookups(axes[1][1], result["lookups"])
    else:
        axes[1][1].set_axis_off()
    fig.suptitle(f"instancer benchmarks, commit {result['commit'][:8]} ({machine_of(result)})")
    fig.tight_layout()
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"chart: {path}")


def _boxes(ax: Any, result: dict[str, Any], samples: str, title: str) -> None:
    labels = [label for _, label in SERIES]
    for i, (key, _) in enumerate(SERIES, start=1):
        s = result["series"].get(key, {"skipped": "not run"})
        data = s.get("sequential", {}).get(samples)
        if data:
            ax.boxplot([data], positions=[i], widths=0.6, showfliers=True)
        else:
            reason = s.get("skipped") or "no sample"
            ax.text(
                i,
                0.5,
                textwrap.fill(reason, 30),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                rotation=90,
                fontsize=8,
                color="grey",
            )
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
    ax.set_xlim(0.4, len(labels) + 0.6)
    ax.set_ylim(bottom=0)
    ax.set_title(title)


def _sweep(ax: Any, result: dict[str, Any]) -> None:
    for key, label in SERIES:
        if (s := _measured(result, key)) is not None:
            ax.plot(result["widths"], [w["starts_per_second"] for w in s["sweep"]], marker="o", label=label)
    ax.set_xlabel("starts at once")
    ax.set_ylabel("starts per second (until every port accepts)")
    ax.set_title("concurrency sweep")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)


def _lookups(ax: Any, lookups: dict[str, Any]) -> None:
    names = list(lookups["streams"])
    ax.boxplot([lookups["streams"][n]["samples_ms"] or [0] for n in names], showfliers=False, whis=(1, 99))
    ax.axhline(10, color="red", linestyle="--", linewidth=1, label="10 ms (issue 8, p99)")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("latency from when due (ms, log); whiskers p1-p99")
    ax.set_title(f"{lookups['offered_rps']:g} req/s, {lookups['records']} live records")
    ax.legend(fontsize=8)
