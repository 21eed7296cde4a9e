"""Run the benchmark suites side by side with their anchors and write the results.

    python -m benchmarks.run --quick            # a few minutes (make bench-quick)
    python -m benchmarks.run --full --rounds 3  # the README's table (make bench)
    python -m benchmarks.run --only http,resp

Each suite alternates raftkv and its anchor (A, B, A, B...) with servers pinned to
core 0 and load generators to core 1. Writes ``benchmarks/results/results.json``,
``results.md`` (median, min-max, raftkv/anchor ratio and the spread across rounds)
and ``throughput.png``, ``latency.png``, ``knee.png`` (latency against load) and
``engine_gets.png`` (in-process gets against the number of keys held).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import (
    cluster_bench,
    coordination_bench,
    engine,
    http_bench,
    knee_bench,
    ops_bench,
    queues_bench,
    raft_bench,
    resp_bench,
    scripts_bench,
    security_bench,
    types_bench,
)
from benchmarks.common import Progress, Row, bursts

# suite -> (module, progress steps per round given the bursts per round, steps once per run)
SUITES = {"engine": (engine, lambda b: 6, 2), "raft": (raft_bench, lambda b: 1, 0),
          "http": (http_bench, lambda b: 1 + b, 0), "ops": (ops_bench, lambda b: 1 + b, 0),
          "knee": (knee_bench, lambda b: len(knee_bench.RATES), 0),
          "resp": (resp_bench, lambda b: 2 * (1 + b), 0),
          "types": (types_bench, lambda b: 2 * (1 + b), 0),
          "scripts": (scripts_bench, lambda b: 2 * (1 + b), 0),
          "queues": (queues_bench, lambda b: 2 * (1 + b), 0),
          "coordination": (coordination_bench, lambda b: 3, 0),
          "security": (security_bench, lambda b: 3, 12),
          "cluster": (cluster_bench, lambda b: 3 + b, 1)}


def summarize(rows: list[Row], previous: dict[tuple[str, str], float] | None = None
              ) -> list[dict[str, object]]:
    """Per workload: each system's median and min-max; against the anchor, the median
    of the per-pair (per-round) ratios, their spread (interquartile range over the
    median) and the change from ``previous`` run's ratio."""
    groups: dict[tuple[str, str], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row.suite, row.workload)][row.system].append(row)
    table = []
    for (suite, workload), systems in groups.items():
        entry: dict[str, object] = {"suite": suite, "workload": workload}
        medians = {}
        for system, measured in systems.items():
            values = [r.value for r in measured]
            medians[system] = statistics.median(values)
            entry[system] = {"median": medians[system], "min": min(values),
                             "max": max(values), "unit": measured[0].unit,
                             "p99_ms": statistics.median(
                                 [r.extra.get("p99_ms", 0) for r in measured]) or None}
        anchors = [s for s in medians if s != "raftkv"]
        if "raftkv" in medians and anchors and medians[anchors[0]]:
            higher = systems["raftkv"][0].higher_is_better
            entry["anchor"] = anchors[0]
            if systems["raftkv"][0].paired:
                pairs = _pair_ratios(systems["raftkv"], systems[anchors[0]])
                ratio = statistics.median(pairs) if pairs else \
                    medians["raftkv"] / medians[anchors[0]]
                entry["pairs"] = len(pairs)
                if len(pairs) >= 4:
                    q1, _, q3 = statistics.quantiles(pairs, n=4)
                    entry["ratio_spread"] = (q3 - q1) / statistics.median(pairs)
                elif len(pairs) > 1:
                    entry["ratio_spread"] = (max(pairs) - min(pairs)) / statistics.median(pairs)
            else:
                ratio, entry["ratio_spread"] = _ratio_of_medians(
                    [r.value for r in systems["raftkv"]],
                    [r.value for r in systems[anchors[0]]])
                entry["pairs"] = 0
            entry["ratio"] = ratio if higher else 1 / ratio
            before = (previous or {}).get((suite, workload))
            if before:
                entry["previous_ratio"] = before
                entry["change"] = float(entry["ratio"]) / before - 1  # type: ignore[arg-type]
        table.append(entry)
    return table


