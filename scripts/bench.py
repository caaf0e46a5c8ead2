#!/usr/bin/env python
"""Benchmark st-ai, every feature on, against a fast local OpenAI-compatible upstream.

    python scripts/bench.py [--seconds S] [--requests N] [--concurrency C] [--workers 1|2]
                            [--loadgen auto|wrk|python] [--bare] [--compare-dispatch]
                            [--grpc-experiments] [--portkey DIR [--node PATH]] [--litellm PATH]
                            [--rounds N]
                            [--no-pin-core] [--keep]

It starts, each in its own process and all on 127.0.0.1:
  * scripts/bench_upstream.py: POST /v1/chat/completions answering a fixed completion with
    fixed usage, or 20 SSE chunks (`--chunks`) when `stream` is true;
  * `python -m server.cli serve` on a fresh temporary database holding one channel to that
    upstream, a price for the model, and a token with a quota and requests, tokens and
    concurrency limits (far above what the run spends or sends, so nothing is refused):
    every request is admitted against the limits, reserves, is settled at its cost and
    booked in the ledger; metrics are on (scraped at the end) and Server-Timing is checked
    on every answer (scripts/bench_checks.py);
  * the floors, each on the gateway's core after st-ai has run: scripts/bench_rest_floor.py,
    a bare aiohttp relay to the same upstream with nothing in between (its latency at
    concurrency 1 is the least any aiohttp-based gateway adds on the machine), under st-ai's
    REST rows; scripts/bench_grpc_floor.py, a bare grpc.aio server of st-ai's Chat service
    answering fixed messages (its CPU per call is the most one core lets any grpc.aio server
    of this API serve), under st-ai's gRPC rows;
  * with --portkey DIR and --litellm PATH, the gateways issue 11 measures st-ai against
    (scripts/bench_peers.py: Portkey's gateway installed by npm in DIR, LiteLLM's proxy
    from its own virtualenv), pointed at the same upstream, up together with a second
    `st-ai serve` (every feature on, its own token, checked like the first), all on the
    gateway's core; their REST phases, loaded as st-ai's REST rows are, are taken in turn
    for --rounds rounds (default 3), so that a host whose speed drifts during the run
    weighs on all of them alike, and the medians are compared;
  * scripts/bench_loadgen.py, the load generator. REST and direct throughput phases run
    through wrk (HTTP/1.1 keep-alive, as issue 11 measured) when it is installed
    (`--loadgen auto`, the default); latency, time to first token and gRPC through Python
    (aiohttp, grpc.aio).

With --pin-core (the default, when at least two cores are usable) the gateway runs on
core 0 and the upstream plus the load generator on core 1, so the gateway's figures are
those of one core. With --workers N (`st-ai serve --workers N`) the gateway gets cores
0..N-1 when more than N cores are usable, and nothing is pinned otherwise; its CPU time is
that of the parent and all its workers, its RSS the largest worker's; gRPC load goes over
one channel (one connection) per concurrent caller, so both workers get some, and each
worker's share of the CPU is printed.

For each of: direct to the upstream, through st-ai's REST bridge, through st-ai's gRPC
service, whole answers and streams, it measures the rate at concurrency C, p50/p99
latency at concurrency 1, time to first token of streams (p50), the gateway's CPU time
per request (/proc/PID/stat) and its memory (VmRSS, VmHWM), and prints them beside the
direct path and beside issue 11's targets; it never asserts a speed. Then it checks that
the features did their work: the ledger holds one row per request sent, each charged its
exact price, the token's spent quota equals the ledger's sum, nothing is left reserved,
GET /metrics counted every request, every answer had Server-Timing. A failed check makes
the exit status 1. `--bare` also runs a gateway with a token without quota or limits on
an unpriced model, for comparison (its ledger rows are still written: that cannot be
switched off). Every loop is bounded by a request count or a wall-clock cap; everything
it starts is stopped at exit and its temporary files removed.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError

import bench_checks
import bench_loadgen
import bench_peers
import bench_report
import bench_upstream
import bench_wrk
from bench_loadgen import _ms  # noqa: F401  (scripts/bench_settlement.py prints with it)
from bench_proc import (ROOT, SCRIPTS, Processes, child_setup, cpu_seconds,  # noqa: F401
                        family_memory_mb, free_port, logged_problems, memory_mb, refuse_careless, start_gateway,
                        start_upstream, wait_for)
from bench_upstream import MODEL, UPSTREAM_KEY

for _path in (str(ROOT), str(ROOT / "generated")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

MODEL_BARE = "bench-model-bare"  # unpriced, for --bare
EE_OFF = "-event_engine_client,-event_engine_listener"
COMPARED = "st-ai (compared)"  # the gateway run beside the other projects' (--portkey, --litellm)


@dataclass(frozen=True)
class Variant:
    name: str
    suffix: str  # of its rows' paths
    env: dict = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    bare: bool = False


def run_loadgen(procs: Processes, tmp: Path, core: int | None, config: dict, wall_cap: float) -> list[dict]:
    config_path = tmp / "loadgen.json"
    out_path = tmp / "loadgen-out.json"
    config_path.write_text(json.dumps(config))
    out_path.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "bench_loadgen.py"), str(config_path), str(out_path)],
                            cwd=ROOT, stdin=subprocess.DEVNULL, preexec_fn=child_setup(core))
    procs.procs.append(proc)
    try:
        proc.wait(wall_cap)
    except subprocess.TimeoutExpired:
        print(f"  load generator exceeded its {wall_cap:.0f} s cap; stopped", file=sys.stderr)
    finally:
        procs.stop(proc)
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"the load generator failed (exit {proc.returncode})")
    return json.loads(out_path.read_text())


def make_db(db_path: Path, upstream_url: str) -> str:
    """A database with the channel to the upstream and one plain token (no price, quota or
    limits); returns the token's key. scripts/bench_memory.py's setup."""
    bench_checks.add_channel(db_path, upstream_url, UPSTREAM_KEY, [MODEL])
    return bench_checks.add_token(db_path, "bench", bare=True)


def machine() -> str:
    """The CPU model, its cores and the software versions, for the report."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    try:
        import grpc
        grpc_version = grpc.__version__
    except ImportError:
        grpc_version = "?"
    return (f"{model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, grpcio {grpc_version}")


