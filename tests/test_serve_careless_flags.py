"""`st-ai serve` as a careless operator runs it: on an IPv6 address (the URLs it prints
must be usable), stopped by a closed terminal (SIGHUP, not only Ctrl-C or SIGTERM), and
with a video poll interval that would flood a provider."""
from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.test_cli import run

pytestmark = pytest.mark.timeout(60)


def _start(tmp_path: Path, *extra: str) -> tuple[Gateway, Path]:
    """`st-ai serve` with its temp directory inside tmp_path; returns it and that directory."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    return start_gateway(str(tmp_path / "st-ai.db"), *extra, env={"TMPDIR": str(temp)}), temp


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_ready_line_of_an_ipv6_listener_is_a_url_that_works(tmp_path):
    gateway, _ = _start(tmp_path, "--host", "::1")
    try:
        assert gateway.http_url.startswith("http://[::1]:"), gateway.http_url
        with urllib.request.urlopen(gateway.http_url + "/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        stop_gateway(gateway)


def test_a_closed_terminal_stops_serve_cleanly_and_removes_its_private_socket_folder(tmp_path):
    gateway, temp = _start(tmp_path, "--dispatch", "grpc")  # only the gRPC hop has a private socket
    proc = gateway.proc
    assert [p.name for p in temp.iterdir() if p.name.startswith("st-ai-")], "no private socket folder"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(15) == 0
    assert not list(temp.iterdir())


@pytest.mark.parametrize("interval", ["0.001", "1e-9", "0.05"])
def test_a_poll_interval_that_would_flood_the_provider_is_refused(tmp_path, interval):
    result = run("serve", "--video-poll-interval", interval, db=str(tmp_path / "st-ai.db"))
    assert result.code == 2 and "--video-poll-interval" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "st-ai.db").exists()
