"""What scripts/bench.py prints: the table of every scenario beside the direct path, the
issue 11 targets beside each figure, and the checks that every feature was on."""
from __future__ import annotations

import statistics

from bench_checks import Check

# Issue 11's targets: one core, every feature on. Printed beside the figures, never asserted.
TARGET_REST_RPS = 2700
TARGET_ADDED_P50_MS = 0.5
TARGET_REST_STREAMS = 1450
TARGET_ADDED_TTFT_MS = 0.5
TARGET_GRPC_RPS = 2000
TARGET_GRPC_STREAMS = 600
TARGET_RSS_MB = 100  # per worker
# ... and against Portkey's gateway measured in the same run (scripts/bench_peers.py)
TARGET_X_PORTKEY_RPS = 2.0
TARGET_X_PORTKEY_STREAMS = 1.5
SATURATED = 0.90  # the client side's core this busy: it, not the gateway, may have set the pace
FLOOR = "grpc.aio floor"  # the rows of scripts/bench.py's bare gRPC server (scripts/bench_grpc_floor.py)
REST_FLOOR = "aiohttp relay floor"  # ... and of its bare aiohttp relay (scripts/bench_rest_floor.py)
OURS = "st-ai REST"  # st-ai's rows in the comparison with the other projects' gateways


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _added(r: dict, d: dict | None, key: str) -> float | None:
    if d is None or r["path"] == "direct" or not r.get(key) or not d.get(key):
        return None
    return (r[key] - d[key]) * 1000


def print_table(rows: list[dict], concurrency: int) -> None:
    direct = {r["stream"]: r for r in rows if r["path"] == "direct"}
    split = any(r.get("worker_split") for r in rows)
    header = ["path", "mode", f"rate@{concurrency}", "x direct", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms",
              "TTFT50 ms", "+TTFT ms", "gw CPU ms", "gw cap/s", "gw util", "client util", "other", "gw RSS MB",
              *(["worker split"] if split else []), "errors", "load"]
    table = []
    for r in rows:
        d = direct.get(r["stream"])
        ratio = r["rps"] / d["rps"] if d and d["rps"] and r["path"] != "direct" else None
        figures = [_added(r, d, "p50"), _added(r, d, "p99"), _added(r, d, "ttft50")]
        table.append([
            r["path"], "stream" if r["stream"] else "unary",
            f"{r['rps']:.0f}" + ("*" if r["capped"] else ""),
            f"{ratio:.2f}" if ratio is not None else "-",
            _ms(r["p50"]), _ms(r["p99"]),
            *(f"{v:+.2f}" if v is not None else "-" for v in figures[:2]),
            _ms(r["ttft50"]), f"{figures[2]:+.2f}" if figures[2] is not None else "-",
            f"{r['gw_cpu_ms']:.3f}" if r["gw_cpu_ms"] is not None else "-",
            f"{1000 / r['gw_cpu_ms']:.0f}" if r["gw_cpu_ms"] else "-",
            f"{r['gw_util'] * 100:.0f}%" if r["gw_util"] is not None else "-",
            f"{r['core1_util'] * 100:.0f}%" if r["core1_util"] is not None else "-",
            f"{r['other_util'] * 100:.0f}%" if r["other_util"] is not None else "-",
            f"{r['rss']:.1f}" if r["rss"] is not None else "-",
            *(["/".join(f"{s * 100:.0f}" for s in r["worker_split"]) if r.get("worker_split") else "-"]
              if split else []),
            str(r["errors"]), r.get("tool", "python"),
        ])
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print("""  columns: 'rate' = answers/s at full concurrency (requests/s for unary rows, streams/s for stream rows);
  'x direct' = rate / direct's; p50/p99 at concurrency 1, '+' = added to direct's; TTFT = time to the
  first event of a stream at concurrency 1; 'gw CPU ms' = gateway CPU per request or per stream in the
  throughput phase (all workers), 'gw cap' = 1000 / that (what one core could serve); 'gw util' = gateway
  CPU / wall time, 'client util' = upstream + load generator CPU / wall time, 'other' = CPU of processes
  outside the bench; 'gw RSS' = after the phase, the largest worker's; 'worker split' = each worker's
  share of the gateway CPU; 'load' = what generated the throughput phase; '*' = a phase hit its cap.""")