def wrk_version() -> str:
    try:
        out = subprocess.run([bench_wrk.available() or "wrk", "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    return ((out.stdout or out.stderr).split("[")[0].strip() or "wrk")


def main() -> None:
    # the sub-commands of earlier versions, for scripts that still start them this way
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        return bench_upstream.main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_loadgen":
        return bench_loadgen.main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="length of each wrk throughput phase, seconds (default 6)")
    parser.add_argument("--requests", type=int, default=5000,
                        help="requests in each Python throughput phase (gRPC; REST without wrk) (default 5000)")
    parser.add_argument("--stream-requests", type=int, default=None,
                        help="streams in each Python throughput phase (default requests/4)")
    parser.add_argument("--latency-requests", type=int, default=1000,
                        help="sequential requests for p50/p99 at concurrency 1 (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="in-flight requests (default 32)")
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per streamed answer (default 20)")
    parser.add_argument("--phase-cap", type=float, default=12.0,
                        help="wall-clock cap of one Python measuring phase, seconds (default 12)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="REST throughput through wrk or the Python load generator (auto: wrk when installed)")
    parser.add_argument("--bare", action="store_true",
                        help="also run st-ai with no quota, rate limits or price, for comparison")
    parser.add_argument("--pin-core", dest="pin_core", action="store_true", default=True,
                        help="gateway on core 0, upstream and load generator on core 1 (default)")
    parser.add_argument("--no-pin-core", dest="pin_core", action="store_false")
    parser.add_argument("--grpc-experiments", action="store_true",
                        help=f"also run the gateway on grpcio's EventEngine (st-ai's default is "
                             f"GRPC_EXPERIMENTS={EE_OFF}) and compare")
    parser.add_argument("--compare-dispatch", action="store_true",
                        help="also run `serve --dispatch grpc` (the bridge calling its services over a private "
                             "Unix socket) beside the default in-process dispatch")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1,
                        help="st-ai serve --workers N: worker processes sharing the ports (default 1)")
    parser.add_argument("--portkey", type=Path, metavar="DIR",
                        help="also measure Portkey's gateway, installed by `npm install @portkey-ai/gateway` in DIR "
                             "(see scripts/bench_peers.py)")
    parser.add_argument("--node", default="node", metavar="PATH",
                        help="the node that runs Portkey's gateway (default: node on PATH)")
    parser.add_argument("--litellm", type=Path, metavar="PATH",
                        help="also measure LiteLLM's proxy: its `litellm` executable, or the virtualenv holding it")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --portkey or --litellm: rounds of REST phases taken in turn by st-ai and each "
                             "other gateway; medians are shown (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, db)")
    args = parser.parse_args()
    refuse_careless(parser, args, ("rounds", "requests", "stream_requests", "latency_requests", "concurrency",
                                   "chunks"), ("seconds", "phase_cap"))
    try:
        if args.portkey is not None:
            bench_peers.portkey_entry(args.portkey)
            bench_peers.node_version(args.node)
        if args.litellm is not None:
            bench_peers.litellm_entry(args.litellm)
    except ValueError as exc:
        parser.error(str(exc))
    stream_requests = args.stream_requests or max(args.concurrency * 4, args.requests // 4)
    if args.loadgen == "wrk" and not bench_wrk.available():
        parser.error("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    loadgen = "wrk" if args.loadgen == "wrk" or (args.loadgen == "auto" and bench_wrk.available()) else "python"

    cores = sorted(os.sched_getaffinity(0))
    gw_core = lg_core = None
    if args.pin_core:
        if len(cores) > args.workers:
            gw_core = cores[0] if args.workers == 1 else set(cores[:args.workers])
            lg_core = cores[args.workers]
        else:
            print(f"{len(cores)} usable core(s) for {args.workers} worker(s) and the load generator: "
                  "not pinning", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="st-ai-bench-"))
    procs = Processes()
    exit_code = 0
    started = time.monotonic()
    try:
        upstream, upstream_url = start_upstream(procs, tmp, lg_core, args.chunks)
        db_path = tmp / "bench.db"
        bench_checks.add_channel(db_path, upstream_url, UPSTREAM_KEY, [MODEL, MODEL_BARE])
        bench_checks.price_model(db_path, MODEL)
        tools = (f"{wrk_version()} for REST and direct throughput, Python for latency, TTFT and gRPC"
                 if loadgen == "wrk" else "Python (aiohttp, grpc.aio) for everything (wrk not used)")
        print(f"st-ai bench: {machine()}\n  load: {tools}; concurrency {args.concurrency}; "
              + (f"{args.seconds:g} s per wrk phase, " if loadgen == "wrk" else "")
              + f"{args.requests} unary / {stream_requests} streamed per Python throughput phase, "
              f"{args.latency_requests} at concurrency 1; "
              + (f"gateway pinned to core(s) {gw_core}, upstream + load generator to core {lg_core}"
                 if gw_core is not None else "not pinned") + f"; {args.workers} worker(s)", flush=True)
        base_config = {
            "chunks": args.chunks, "concurrency": args.concurrency, "requests": args.requests,
            "stream_requests": stream_requests, "latency_requests": args.latency_requests,
            "latency_stream_requests": max(min(50, args.latency_requests), args.latency_requests // 2),
            "phase_cap": args.phase_cap, "request_timeout": 10.0, "upstream_pid": upstream.pid,
            "loadgen": loadgen, "wrk_seconds": args.seconds,
            # one gRPC channel (connection) per concurrent caller, so SO_REUSEPORT spreads them
            "grpc_channels": args.concurrency if args.workers > 1 else 1,
        }
        variants = [Variant("st-ai", "", {"GRPC_EXPERIMENTS": EE_OFF})]
        if args.bare:
            variants.append(Variant("st-ai[bare]", " [bare]", {"GRPC_EXPERIMENTS": EE_OFF}, bare=True))
        if args.grpc_experiments:
            # an empty value keeps grpcio's own defaults (st-ai sets it only when unset)
            variants.append(Variant("st-ai[EE on]", " [EE on]", {"GRPC_EXPERIMENTS": ""}))
        if args.compare_dispatch:
            variants.append(Variant("st-ai[grpc hop]", " [grpc hop]", {"GRPC_EXPERIMENTS": EE_OFF},
                                    ("--dispatch", "grpc")))

        rows: list[dict] = []
        problems: list[str] = []  # a gateway of another project that could not be measured
        peaks: dict[str, tuple[float, float]] = {}
        checks: list[tuple[str, str, bench_checks.Check]] = []
        for index, variant in enumerate(variants):
            rows_of, reading, variant_checks = run_variant(procs, tmp, db_path, index, variant, args, gw_core, lg_core,
                                                           base_config, upstream_url)
            rows.extend(rows_of)
            peaks[variant.name] = reading
            checks.extend(variant_checks)

        starts = []  # the other projects' gateways asked for
        if args.portkey is not None:
            starts.append(functools.partial(bench_peers.start_portkey, folder=args.portkey, node=args.node))
        if args.litellm is not None:
            starts.append(functools.partial(bench_peers.start_litellm, path=args.litellm))
        compared: list[dict] = []
        if starts:
            compared, compare_checks, peer_problems = run_comparison(procs, tmp, db_path, starts, gw_core, lg_core,
                                                                     base_config, args, upstream_url)
            checks.extend(compare_checks)
            problems.extend(peer_problems)
            rows.extend(r for r in compared if r["path"] != bench_report.OURS)

        rows.extend(run_floors(procs, tmp, gw_core, lg_core, base_config, args, upstream_url))

        order = {"direct": 0}
        rows.sort(key=lambda r: (r["stream"], order.get(r["path"], 1), r["path"].replace("REST", "A")))
        print()
        bench_report.print_table(rows, args.concurrency)
        bench_report.print_targets(rows, peaks, {v.name: (f"st-ai REST{v.suffix}", f"st-ai gRPC{v.suffix}")
                                                 for v in variants})
        if len({r["path"] for r in compared}) > 1:
            bench_report.print_peers(compared, args.concurrency, args.rounds)
        bench_report.print_notes(rows, gw_core is not None)
        for problem in problems:
            print(f"  NOT MEASURED: {problem}")
        if not bench_report.print_checks(checks) or problems:
            exit_code = 1
        print(f"\n(total {time.monotonic() - started:.0f} s)")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        exit_code = 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if exit_code:
        sys.exit(exit_code)


def run_floors(procs: Processes, tmp: Path, gw_core, lg_core, base_config: dict, args,
               upstream_url: str) -> list[dict]:
    """The floors under st-ai's rows, each on the gateway's core after st-ai has run and loaded
    as st-ai's rows of its transport are: the bare aiohttp relay (scripts/bench_rest_floor.py)
    under the REST rows, the bare grpc.aio server of st-ai's Chat service
    (scripts/bench_grpc_floor.py) under the gRPC rows."""
    rows = _run_floor(procs, tmp, gw_core, lg_core, base_config, args, bench_report.REST_FLOOR, "rest",
                      [str(SCRIPTS / "bench_rest_floor.py"), upstream_url], lambda port: f"http://127.0.0.1:{port}/v1")
    return rows + _run_floor(procs, tmp, gw_core, lg_core, base_config, args, bench_report.FLOOR, "grpc",
                             [str(SCRIPTS / "bench_grpc_floor.py"), "--chunks", str(args.chunks)],
                             lambda port: f"127.0.0.1:{port}")


def _run_floor(procs: Processes, tmp: Path, gw_core, lg_core, base_config: dict, args, path: str, transport: str,
               argv: list[str], target) -> list[dict]:
    name = path.replace(" ", "-").replace(".", "")
    port_file, log = tmp / f"{name}.port", tmp / f"{name}.log"
    floor = procs.start([sys.executable, *argv, "--port-file", str(port_file)], log, _one_core(gw_core))
    port = wait_for(f"the {path}", lambda: port_file.exists() and port_file.read_text(), floor, log)
    scenarios = [{"label": f"{path} {'stream' if stream else 'unary'}", "path": path, "transport": transport,
                  "target": target(port), "auth": "-", "model": MODEL, "stream": stream}
                 for stream in (False, True)]
    config = base_config | {"gateway_pid": floor.pid, "scenarios": scenarios, "grpc_channels": 1}
    print(f"running against the {path} (pid {floor.pid}):", file=sys.stderr)
    try:
        return run_loadgen(procs, tmp, lg_core, config, len(scenarios) * (args.phase_cap * 3 + args.seconds + 15) + 30)
    finally:
        procs.stop(floor)


def run_comparison(procs: Processes, tmp: Path, db_path: Path, starts: list, gw_core, lg_core, base_config: dict,
                   args, upstream_url: str) -> tuple[list[dict], list, list[str]]:
    """st-ai and the other projects' gateways (scripts/bench_peers.py) up together, each on
    the gateway's core, their REST phases taken in turn (whole answers through each, then
    streams through each) for `args.rounds` rounds, so that a host that slows down or
    speeds up during the run weighs on all of them alike. Returns
    each gateway's median rows (st-ai's as bench_report.OURS), st-ai's checks for this
    part, and the gateways that could not be measured."""
    core = _one_core(gw_core)
    token = "bench-compare"
    key = bench_checks.add_token(db_path, token, bare=False)
    gateway, base_url, _, log = start_gateway(procs, tmp, db_path, core, "compare", {"GRPC_EXPERIMENTS": EE_OFF})
    # (name, target, auth, process, extra scenario fields)
    gateways = [(bench_report.OURS, base_url, key, gateway, {})]
    problems = []
    for start in starts:
        try:
            peer = start(procs, tmp, core, upstream_url, free_port())
        except RuntimeError as exc:
            problems.append(str(exc))
            continue
        # a stream's finish reason may come as an event of its own: at least the upstream's events
        gateways.append((peer.name, peer.base_url, peer.auth, peer.proc,
                         {"headers": peer.headers, "idle": [peer.idle_path, peer.idle_body], "at_least": True}))
    rows: list[dict] = []
    try:
        for round_number in range(1, args.rounds + 1):
            print(f"comparing, round {round_number} of {args.rounds}:", file=sys.stderr)
            # one kind of request through every gateway, then the other: what is compared runs minutes apart at most
            for stream in (False, True):
                for name, target, auth, proc, extra in gateways:
                    scenario = {"label": f"{name} {'stream' if stream else 'unary'} ({round_number}/{args.rounds})",
                                "path": name, "transport": "rest", "target": target, "auth": auth, "model": MODEL,
                                "stream": stream, **extra}
                    config = base_config | {"gateway_pid": proc.pid, "scenarios": [scenario]}
                    rows.extend(run_loadgen(procs, tmp, lg_core, config, args.phase_cap * 3 + args.seconds + 45))
        mine = [r for r in rows if r["path"] == bench_report.OURS]
        checks = [_metrics(COMPARED, base_url, mine)]
    finally:
        for _, _, _, proc, _ in reversed(gateways):
            procs.stop(proc)  # st-ai last: SIGTERM, it drains, every settlement is in the ledger
    checks += _books(COMPARED, mine, db_path, token, args.chunks, True, log)
    return bench_report.medians(rows), checks, problems


def run_variant(procs: Processes, tmp: Path, db_path: Path, index: int, variant: Variant, args, gw_core, lg_core,
                base_config: dict, upstream_url: str):
    """One gateway: start it, load it, scrape its metrics, stop it, check its ledger.
    Returns its rows, its (RSS, peak RSS) after load and its checks."""
    token = f"bench-v{index}"
    key = bench_checks.add_token(db_path, token, bare=variant.bare)
    model = MODEL_BARE if variant.bare else MODEL
    env = dict(variant.env)
    gateway, base_url, grpc_target, log = start_gateway(procs, tmp, db_path, gw_core, f"v{index}", env,
                                                        variant.extra, args.workers)
    scenarios = []
    for stream in (False, True):
        mode = "stream" if stream else "unary"
        if index == 0:
            scenarios.append({"label": f"direct {mode}", "path": "direct", "transport": "rest",
                              "target": upstream_url, "auth": UPSTREAM_KEY, "model": model, "stream": stream})
        scenarios.append({"label": f"{variant.name} REST {mode}", "path": f"st-ai REST{variant.suffix}",
                          "transport": "rest", "target": base_url, "auth": key, "model": model, "stream": stream})
        scenarios.append({"label": f"{variant.name} gRPC {mode}", "path": f"st-ai gRPC{variant.suffix}",
                          "transport": "grpc", "target": grpc_target, "auth": key, "model": model, "stream": stream})
    config = base_config | {"gateway_pid": gateway.pid, "scenarios": scenarios}
    cap = len(scenarios) * (args.phase_cap * 3 + args.seconds + 15) + 30
    print(f"running against {variant.name} (pid {gateway.pid}"
          f"{', GRPC_EXPERIMENTS=' + env['GRPC_EXPERIMENTS'] if env.get('GRPC_EXPERIMENTS') else ''}):",
          file=sys.stderr)
    rows = run_loadgen(procs, tmp, lg_core, config, cap)
    mine = [r for r in rows if r["path"] != "direct"]
    checks = [_metrics(variant.name, base_url, mine)]
    reading = family_memory_mb(gateway.pid)
    procs.stop(gateway)  # SIGTERM: it drains, and every settlement is in the ledger
    checks += _books(variant.name, mine, db_path, token, args.chunks, not variant.bare, log)
    return rows, reading, checks


def _metrics(name: str, base_url: str, rows: list[dict]) -> tuple[str, str, bench_checks.Check]:
    """A running st-ai's GET /metrics against what its `rows` sent it."""
    sent, answered = sum(r["sent"] for r in rows), sum(r["answered"] for r in rows)
    streams = sum(r["answered"] for r in rows if r["stream"])
    try:
        return name, "metrics", bench_checks.metrics_check(base_url.removesuffix("/v1"), sent, answered, streams)
    except (OSError, URLError, ValueError) as exc:
        return name, "metrics", bench_checks.Check(False, f"GET /metrics failed: {exc}")


def _books(name: str, rows: list[dict], db_path: Path, token: str, chunks: int, priced: bool,
           log: Path) -> list[tuple[str, str, bench_checks.Check]]:
    """A stopped st-ai's ledger for `token` and its Server-Timing against what its `rows`
    sent it; what it logged as a warning or error is told on stderr."""
    sent, answered = sum(r["sent"] for r in rows), sum(r["answered"] for r in rows)
    no_timing = sum(r["no_timing"] for r in rows)
    where = "REST header, gRPC metadata" if any(r["transport"] == "grpc" for r in rows) else "REST header"
    notes = logged_problems(log)
    if notes:
        print(f"  {name} logged {len(notes)} warning(s) or error(s), e.g.: {notes[0][:300]}", file=sys.stderr)
    return [(name, "ledger", bench_checks.ledger_check(db_path, token, sent, answered, chunks, priced=priced)),
            (name, "Server-Timing", bench_checks.Check(
                no_timing == 0, f"missing on {no_timing} of {sent} answers" if no_timing else
                f"on every answer ({where}) of {sent} requests"))]


def _one_core(gw_core: int | set[int] | None) -> int | None:
    """The gateway's first core: a process of one event loop uses one."""
    return min(gw_core) if isinstance(gw_core, set) else gw_core


if __name__ == "__main__":
    main()