def _ratio_of_medians(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """median(ours) / median(theirs), and its spread: the interquartile range over the
    median of that ratio across bootstrap resamples of both sides (fixed seed)."""
    rng = random.Random(0)
    resampled = [statistics.median(rng.choices(ours, k=len(ours)))
                 / statistics.median(rng.choices(theirs, k=len(theirs))) for _ in range(1000)]
    q1, mid, q3 = statistics.quantiles(resampled, n=4)
    return statistics.median(ours) / statistics.median(theirs), (q3 - q1) / mid


def _pair_ratios(ours: list[Row], theirs: list[Row]) -> list[float]:
    by_round = {r.round: r.value for r in theirs}
    return [r.value / by_round[r.round] for r in ours if by_round.get(r.round)]


def previous_ratios(path: Path) -> dict[tuple[str, str], float]:
    """The ratios of the last run written to ``path`` (to print how far they moved)."""
    try:
        summary = json.loads(path.read_text())["summary"]
    except (OSError, ValueError, KeyError):
        return {}
    return {(e["suite"], e["workload"]): e["ratio"] for e in summary if "ratio" in e}


def markdown(table: list[dict[str, object]], machine: str, command: str) -> str:
    lines = [f"Machine: {machine}. Command: `{command}`.", "",
             "Ratio: the median of raftkv/anchor over pairs of short alternating bursts; "
             "spread: their interquartile range over the median. Failover trials are not "
             "paired (\"indep.\"): the ratio is of the two medians, the spread that of "
             "bootstrap resamples. vs last run: the change from the previous results in "
             "the same folder.", "",
             "| suite | workload | raftkv (median, min-max) | anchor | anchor median | "
             "raftkv/anchor | spread (pairs) | vs last run | raftkv p99 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        ours = e.get("raftkv")
        anchor = e.get("anchor", "")
        theirs = e.get(anchor) if anchor else None  # type: ignore[call-overload]
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            e["suite"], e["workload"], _fmt(ours), anchor or "-", _fmt(theirs, short=True),
            f"{e['ratio']:.2f}x" if "ratio" in e else "-",
            f"{e['ratio_spread']:.0%} ({e['pairs'] or 'indep.'})" if "ratio_spread" in e
            else "-",
            f"{e['change']:+.0%}" if "change" in e else "-",
            f"{ours['p99_ms']:.2f} ms" if isinstance(ours, dict) and ours.get("p99_ms")
            else "-"))
    return "\n".join(lines) + "\n"


def _fmt(stats: object, short: bool = False) -> str:
    if not isinstance(stats, dict):
        return "-"
    unit = stats["unit"]
    med = _number(stats["median"])
    if short:
        return f"{med} {unit}"
    return f"{med} {unit} ({_number(stats['min'])}-{_number(stats['max'])})"


