"""`st-ai serve` killed outright (kill -9) leaves its private socket folder in the temp
directory; the next start sweeps such folders when their owner is gone, and never one a
live st-ai is using."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server import socket_folders
from tests.conftest import start_gateway

pytestmark = pytest.mark.timeout(90)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(15)
    return proc.pid


def _folder(temp: Path, name: str, pid: int | None = None) -> Path:
    folder = temp / f"st-ai-{name}"
    folder.mkdir()
    if pid is not None:
        (folder / "pid").write_text(str(pid))
    return folder


def _socket_without_listener(folder: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "grpc.sock"))  # closed without accept: what a killed process leaves


def test_a_folder_whose_owner_is_gone_and_whose_socket_has_no_listener_is_swept(tmp_path):
    killed = _folder(tmp_path, "killed", _dead_pid())
    _socket_without_listener(killed)
    killed_before_binding = _folder(tmp_path, "early", _dead_pid())
    older_release = _folder(tmp_path, "older")  # no pid file: judged by its socket alone
    _socket_without_listener(older_release)
    assert sorted(socket_folders.sweep_stale(str(tmp_path))) == sorted(
        str(f) for f in (killed, killed_before_binding, older_release))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_a_live_st_ai_uses_is_never_swept(tmp_path):
    running = _folder(tmp_path, "running", os.getpid())
    _socket_without_listener(running)  # not listening yet: its pid still says it is alive
    other_namespace = _folder(tmp_path, "listening", _dead_pid())  # its pid means nothing here
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(other_namespace / "grpc.sock"))
    listener.listen()
    just_created = _folder(tmp_path, "new")  # another st-ai between mkdtemp and writing its pid
    not_ours = _folder(tmp_path, "something-else", _dead_pid())
    (not_ours / "notes.txt").write_text("another program's folder with our prefix")
    try:
        assert socket_folders.sweep_stale(str(tmp_path)) == []
    finally:
        listener.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f.name for f in (running, other_namespace, just_created, not_ours))


def test_an_empty_folder_is_swept_only_once_it_is_old(tmp_path):
    empty = _folder(tmp_path, "empty")
    assert socket_folders.sweep_stale(str(tmp_path)) == []
    old = time.time() - socket_folders.SETTLE_SECONDS - 60
    os.utime(empty, (old, old))
    assert socket_folders.sweep_stale(str(tmp_path)) == [str(empty)]


def _serve(tmp_path: Path, temp: Path, name: str) -> subprocess.Popen:
    """`st-ai serve` on its own database, with `temp` as its temp directory."""
    return start_gateway(str(tmp_path / f"{name}.db"), "--assets-dir", str(tmp_path / f"assets-{name}"),
                         "--dispatch", "grpc", env={"TMPDIR": str(temp)}).proc  # only the gRPC hop has a socket


def _socket_folders(temp: Path) -> set[str]:
    return {p.name for p in temp.iterdir() if p.name.startswith("st-ai-")}


def test_the_next_serve_sweeps_the_folder_of_one_killed_with_sigkill_and_keeps_a_live_ones(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    live = _serve(tmp_path, temp, "live")
    killed = _serve(tmp_path, temp, "killed")
    try:
        live_and_killed = _socket_folders(temp)
        assert len(live_and_killed) == 2
        killed.send_signal(signal.SIGKILL)
        killed.wait(15)
        assert _socket_folders(temp) == live_and_killed  # nothing could remove it
        restarted = _serve(tmp_path, temp, "restarted")
        try:
            now = _socket_folders(temp)
            assert len(now) == 2 and len(now & live_and_killed) == 1, (live_and_killed, now)
            live_folder = next(iter(now & live_and_killed))
            assert (temp / live_folder / "pid").read_text() == str(live.pid)
        finally:
            restarted.terminate()
            restarted.wait(15)
    finally:
        for proc in (live, killed):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
