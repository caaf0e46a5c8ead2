"""The folder the workers of `serve --workers N` share their Prometheus numbers in
(server/metrics_folder.py): made and removed by `serve` unless the operator names one, and
one left by a `serve` killed outright is swept at the next start."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server import metrics_folder, socket_folders

pytestmark = pytest.mark.timeout(60)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(15)
    return proc.pid


def folder(temp: Path, name: str, pid: int, *files: str) -> Path:
    made = temp / f"{metrics_folder.PREFIX}{name}"
    made.mkdir()
    (made / "pid").write_text(str(pid))
    for file in files:
        (made / file).write_bytes(b"\0" * 16)
    return made


def test_a_fresh_private_folder_is_set_for_the_workers_and_removed_afterwards(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics_folder.ENV, raising=False)
    with metrics_folder.for_workers(str(tmp_path)) as shared:
        assert os.environ[metrics_folder.ENV] == shared
        assert Path(shared).name.startswith(metrics_folder.PREFIX)
        assert (Path(shared) / "pid").read_text() == str(os.getpid())
        (Path(shared) / "counter_1.db").write_bytes(b"")
    assert metrics_folder.ENV not in os.environ
    assert list(tmp_path.iterdir()) == []


def test_the_operators_folder_is_used_as_it_is_and_kept(tmp_path, monkeypatch):
    own = tmp_path / "prometheus"
    own.mkdir()
    monkeypatch.setenv(metrics_folder.ENV, str(own))
    with metrics_folder.for_workers(str(tmp_path)) as shared:
        assert shared == str(own)
    assert os.environ[metrics_folder.ENV] == str(own) and own.is_dir()
    assert list(tmp_path.iterdir()) == [own]


def test_only_folders_whose_owner_is_gone_are_swept(tmp_path):
    killed = folder(tmp_path, "killed", dead_pid(), "counter_7.db", "gauge_livesum_7.db")
    live = folder(tmp_path, "live", os.getpid(), "counter_8.db")
    foreign = folder(tmp_path, "foreign", dead_pid(), "notes.txt")  # not a folder st-ai made
    assert metrics_folder.sweep_stale(str(tmp_path)) == [str(killed)]
    assert sorted(tmp_path.iterdir()) == sorted([live, foreign])


def test_the_socket_sweep_leaves_a_live_metrics_folder_alone(tmp_path):
    live = folder(tmp_path, "live", os.getpid(), "counter_8.db")
    socket_folders.sweep_stale(str(tmp_path))
    assert live.is_dir()
