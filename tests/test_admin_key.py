"""The admin key: created on the first start of `serve` (or `grpc`) and printed once,
alone on its line; stored only as its hash; ST_AI_ADMIN_KEY honoured instead; a lost
key replaced from the CLI (printed once, the old one refused at once)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.store.db import open_db
from tests.conftest import ROOT, start_gateway, stop_gateway

GENERATED = re.compile(r"^sk-admin-[A-Za-z0-9]{48}$")
ENV_KEY = "env-admin-key-abcdefghijklmnopqrstuvwxyz"
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(120)


def admin_status(gateway, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(gateway.http_url + "/api/v1/tokens", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def key_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "sk-admin-" in line]


def cli(db_path: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "ST_AI_ADMIN_KEY"} | (env or {})
    return subprocess.run([sys.executable, "-m", "server.cli", *args, "--db", db_path], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "st-ai.db")


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("ST_AI_ADMIN_KEY", raising=False)


def test_the_generated_key_is_printed_once_alone_on_its_line_and_stored_only_hashed(db_path):
    first = start_gateway(db_path)
    try:
        printed = key_lines(first.output)
        assert len(printed) == 1 and GENERATED.match(printed[0]), first.output
        key = printed[0]
        assert admin_status(first, key) == 200
    finally:
        stop_gateway(first)
    second = start_gateway(db_path)
    try:
        assert key_lines(second.output) == [] and key not in second.output
        assert admin_status(second, key) == 200
    finally:
        stop_gateway(second)
    for file in Path(db_path).parent.glob("st-ai.db*"):
        assert key.encode() not in file.read_bytes() and key[9:].encode() not in file.read_bytes()


def test_st_ai_grpc_creates_the_key_too(db_path, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "grpc", "--db", db_path, "--grpc-port", "0",
                             "--assets-dir", str(tmp_path / "assets")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("ready" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert any(GENERATED.match(line) for line in lines), lines
    finally:
        proc.terminate()
        proc.wait(15)


def test_st_ai_admin_key_is_honoured_and_no_key_is_generated(db_path):
    gateway = start_gateway(db_path, env={"ST_AI_ADMIN_KEY": ENV_KEY})
    try:
        assert key_lines(gateway.output) == []
        assert admin_status(gateway, ENV_KEY) == 200
        assert admin_status(gateway, ENV_KEY + "x") == 401
        assert admin_status(gateway, None) == 401
        # a stored key (made from the CLI) is not the admin key while ST_AI_ADMIN_KEY is set
        stored = cli(db_path, "admin-key", "rotate").stdout.strip().splitlines()[-1]
        assert GENERATED.match(stored) and admin_status(gateway, stored) == 401
    finally:
        stop_gateway(gateway)
    db = open_db(db_path)
    try:
        assert ENV_KEY.encode() not in json.dumps(list(db.query("SELECT * FROM admin_keys"))).encode()
    finally:
        db.close()


def test_a_short_st_ai_admin_key_stops_serve_with_one_line(db_path):
    result = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--db", db_path, "--http-port", "0",
                             "--grpc-port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "ST_AI_ADMIN_KEY": "short"})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "ST_AI_ADMIN_KEY must be at least" in result.stderr
    assert "short" not in result.stderr.replace("ST_AI_ADMIN_KEY", "")


def test_a_lost_key_is_replaced_from_the_cli_and_the_old_one_refused_at_once(db_path):
    gateway = start_gateway(db_path)
    try:
        old = key_lines(gateway.output)[0]
        result = cli(db_path, "admin-key", "rotate")
        assert result.returncode == 0
        new = result.stdout.strip().splitlines()[-1]
        assert GENERATED.match(new) and new != old
        assert admin_status(gateway, old) == 401 and admin_status(gateway, new) == 200
        events = json.loads(cli(db_path, "audit", "--json").stdout)
        rotation = [e for e in events if e["operation"] == "admin_key.rotate"]
        assert len(rotation) == 1 and rotation[0]["actor"] == "cli"
        assert new not in json.dumps(events) and old not in json.dumps(events)
    finally:
        stop_gateway(gateway)
