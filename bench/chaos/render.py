"""The soak's section of `bench/RESULTS.md` and its timeline plot, from the recorded results.

Registered in `bench/report.py`'s RENDERERS; each result `bench/results/chaos-<date>.json`
gets a table and a plot `chaos-<date>.png` (faults against fire lateness); the reading is
computed from the latest result's figures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot  # after use(): the backend is chosen before pyplot loads

from bench import environment

Variants = list[tuple[str, dict[str, Any]]]
FAULT_ROWS = ["sigkill", "sigstop", "delete_pod", "scale", "restart_postgres", "restart_redis",
              "restart_operator", "blackhole_postgres"]
COLOURS = {"sigkill": "tab:red", "sigstop": "tab:purple", "delete_pod": "tab:orange",
           "scale": "tab:green", "restart_postgres": "tab:blue", "restart_redis": "tab:brown",
           "restart_operator": "tab:gray", "blackhole_postgres": "black"}
ASSERTED = ("duplicate_completions", "concurrent_executions", "missed_fires")


def summary_line(f: dict[str, Any]) -> str:
    return (f"chaos: {f['fires_completed']:,}/{f['fires_due']:,} due completed, "
            f"{f['missed_fires']} missed, {f['duplicate_completions']} duplicate completions, "
            f"{f['concurrent_executions']} concurrent, {f['reexecutions']} re-executions "
            f"({f['reexecutions_unexplained']} unexplained), {f['names']['reused']} names reused")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def table(label: str, result: dict[str, Any]) -> str:
    f, p = result["figures"], result["parameters"]
    kinds: dict[str, int] = {}
    for fault in result["faults"]:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    fo, late, cm = f["failover_seconds"], f["lateness_seconds"], f["cluster_mode"]
    rows = [
        ("fires due (single-mode fires + cluster-mode runs)",
         f"{f['fires_due']:,} ({f['single_fires_due']:,} + {f['cluster_runs_due']:,})"),
        ("fires completed", f"{f['fires_completed']:,}"),
        ("**missed fires**", f"{f['missed_fires']} ({f['missed_by_policy']} recorded `missed` by policy)"),
        ("**duplicate completions**", str(f["duplicate_completions"])),
        ("**concurrent executions of one fire**", str(f["concurrent_executions"])),
        ("re-executions (explained by a fault / not)",
         f"{f['reexecutions']} ({f['reexecutions'] - f['reexecutions_unexplained']} / "
         f"{f['reexecutions_unexplained']})"),
        ("work finished twice (the later completion refused by fencing or handed back)",
         str(f["work_finished_twice"])),
        ("completions rejected by fencing (runs `rejected`)", str(f["completions_rejected_by_fencing"])),
        ("runs handed back (`released`)", str(f["runs_released"])),
        (f"failover, fire time → accepted run's start (n = {fo['count']}), lease {p['lease_seconds']} s",
         f"p50 {_seconds(fo['p50'])}, p99 {_seconds(fo['p99'])}, max {_seconds(fo['max'])}"),
        ("lateness of single-mode fires (first start - fire time)",
         f"p50 {_seconds(late['p50'])}, p99 {_seconds(late['p99'])}, max {_seconds(late['max'])}"),
        ("cluster-mode fires: runs = / < / > members at the fire time",
         f"{cm['runs_equal_live']:,} / {cm['runs_fewer_than_live']:,} / {cm['runs_more_than_live']:,} "
         f"(mean runs per member {cm['mean_runs_per_live_replica']})"),
        ("**names reused**", f"{f['names']['reused']} of {f['names']['total']} names "
                             f"({f['names']['archived']} archived)"),
        ("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
    ]
    head = (f"`{label}`: {p['minutes']:g} min window, seed {p['seed']}, {p['replicas']} replicas, "
            f"{p['single']} single-mode + {p['cluster']} cluster-mode schedules every second, work "
            f"0-{p['max_work_seconds']:g} s, leaseSeconds {p['lease_seconds']}, "
            f"missedFireGraceSeconds {p['grace_seconds']}, a replica fault every "
            f"{p['fault_every']:g} s on average; drained in {result['window']['drain_seconds']} s.")
    lines = [head, "", "| figure | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if result.get("fault_errors"):
        lines += ["", "Faults that could not be injected: " + "; ".join(
            _short(error) for error in result["fault_errors"])]
    return "\n".join(lines)


def _short(error: str) -> str:
    """A fault's error in one line: the API server's message when it gave one."""
    found = re.search(r'"message":"([^"]+)"', error)
    head = error.splitlines()[0]
    return f"{head.split(':', 1)[0]}: {found.group(1)}" if found else head[:200]


def reading(label: str, result: dict[str, Any]) -> str:
    f, p = result["figures"], result["parameters"]
    broken = [name.replace("_", " ") for name in ASSERTED if f[name]]
    if f["names"]["reused"]:
        broken.append("names reused")
    verdict = ("held: 0 duplicate completions, 0 concurrent executions, 0 missed fires and 0 "
               "names reused" if not broken else "**did not hold**: " + ", ".join(
                   f"{name} ({f[name.replace(' ', '_')] if name != 'names reused' else f['names']['reused']})"
                   for name in broken))
    fo = f["failover_seconds"]
    failover = ("no fire needed a failover" if not fo["count"] else
                f"{fo['count']} fires were run again after a fault; from fire time to the accepted "
                f"run's start they took p50 {_seconds(fo['p50'])} ({fo['p50'] / p['lease_seconds']:.2f}x "
                f"the {p['lease_seconds']} s lease), p99 {_seconds(fo['p99'])} "
                f"({fo['p99'] / p['lease_seconds']:.2f}x), max {_seconds(fo['max'])} "
                f"({fo['max'] / p['lease_seconds']:.2f}x)")
    cm = f["cluster_mode"]
    share = cm["runs_equal_live"] / cm["fires"] if cm["fires"] else 0
    return (f"Reading (`{label}`): the promises {verdict}, over {f['fires_due']:,} due fires and "
            f"{len(result['faults'])} faults. {failover}. A takeover has to wait for the lease to "
            "expire (a replica killed or frozen cannot hand its fire back), so failover is bounded "
            "below by the lease, not by the fault: shorten `leaseSeconds` to fail over faster, at "
            "the cost of more renewals. "
            f"{f['work_finished_twice']} fires had their work finish twice (a replica that lost "
            f"its lease, frozen or cut off from PostgreSQL, had finished the work; the runtime "
            f"refused that completion: "
            f"{f['completions_rejected_by_fencing']} runs `rejected` by fencing, "
            f"{f['runs_released']} `released`): at-least-once execution, which the idempotency key "
            f"lets a function deduplicate. In cluster mode {share:.1%} of fires ran on exactly as "
            "many replicas as the cluster had members at the fire time; the rest straddle a replica joining, "
            "leaving or restarting (a restarted replica catches up its own fires late, a replica "
            "scaled away runs no more of them).")


def plot(stem: str, result: dict[str, Any]) -> Path:
    timeline, window = result["timeline"], result["window"]
    figure, axis = pyplot.subplots(figsize=(11, 5))
    for mode, colour in (("single", "tab:blue"), ("cluster", "tab:green")):
        xs = [t for t, v in zip(timeline["t"], timeline[f"{mode}_max"], strict=True) if v is not None]
        axis.plot(xs, [v for v in timeline[f"{mode}_max"] if v is not None], color=colour,
                  linewidth=0.8, label=f"{mode} mode: latest first start")
        axis.plot(xs, [v for v in timeline[f"{mode}_median"] if v is not None], color=colour,
                  linewidth=0.8, linestyle=":", label=f"{mode} mode: median")
    top = max([v for v in timeline["single_max"] + timeline["cluster_max"] if v is not None] + [1])
    band = top * 0.06
    for fault in result["faults"]:
        row = FAULT_ROWS.index(fault["kind"]) if fault["kind"] in FAULT_ROWS else 0
        start = fault["start"] - window["t0"]
        width = max(fault["end"] - fault["start"], 0.8)
        axis.broken_barh([(start, width)], (top * 1.05 + row * band, band * 0.8),
                         color=COLOURS.get(fault["kind"], "tab:gray"))
    for index, kind in enumerate(FAULT_ROWS):
        axis.text(-2, top * 1.05 + index * band + band * 0.4, kind, fontsize=6, ha="right", va="center")
    axis.set_xlabel("seconds into the fault window (fire time)")
    axis.set_ylabel("lateness: first start - fire time (s)")
    axis.set_title(f"chaos soak: faults (bars, top) against fire lateness; lease "
                   f"{result['parameters']['lease_seconds']} s")
    axis.legend(loc="center right", fontsize=7)
    axis.set_xlim(left=-0.15 * result["parameters"]["minutes"] * 60)
    figure.tight_layout()
    path = environment.RESULTS_DIR / f"{stem}.png"
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def render(variants: Variants) -> tuple[str, list[Path]]:
    parts, plots = [], []
    for label, result in variants:
        stem = "chaos" if label == "now" else f"chaos-{label}"
        plots.append(plot(stem, result))
        parts.append(table(label, result) + f"\n\n![{stem}](results/{stem}.png)")
    label, latest = variants[-1]
    parts.append(reading(label, latest))
    return "\n\n".join(parts), plots
