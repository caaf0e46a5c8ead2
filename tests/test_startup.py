"""Starting and stopping: a busy port stops every command with one line, before anything
is created; the private socket folder is removed on every way out."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import READY


def occupied_port() -> socket.socket:
    """A port someone else listens on."""
    return socket.create_server(("127.0.0.1", 0))


def st_ai(tmp_path: Path, *args: str) -> subprocess.Popen:
    # the temp directory is the test's own, so what st-ai leaves there can be seen
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path / "tmp"), "ST_AI_LOG_LEVEL": "WARNING"})


def refused(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err + out
    assert out == ""  # no demo token, no ready line
    assert len(err.strip().splitlines()) == 1, err
    return err


def created(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.name != "tmp")


SERVE = ["--db", "st-ai.db", "--assets-dir", "assets", "--host", "127.0.0.1"]


@pytest.mark.parametrize("command, busy_option, free_options", [
    (["serve"], "--http-port", ["--grpc-port", "0"]),
    (["serve"], "--grpc-port", ["--http-port", "0"]),
    (["serve", "--demo"], "--http-port", ["--grpc-port", "0"]),
    (["serve", "--demo"], "--grpc-port", ["--http-port", "0"]),
    (["grpc"], "--grpc-port", []),
])
def test_a_busy_port_stops_the_gateway_in_one_line_before_anything_is_created(tmp_path, command, busy_option,
                                                                             free_options):
    with occupied_port() as busy:
        port = busy.getsockname()[1]
        err = refused(st_ai(tmp_path, *command, *SERVE, busy_option, str(port), *free_options))
    assert f"127.0.0.1:{port}" in err and busy_option in err
    assert created(tmp_path) == []  # no database, no demo token in it, no assets, no socket folder


def test_a_busy_port_leaves_an_existing_database_without_a_demo_token(tmp_path):
    open_db(str(tmp_path / "st-ai.db")).close()
    with occupied_port() as busy:
        refused(st_ai(tmp_path, "serve", "--demo", *SERVE, "--http-port", str(busy.getsockname()[1]),
                      "--grpc-port", "0"))
    db = open_db(str(tmp_path / "st-ai.db"))
    try:
        assert (token_store.all_tokens(db), channel_store.all_channels(db)) == ([], [])
    finally:
        db.close()
    assert not (tmp_path / "assets").exists() and list((tmp_path / "tmp").iterdir()) == []


def test_a_busy_port_stops_the_bridge_in_one_line(tmp_path):
    with occupied_port() as busy:
        port = busy.getsockname()[1]
        err = refused(st_ai(tmp_path, "bridge", "--grpc-target", "127.0.0.1:1", "--http-port", str(port)))
    assert f"127.0.0.1:{port}" in err and "--http-port" in err


def wait_ready(proc: subprocess.Popen) -> list[str]:
    """What st-ai printed up to its ready line (the last)."""
    printed = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        printed.append(proc.stdout.readline())
        if READY.search(printed[-1]):
            return printed
        if not printed[-1]:
            break
    proc.kill()
    raise AssertionError("st-ai serve did not start: " + proc.stderr.read())


@pytest.mark.parametrize("dispatch, folders", [("grpc", ["st-ai-"]), ("in-process", [])])
def test_serve_removes_its_socket_folder_when_stopped(tmp_path, dispatch, folders):
    # only the gRPC hop between bridge and services needs a private socket
    proc = st_ai(tmp_path, "serve", *SERVE, "--http-port", "0", "--grpc-port", "0", "--dispatch", dispatch)
    try:
        wait_ready(proc)
        assert [p.name[:6] for p in (tmp_path / "tmp").iterdir()] == folders
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert list((tmp_path / "tmp").iterdir()) == []


def test_serve_removes_its_socket_folder_when_the_start_fails(tmp_path):
    # the database cannot be opened: st-ai fails after making its socket folder
    proc = st_ai(tmp_path, "serve", "--db", str(tmp_path / "no" / "such" / "dir.db"), "--assets-dir", "assets",
                 "--http-port", "0", "--grpc-port", "0")
    err = refused(proc)
    assert "database" in err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_demo_token_is_created_once_the_ports_are_bound(tmp_path):
    proc = st_ai(tmp_path, "serve", "--demo", *SERVE, "--http-port", "0", "--grpc-port", "0")
    try:
        printed = wait_ready(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    http_url = READY.search(printed[-1]).group(1)
    assert any("demo: created the token 'demo'" in line for line in printed)
    # the hint names the port really bound, not the default
    assert any(f"curl -s {http_url}/v1/chat/completions" in line for line in printed)