def _line(label: str, figure: str, target: str, met: bool | None) -> str:
    verdict = "-" if met is None else ("met" if met else "NOT MET")
    return f"  {label:<34} {figure:<28} target {target:<12} {verdict}"


def print_targets(rows: list[dict], peaks: dict[str, float], variant_paths: dict[str, tuple[str, str]]) -> None:
    """Each variant's figures beside issue 11's targets."""
    direct = {r["stream"]: r for r in rows if r["path"] == "direct"}
    by_key = {(r["path"], r["stream"]): r for r in rows}
    print("\ntargets (issue 11: one core, every feature on; printed, never asserted):")
    for name, (rest_path, grpc_path) in variant_paths.items():
        print(f" {name}:")
        for path, stream, label, target in (
                (rest_path, False, "REST whole answers", TARGET_REST_RPS),
                (rest_path, True, "REST streams (20 chunks)", TARGET_REST_STREAMS),
                (grpc_path, False, "gRPC whole answers", TARGET_GRPC_RPS),
                (grpc_path, True, "gRPC streams", TARGET_GRPC_STREAMS)):
            r = by_key.get((path, stream))
            if r is None:
                continue
            unit = "streams/s" if stream else "req/s"
            cpu = f", {r['gw_cpu_ms']:.2f} ms CPU" if r["gw_cpu_ms"] else ""
            print(_line(label, f"{r['rps']:,.0f} {unit}{cpu}", f">= {target:,}", r["rps"] >= target))
            floor = by_key.get((FLOOR, stream))
            if path == grpc_path and floor is not None:
                cap = f", at most {1000 / floor['gw_cpu_ms']:,.0f}/s" if floor["gw_cpu_ms"] else ""
                print(_line("  bare grpc.aio server (floor)", f"{floor['gw_cpu_ms'] or 0:.2f} ms CPU{cap}", "", None))
            if path == rest_path:
                key, what, limit = (("ttft50", "added time to first token", TARGET_ADDED_TTFT_MS) if stream
                                    else ("p50", "added p50 at concurrency 1", TARGET_ADDED_P50_MS))
                added = _added(r, direct.get(stream), key)
                p99 = _added(r, direct.get(stream), "p99")
                shown = (f"{added:+.2f} ms" + (f" (p99 {p99:+.2f})" if p99 is not None and not stream else "")
                         if added is not None else "?")
                print(_line(f"REST {what}", shown, f"<= {limit} ms", added <= limit if added is not None else None))
                floor = by_key.get((REST_FLOOR, stream))
                floor_added = _added(floor, direct.get(stream), key) if floor is not None else None
                if floor_added is not None:
                    print(_line("  bare aiohttp relay (floor)", f"{floor_added:+.2f} ms", "", None))
        if name in peaks:
            rss, hwm = peaks[name]
            print(_line("RSS after load, per worker", f"{rss:.1f} MB (peak {hwm:.1f})", f"<= {TARGET_RSS_MB} MB",
                        rss <= TARGET_RSS_MB))


_MEDIAN_FIELDS = ("rps", "p50", "p99", "ttft50", "ttft50_c", "p50_c", "gw_cpu_ms", "gw_util", "core1_util",
                  "other_util")