def _number(x: float) -> str:
    """Whole numbers from 100 up, else three significant digits (0.0118 s, 1.52 s)."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def plots(rows: list[Row], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'); no plots", file=sys.stderr)
        return
    throughput = [r for r in rows if r.unit in ("req/s", "ops/s", "writes/s")
                  and r.suite != "engine"]
    if throughput:
        labels = sorted({(r.suite, r.workload) for r in throughput})
        systems = sorted({r.system for r in throughput})
        fig, ax = plt.subplots(figsize=(11, 0.5 + 0.45 * len(labels)))
        height = 0.8 / len(systems)
        for i, system in enumerate(systems):
            values = [statistics.median([r.value for r in throughput if (r.suite, r.workload)
                                         == label and r.system == system] or [0])
                      for label in labels]
            ax.barh([y + i * height for y in range(len(labels))], values, height, label=system)
        ax.set_yticks([y + 0.4 - height / 2 for y in range(len(labels))],
                      [f"{s}: {w}" for s, w in labels])
        ax.set_xlabel("requests per second (median)")
        ax.set_xscale("log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=110)
        plt.close(fig)
    knee = [r for r in rows if r.suite == "knee"]
    if knee:
        fig, ax = plt.subplots(figsize=(8, 5))
        offered = sorted({r.extra["offered_rps"] for r in knee})
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            ax.plot(offered, [statistics.median([r.extra[key] for r in knee
                                                 if r.extra["offered_rps"] == o])
                              for o in offered], marker="o", label=label)
        ax.set_xlabel("offered load, GET requests/s (open loop)")
        ax.set_ylabel("latency (ms, from the scheduled send time)")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("raftkv: latency against offered load (the knee)")
        fig.tight_layout()
        fig.savefig(out / "knee.png", dpi=110)
        plt.close(fig)
    gets = [r for r in rows
            if r.workload.startswith("keyspace gets (value)") and "keys" in r.extra]
    if gets:
        fig, ax = plt.subplots(figsize=(8, 5))
        for system, label in (("raftkv", "raftkv: Keyspace.value"),
                              ("bare dict.get loop", "bare dict.get loop (the floor)")):
            held = sorted({r.extra["keys"] for r in gets if r.system == system})
            ax.plot(held, [statistics.median([r.value for r in gets if r.system == system
                                              and r.extra["keys"] == keys]) for keys in held],
                    marker="o", label=label)
        ax.axhline(2e6, color="grey", linestyle=":", label="2M gets/s")
        ax.set_xscale("log")
        ax.set_xlabel("keys held (each get reads one of them at random)")
        ax.set_ylabel("gets per second, one core (median)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(lambda y, _: f"{y / 1e6:g}M")
        ax.yaxis.set_minor_formatter(lambda y, _: f"{y / 1e6:g}M")
        ax.legend()
        ax.set_title("raftkv: in-process gets against the number of keys held")
        fig.tight_layout()
        fig.savefig(out / "engine_gets.png", dpi=110)
        plt.close(fig)
    latency = [r for r in rows if r.extra.get("p99_ms") and r.suite != "knee"]
    if latency:
        # one bar per workload and system: the median over its bursts
        bars: dict[str, list[Row]] = defaultdict(list)
        for r in latency:
            bars[f"{r.suite}: {r.workload} [{r.system}]"].append(r)
        names = sorted(bars, reverse=True)
        fig, ax = plt.subplots(figsize=(11, 0.5 + 0.3 * len(names)))
        ax.barh(names, [statistics.median(r.extra["p99_ms"] for r in bars[n]) for n in names],
                label="p99")
        ax.barh(names, [statistics.median(r.extra.get("p50_ms", 0) for r in bars[n])
                        for n in names], label="p50")
        ax.set_xlabel("latency (ms, median over the bursts)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--only", default=",".join(SUITES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    quick = not args.full
    rounds = args.rounds or (1 if quick else 3)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    count, _ = bursts(quick)
    progress = Progress(sum(SUITES[s][1](count) * rounds + SUITES[s][2] for s in chosen))
    rows: list[Row] = []
    started = time.time()
    for name in chosen:
        rows += SUITES[name][0].run(quick, rounds, progress)
    progress.finish()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(rows, previous_ratios(out / "results.json"))
    machine = f"{platform.machine()}, {platform.python_implementation()} " \
              f"{platform.python_version()}, 2 cores (server on core 0, load on core 1)"
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "results.json").write_text(json.dumps({
        "machine": machine, "command": command, "started": started,
        "rows": [r.as_dict() for r in rows], "summary": table}, indent=2))
    md = markdown(table, machine, command)
    (out / "results.md").write_text(md)
    plots(rows, out)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
