"""`st-ai token create/update/show/list` with rate limits and address rules: stored, shown in
text and JSON, cleared with `none`; careless values refused in one line, nothing written."""
from __future__ import annotations

import json
import sys

import pytest

from server.cli import main
from server.store import tokens as token_store
from server.store.db import open_db


@pytest.fixture
def st_ai(tmp_path, capsys):
    """`st-ai ARGS --db <the test's database>` in this process: (exit code, stdout, stderr)."""
    db_path = str(tmp_path / "cli.db")

    def call(*args: str) -> tuple[int, str, str]:
        try:
            main([*args, "--db", db_path])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)  # what the shell would show
        out, err = capsys.readouterr()
        return code, out, err
    call.db_path = db_path
    return call


def stored(db_path: str, name: str) -> token_store.Token:
    db = open_db(db_path)
    try:
        return token_store.get(db, name)
    finally:
        db.close()


def shown(st_ai, name: str) -> dict:
    code, out, _ = st_ai("token", "show", name, "--json")
    assert code == 0
    return json.loads(out)


def test_limits_set_at_create_are_stored_and_shown(st_ai):
    code, out, _ = st_ai("token", "create", "--name", "app", "--rpm", "60", "--tpm", "40000",
                         "--max-concurrency", "4", "--allow-ip", "203.0.113.7, 10.0.0.0/8,2001:db8::/32")
    assert code == 0 and "rpm 60, tpm 40000, concurrency 4" in out
    assert {k: v for k, v in shown(st_ai, "app").items() if k in ("rpm", "tpm", "max_concurrency", "allow_ip")} == {
        "rpm": 60, "tpm": 40000, "max_concurrency": 4,
        "allow_ip": ["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"]}
    _, text, _ = st_ai("token", "show", "app")
    assert "rpm: 60" in text and "allow_ip: 203.0.113.7/32,10.0.0.0/8,2001:db8::/32" in text
    _, listing, _ = st_ai("token", "list")
    assert "LIMITS" in listing and "rpm 60, tpm 40000, concurrency 4" in listing and "10.0.0.0/8" in listing


def test_update_changes_one_limit_keeps_the_others_and_none_clears(st_ai):
    st_ai("token", "create", "--name", "app", "--rpm", "60", "--tpm", "40000", "--allow-ip", "10.0.0.0/8")
    assert st_ai("token", "update", "app", "--rpm", "10")[0] == 0
    token = stored(st_ai.db_path, "app")
    assert (token.limits.rpm, token.limits.tpm, token.limits.max_concurrency) == (10, 40000, None)
    assert st_ai("token", "update", "app", "--tpm", "none", "--allow-ip", "none", "--max-concurrency", "2")[0] == 0
    after = shown(st_ai, "app")
    assert (after["rpm"], after["tpm"], after["max_concurrency"], after["allow_ip"]) == (10, None, 2, None)


@pytest.mark.parametrize("flag, value, named", [
    ("--rpm", "0", "--rpm '0'"), ("--rpm", "-5", "--rpm '-5'"), ("--tpm", "1.5", "--tpm '1.5'"),
    ("--max-concurrency", "lots", "--max-concurrency 'lots'"), ("--tpm", "10000000000", "1000000000"),
    ("--allow-ip", "10.0.0.1/8", "write 10.0.0.0/8"), ("--allow-ip", "127.1", "'127.1'"),
    ("--allow-ip", "10.0.0.0/33", "'10.0.0.0/33'"), ("--allow-ip", " , ", "names no address"),
    ("--allow-ip", "none", "'none'"),  # clearing is for update: a new token has nothing to clear
])
def test_careless_limits_are_refused_in_one_line_and_nothing_is_written(st_ai, flag, value, named):
    code, out, err = st_ai("token", "create", "--name", "app", flag, value)
    assert code != 0 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    db = open_db(st_ai.db_path)
    try:
        assert token_store.all_tokens(db) == []
    finally:
        db.close()


def test_a_careless_update_changes_nothing(st_ai):
    st_ai("token", "create", "--name", "app", "--rpm", "60")
    code, _, err = st_ai("token", "update", "app", "--tpm", "100", "--allow-ip", "10.0.0.1/8")
    assert code != 0 and "10.0.0.0/8" in err
    code, _, err = st_ai("token", "update", "app", "--rpm", "5", "--add-quota", "1")  # no quota to add to
    assert code != 0 and "unlimited" in err
    token = stored(st_ai.db_path, "app")
    assert (token.limits.rpm, token.limits.tpm, token.allow_ip) == (60, None, None)


def test_serve_refuses_a_trusted_proxy_that_is_not_an_address(st_ai):
    code, _, err = st_ai("serve", "--trusted-proxy", "proxy.example.com", "--http-port", "0", "--grpc-port", "0")
    assert code == 2 and "--trusted-proxy" in err and "'proxy.example.com'" in err
