"""scripts/bench.py and scripts/soak.py in their smallest settings, so they cannot rot: each
starts its upstream and a real `st-ai serve` on 127.0.0.1, sends a few requests of every
kind, and must finish with its checks passed (every request booked once at its price,
counted by the metrics, answered with Server-Timing). No speed is asserted; the figures
are only required to be printed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
import bench_wrk  # noqa: E402

SMALL = ("--requests", "40", "--stream-requests", "16", "--latency-requests", "10", "--concurrency", "4",
         "--phase-cap", "5", "--seconds", "1", "--no-pin-core")


def run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def table_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """The bench table's rows by (path, mode)."""
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) > 10 and cells[1] in ("unary", "stream"):
            rows[(cells[0], cells[1])] = cells
    return rows


def assert_checks_passed(out: str, variants: list[str]) -> None:
    for variant in variants:
        for what in ("metrics", "ledger", "Server-Timing"):
            assert re.search(rf"^  {re.escape(variant)} {what}: OK: ", out, re.M), (variant, what, out)
    assert "FAILED" not in out


def test_the_bench_measures_every_path_with_every_feature_on_and_checks_the_books():
    result = run("bench.py", *SMALL, "--loadgen", "python", timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = table_rows(out)
    for path in ("direct", "st-ai REST", "st-ai gRPC", "aiohttp relay floor", "grpc.aio floor"):
        for mode in ("unary", "stream"):
            assert (path, mode) in rows, (path, mode, out)
            assert rows[(path, mode)][-1] == "python" and rows[(path, mode)][-2] == "0"  # errors
    # the bare gRPC server's CPU per call is measured and shown under st-ai's gRPC targets; forty
    # calls of it can take less than one tick of the kernel's CPU clock (10 ms), read as zero
    assert float(rows[("grpc.aio floor", "unary")][10]) >= 0 and float(rows[("grpc.aio floor", "stream")][10]) >= 0
    assert len(re.findall(r"^    bare grpc\.aio server \(floor\) +\d+\.\d\d ms CPU(, at most [\d,]+/s)? ", out, re.M)) == 2
    # the bare aiohttp relay's added latency is shown under st-ai's (p50, then time to first token)
    floor_lines = re.findall(r"^  REST added (p50 at concurrency 1|time to first token) .*\n"
                             r"    bare aiohttp relay \(floor\) +[+-]\d+\.\d\d ms ", out, re.M)
    assert floor_lines == ["p50 at concurrency 1", "time to first token"], out
    assert_checks_passed(out, ["st-ai"])
    for target in ("REST whole answers", "REST streams (20 chunks)", "gRPC whole answers", "gRPC streams",
                   "REST added p50 at concurrency 1", "REST added time to first token", "RSS after load, per worker"):
        assert re.search(rf"^  {re.escape(target)} .* target ", out, re.M), (target, out)
    assert "Python (aiohttp, grpc.aio) for everything" in out
    # every request sent through st-ai was one ledger row: the check names the count
    ledger = re.search(r"st-ai ledger: OK: (\d+) rows for (\d+) requests sent", out)
    assert ledger and ledger.group(1) == ledger.group(2) and int(ledger.group(1)) > 0


@pytest.mark.skipif(not bench_wrk.available(), reason="wrk is not installed")
def test_the_bench_drives_rest_through_wrk_beside_a_bare_gateway():
    result = run("bench.py", *SMALL, "--bare", timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = table_rows(out)
    for path in ("direct", "st-ai REST", "st-ai REST [bare]", "aiohttp relay floor"):
        for mode in ("unary", "stream"):
            assert rows[(path, mode)][-1] == "wrk", (path, mode, out)
            assert rows[(path, mode)][-2] == "0", (path, mode, out)
    assert rows[("st-ai gRPC [bare]", "stream")][-1] == "python"
    assert_checks_passed(out, ["st-ai", "st-ai[bare]"])
    assert "(unpriced)" in out  # the bare gateway booked its requests at zero
    assert re.search(r"wrk \S+ for REST and direct throughput", out), out


def test_the_bench_spreads_its_load_over_two_workers():
    # 16 connections: the kernel hashes each to a worker, so both get some but with odds of 1 in 30,000
    result = run("bench.py", *SMALL, "--workers", "2", "--concurrency", "16", "--requests", "120", timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert_checks_passed(out, ["st-ai"])
    rows = table_rows(out)
    for path in ("st-ai REST", "st-ai gRPC"):
        split = rows[(path, "unary")][-3]  # 'worker split': each worker's share of the gateway's CPU
        shares = [int(s) for s in split.split("/")]
        assert len(shares) == 2 and all(share >= 5 for share in shares), (path, split, out)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed (apt-get install valgrind)")
def test_instruction_counts_are_printed_for_every_path_beside_the_floor_relay():
    result = run("bench_instructions.py", "--requests", "6", "--concurrency", "2", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        if re.match(r"(floor relay|st-ai REST|st-ai gRPC) (unary|stream) ", line):
            rows[line[:22].strip()] = line[22:].split()
    assert set(rows) == {"floor relay unary", "st-ai REST unary", "floor relay stream", "st-ai REST stream",
                         "st-ai gRPC unary"}, result.stdout
    for name, (total, loop, other, ratio, failed) in rows.items():
        assert float(total) > 0 and float(loop) > 0 and failed == "0", (name, result.stdout)
        assert abs(float(total) - float(loop) - float(other)) < 0.002, (name, result.stdout)
        if name.startswith("st-ai"):
            assert float(ratio) > 1, (name, result.stdout)  # more work than a bare relay: counted for real


# The other projects' gateways are installed outside st-ai (scripts/bench_peers.py says how);
# these paths name them: a folder where `npm install @portkey-ai/gateway` ran, and a
# virtualenv with `litellm[proxy]`.
PORTKEY = os.environ.get("ST_AI_BENCH_PORTKEY")
LITELLM = os.environ.get("ST_AI_BENCH_LITELLM")


@pytest.mark.skipif(not (PORTKEY and LITELLM and bench_wrk.available()),
                    reason="set ST_AI_BENCH_PORTKEY and ST_AI_BENCH_LITELLM to installed gateways (and install wrk)")
def test_the_bench_loads_portkey_and_litellm_in_turn_with_st_ai_and_prints_the_ratios():
    result = run("bench.py", *SMALL, "--portkey", PORTKEY, "--litellm", LITELLM, "--rounds", "2",
                 *(("--node", os.environ["ST_AI_BENCH_NODE"]) if os.environ.get("ST_AI_BENCH_NODE") else ()),
                 timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = table_rows(out)
    for prefix in ("Portkey ", "LiteLLM "):
        for mode in ("unary", "stream"):
            found = [cells for (path, m), cells in rows.items() if path.startswith(prefix) and m == mode]
            assert len(found) == 1, (prefix, mode, out)
            cells = found[0]
            # loaded through wrk, every answer whole, its own CPU and memory read
            assert cells[-1] == "wrk" and cells[-2] == "0" and float(cells[10]) > 0 and float(cells[15]) > 0, cells
    table = out[out.index("beside the other gateways"):]
    assert "median of 2 rounds" in table
    assert re.search(r"^  Portkey \S+ \(node [\d.]+\) +[\d,]+ +\d+\.\d\d ", table, re.M), table
    assert re.search(r"^  LiteLLM \S+ +[\d,]+ +\d+\.\d\d ", table, re.M), table
    assert re.search(r"^  st-ai \(every feature on\) +[\d,]+ +\d+\.\d\d ", table, re.M), table
    for label in ("REST whole answers, x Portkey's", "REST streams, x Portkey's"):
        assert re.search(rf"^  {re.escape(label)} +\d+\.\d\dx \(median, rounds [\d.]+ [\d.]+\) +target >= ",
                         table, re.M), table
    # the st-ai beside them had every feature on and booked every request too
    assert_checks_passed(out, ["st-ai", "st-ai (compared)"])


def test_the_bench_refuses_a_portkey_folder_without_portkey_before_starting_anything(tmp_path):
    result = run("bench.py", "--portkey", str(tmp_path), timeout=30)
    assert result.returncode == 2
    assert f"no Portkey gateway in {tmp_path}" in result.stderr and "npm install @portkey-ai/gateway" in result.stderr
    result = run("bench.py", "--litellm", str(tmp_path / "nowhere"), timeout=30)
    assert result.returncode == 2 and "no litellm executable" in result.stderr


@pytest.mark.parametrize("script, option, value, told", [
    ("bench.py", "--concurrency", "0", "--concurrency is at least 1"),
    ("bench.py", "--requests", "-5", "--requests is at least 1"),
    ("bench.py", "--stream-requests", "0", "--stream-requests is at least 1"),
    ("bench.py", "--chunks", "0", "--chunks is at least 1"),
    ("bench.py", "--latency-requests", "0", "--latency-requests is at least 1"),
    ("bench.py", "--rounds", "0", "--rounds is at least 1"),
    ("bench.py", "--seconds", "nan", "--seconds is a number of seconds"),
    ("bench.py", "--phase-cap", "-1", "--phase-cap is a number"),
    ("bench.py", "--seconds", "86400", "at most 3600"),
    ("bench_settlement.py", "--concurrency", "0", "--concurrency is at least 1"),
    ("bench_settlement.py", "--phase-cap", "inf", "--phase-cap is a number"),
    ("bench_memory.py", "--many", "0", "--many is at least 1"),
    ("bench_memory.py", "--settle", "nan", "--settle is a number")])
def test_the_benches_refuse_careless_numbers_before_starting_anything(script, option, value, told):
    result = run(script, option, value, timeout=30)
    assert result.returncode == 2 and told in result.stderr and "Traceback" not in result.stderr


def test_the_peer_table_shows_each_gateways_medians_and_judges_the_ratios_to_portkey(capsys):
    import bench_report

    def row(path, stream, rps, cpu, p50, ttft, rss):
        return {"path": path, "stream": stream, "rps": rps, "gw_cpu_ms": cpu, "p50": p50, "ttft50": ttft, "rss": rss,
                "hwm": rss, "p99": p50, "errors": 0, "sent": 10, "answered": 10, "no_timing": 0, "capped": False,
                "error_sample": []}
    portkey = "Portkey 1.15.2 (node 22.1.0)"
    rounds = [  # three rounds; the host slowed down in the second
        row(bench_report.OURS, False, 2100.0, 0.48, 0.0020, None, 75.0), row(bench_report.OURS, True, 700.0, 1.4, 0.003, 0.0025, 79.0),
        row(portkey, False, 1000.0, 1.0, 0.0010, None, 150.0), row(portkey, True, 500.0, 2.0, 0.030, 0.029, 160.0),
        row(bench_report.OURS, False, 1500.0, 0.66, 0.0030, None, 76.0), row(bench_report.OURS, True, 480.0, 2.0, 0.004, 0.0030, 80.0),
        row(portkey, False, 700.0, 1.4, 0.0012, None, 151.0), row(portkey, True, 400.0, 2.5, 0.031, 0.030, 161.0),
        row(bench_report.OURS, False, 2200.0, 0.45, 0.0020, None, 75.0), row(bench_report.OURS, True, 720.0, 1.3, 0.003, 0.0025, 79.0),
        row(portkey, False, 1050.0, 0.95, 0.0010, None, 150.0), row(portkey, True, 520.0, 1.9, 0.030, 0.029, 160.0)]
    medians = bench_report.medians(rounds)
    assert len(medians) == 4 and all(r["sent"] == 30 for r in medians)
    bench_report.print_peers(medians, 32, 3)
    out = capsys.readouterr().out
    assert "median of 3 rounds" in out
    assert re.search(r"^  Portkey 1\.15\.2 \(node 22\.1\.0\) +1,000 +1\.00 +1\.00 +500 +2\.00 +29\.00 +161$", out, re.M), out
    assert re.search(r"^  st-ai \(every feature on\) +2,100 +0\.48 +2\.00 +700 +1\.40 +2\.50 +80$", out, re.M), out
    # the ratio is the median of each round's: 2100/1000, 1500/700, 2200/1050
    assert re.search(r"REST whole answers, x Portkey's +2\.10x \(median, rounds 2\.10 2\.14 2\.10\) +target >= 2x +met$",
                     out, re.M), out
    assert re.search(r"REST streams, x Portkey's +1\.38x \(median, rounds 1\.40 1\.20 1\.38\) +target >= 1\.5x +NOT MET$",
                     out, re.M), out


def test_a_short_soak_samples_the_gateway_and_judges_it():
    result = run("soak.py", "--minutes", "0.1", "--rate", "20", "--every", "1", timeout=100)
    out = result.stdout
    samples = re.findall(r"^\s+\d+ s  plain (\d+)  stream (\d+)  cancelled (\d+)  errors (\d+)  "
                         r"RSS\s+[\d.]+ MB  fds (\d+)  tasks (\S+)$", out, re.M)
    assert len(samples) >= 5, out + result.stderr
    plain, stream, cancelled, errors, _, _ = samples[-1]
    assert int(plain) > 0 and int(stream) > 0 and int(cancelled) > 0 and errors == "0", out
    assert re.search(r"^ledger: OK: ", out, re.M), out
    for judged in ("RSS ", "open fds", "asyncio tasks"):
        assert re.search(rf"^  {judged}", out, re.M), (judged, out)
    verdict = re.search(r"^verdict: (PASS|FAIL)$", out, re.M)
    assert verdict, out
    # a 6-second run may not be flat yet; what it judged is its exit status
    assert result.returncode == (0 if verdict.group(1) == "PASS" else 1), out + result.stderr


# -- the ledger check itself: it must catch a gateway that books wrong ---------------------------

def _booked(tmp_path: Path, plain: int, streams: int, cut: int = 0, chunks: int = 20) -> Path:
    """A database whose token `bench` booked `plain` whole answers, `streams` streams and
    `cut` streams its client left, each at the bench's price, through the store st-ai uses."""
    import time

    import bench_checks
    from bench_upstream import COMPLETION_TOKENS, PROMPT_TOKENS
    from server.store import quota
    from server.store.db import open_db

    db_path = tmp_path / "bench.db"
    bench_checks.add_token(db_path, "bench", bare=False)
    db = open_db(str(db_path))
    try:
        token_id = db.execute("SELECT id FROM tokens WHERE name = 'bench'").fetchone()[0]
        rows = ([(200, False, COMPLETION_TOKENS, bench_checks.plain_cost())] * plain
                + [(200, True, chunks, bench_checks.stream_cost(chunks))] * streams
                + [(499, True, chunks, bench_checks.stream_cost(chunks))] * cut)
        quota.settle_many(db, [quota.Settlement(None, quota.LedgerRow(
            time.time(), None, token_id, "bench-model", "bench-model", None, "chat", status, cost=cost,
            prompt_tokens=PROMPT_TOKENS, completion_tokens=completion, stream=stream))
            for status, stream, completion, cost in rows])
    finally:
        db.close()
    return db_path


def test_the_ledger_check_passes_books_that_match_what_was_sent(tmp_path):
    import bench_checks
    db_path = _booked(tmp_path, plain=3, streams=2, cut=1)
    check = bench_checks.ledger_check(db_path, "bench", sent=6, answered=5, chunks=20, priced=True, cancelled=1)
    assert check.ok, check.line


def test_the_ledger_check_fails_a_request_that_was_not_booked(tmp_path):
    import bench_checks
    check = bench_checks.ledger_check(_booked(tmp_path, plain=3, streams=2), "bench", sent=6, answered=6, chunks=20,
                                      priced=True)
    assert not check.ok and "5 rows for 6 requests sent" in check.line


def test_the_ledger_check_fails_a_wrong_cost_or_a_used_that_drifted(tmp_path):
    import bench_checks
    from server.store.db import open_db
    db_path = _booked(tmp_path, plain=3, streams=2)
    db = open_db(str(db_path))
    try:
        with db.conn:
            db.execute("UPDATE ledger SET cost = cost + 1 WHERE id = (SELECT MIN(id) FROM ledger)")
    finally:
        db.close()
    check = bench_checks.ledger_check(db_path, "bench", sent=5, answered=5, chunks=20, priced=True)
    assert not check.ok and "the price says" in check.line and "the token's used is" in check.line


def test_the_ledger_check_fails_a_reservation_left_behind(tmp_path):
    import bench_checks
    from server.store import quota
    from server.store.db import open_db
    db_path = _booked(tmp_path, plain=1, streams=0)
    db = open_db(str(db_path))
    try:
        token_id = db.execute("SELECT id FROM tokens WHERE name = 'bench'").fetchone()[0]
        quota.reserve(db, token_id, 100, "bench")
    finally:
        db.close()
    check = bench_checks.ledger_check(db_path, "bench", sent=1, answered=1, chunks=20, priced=True)
    assert not check.ok and "1 reservations" in check.line
