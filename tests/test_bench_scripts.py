"""scripts/bench.py and scripts/soak.py in their smallest settings, so they cannot rot: each
starts its upstream and a real `st-ai serve` on 127.0.0.1, sends a few requests of every
kind, and must finish with its checks passed (every request booked once at its price,
counted by the metrics, answered with Server-Timing). No speed is asserted; the figures
are only required to be printed."""
from __future__ import annotations

import re
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
    for path in ("direct", "st-ai REST", "st-ai gRPC"):
        for mode in ("unary", "stream"):
            assert (path, mode) in rows, (path, mode, out)
            assert rows[(path, mode)][-1] == "python" and rows[(path, mode)][-2] == "0"  # errors
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
    for path in ("direct", "st-ai REST", "st-ai REST [bare]"):
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