def medians(rows: list[dict]) -> list[dict]:
    """One row per (path, mode) of rows measured over several rounds: the median of each
    figure, errors and counts added up, the largest memory; `rounds` keeps each round's
    rate in order."""
    groups: dict[tuple[str, bool], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["path"], r["stream"]), []).append(r)
    out = []
    for group in groups.values():
        row = dict(group[0])
        for key in _MEDIAN_FIELDS:
            values = [r[key] for r in group if r.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        for key in ("errors", "sent", "answered", "no_timing"):
            row[key] = sum(r[key] for r in group)
        for key in ("rss", "hwm"):
            values = [r[key] for r in group if r.get(key) is not None]
            row[key] = max(values) if values else None
        row["capped"] = any(r["capped"] for r in group)
        row["error_sample"] = [e for r in group for e in r["error_sample"]][:3]
        row["rounds"] = [r["rps"] for r in group]
        out.append(row)
    return out


def print_peers(rows: list[dict], concurrency: int, rounds: int) -> None:
    """Issue 11's table, measured in this run: the other gateways and st-ai's REST path
    (medians over the rounds they were loaded in turn), then st-ai's ratios to Portkey's."""
    by_key = {(r["path"], r["stream"]): r for r in rows}
    peers = list(dict.fromkeys(r["path"] for r in rows if r["path"] != OURS))
    print(f"\nbeside the other gateways (issue 11's table; this run, each on the gateway's core, the same upstream"
          f" and load, REST phases taken in turn, median of {rounds} round{'s' if rounds > 1 else ''}):")
    header = ["gateway", f"c={concurrency} req/s", "CPU ms/req", "c=1 p50 ms", "streams/s", "CPU ms/stream",
              "TTFT50 ms", "RSS MB"]

    def rate(r: dict | None) -> str:
        return f"{r['rps']:,.0f}" if r else "-"

    def cpu(r: dict | None) -> str:
        return f"{r['gw_cpu_ms']:.2f}" if r and r["gw_cpu_ms"] else "-"
    table = []
    for name in [*peers, OURS]:
        plain, stream = by_key.get((name, False)), by_key.get((name, True))
        rss = [r["rss"] for r in (plain, stream) if r is not None and r["rss"] is not None]
        table.append([name if name != OURS else "st-ai (every feature on)",
                      rate(plain), cpu(plain), _ms(plain["p50"]) if plain else "-",
                      rate(stream), cpu(stream), _ms(stream["ttft50"]) if stream else "-",
                      f"{max(rss):.0f}" if rss else "-"])
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print("  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for row in table:
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    portkey = next((name for name in peers if name.startswith("Portkey")), None)
    if portkey is None:
        return
    for stream, label, factor in ((False, "REST whole answers", TARGET_X_PORTKEY_RPS),
                                  (True, "REST streams", TARGET_X_PORTKEY_STREAMS)):
        mine, theirs = by_key.get((OURS, stream)), by_key.get((portkey, stream))
        if mine is None or theirs is None or not theirs["rps"]:
            continue
        # each round's ratio pairs phases run a minute apart at most; their median is the
        # figure least moved by a host whose speed drifts
        each = [a / b for a, b in zip(mine.get("rounds", [mine["rps"]]), theirs.get("rounds", [theirs["rps"]])) if b]
        ratio = statistics.median(each)
        spread = f", rounds {' '.join(f'{r:.2f}' for r in each)}" if len(each) > 1 else ""
        print(_line(f"{label}, x Portkey's", f"{ratio:.2f}x (median{spread})", f">= {factor:g}x", ratio >= factor))


def print_notes(rows: list[dict], pinned: bool) -> None:
    busy = [r for r in rows if (r["core1_util"] or 0) >= SATURATED]
    if busy and pinned:
        print(f"  NOTE: the load generator's core was {max(r['core1_util'] for r in busy) * 100:.0f}% busy in "
              + ", ".join(f"{r['path']} {'stream' if r['stream'] else 'unary'}" for r in busy)
              + ": the client side, not the gateway, may have set those rates (see 'gw util')")
    elif pinned:
        print("  the load generator's core stayed below "
              f"{SATURATED * 100:.0f}% busy in every phase: it was not the bottleneck")
    noisy = [r for r in rows if (r["other_util"] or 0) > 0.10]
    if noisy:
        print(f"  NOTE: other processes used up to {max(r['other_util'] for r in noisy) * 100:.0f}% of a core"
              " during some phases: the machine was not quiet, rerun for steadier figures")
    for r in rows:
        if r["error_sample"]:
            print(f"  {r['path']} {'stream' if r['stream'] else 'unary'} errors, e.g.: {r['error_sample'][0]}")


def print_checks(checks: list[tuple[str, str, Check]]) -> bool:
    """Prints each check; True when all passed."""
    print("\nchecks (the features were on and did their work):")
    for variant, what, check in checks:
        print(f"  {variant} {what}: {'OK' if check.ok else 'FAILED'}: {check.line}")
    return all(check.ok for _, _, check in checks)
