"""Careless operator input the first round of checks let through: each is refused in one
line with a non-zero exit, no traceback, and nothing written."""
from __future__ import annotations

import pytest

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.test_cli import run

CHANNEL = ["channel", "add", "--name", "c1", "--type", "openai", "--base-url", "http://h.example/v1",
           "--key", "sk-abc", "--models", "m1"]


def _refused(result, db_path: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    db = open_db(db_path)
    try:
        assert not token_store.all_tokens(db) and not channel_store.all_channels(db)
    finally:
        db.close()


@pytest.mark.parametrize("priority", ["99999999999999999999999", "-99999999999999999999999", "1e3", "ten"])
def test_a_priority_sqlite_cannot_hold_or_not_a_whole_number_is_refused(tmp_path, priority):
    db_path = str(tmp_path / "cli.db")
    _refused(run(*CHANNEL, "--priority", priority, db=db_path), db_path)


def test_a_reasonable_priority_is_still_accepted(tmp_path):
    db_path = str(tmp_path / "cli.db")
    assert run(*CHANNEL, "--priority", "-5", db=db_path).code == 0


@pytest.mark.parametrize("name", ["x\ny", "a b", "tab\there", "x" * 65, "nul\x01"])
def test_a_token_name_that_would_break_a_table_or_a_log_line_is_refused(tmp_path, name):
    db_path = str(tmp_path / "cli.db")
    _refused(run("token", "create", "--name", name, db=db_path), db_path)


@pytest.mark.parametrize("models", ["", ",", " , ,", "gpt 4o"])
def test_token_models_that_name_nothing_do_not_silently_mean_all_models(tmp_path, models):
    db_path = str(tmp_path / "cli.db")
    _refused(run("token", "create", "--name", "t1", "--models", models, db=db_path), db_path)


@pytest.mark.parametrize("key", ["sk-\u00e9t\u00e9", "sk-\u65e5\u672c\u8a9e-key", "sk-\u200bzero-width"])
def test_an_upstream_key_that_is_not_ascii_is_refused(tmp_path, key):
    db_path = str(tmp_path / "cli.db")
    args = list(CHANNEL)
    args[args.index("--key") + 1] = key
    _refused(run(*args, db=db_path), db_path)


# Numbers no operator means: they overflow timers or allow a body no machine can hold.
@pytest.mark.parametrize("option, value, words", [
    ("--upstream-timeout", "1e308", "a week"), ("--upstream-timeout", "604801", "a week"),
    ("--client-header-timeout", "1e9", "a week"), ("--video-timeout", "9e99", "a week"),
    ("--video-download-timeout", "1e300", "a week"), ("--keepalive-timeout", "1e20", "a week"),
    ("--max-body-bytes", str(4 * 1024**3 + 1), "4 GiB"), ("--max-body-bytes", "9" * 40, "4 GiB"),
    ("--max-body-bytes", "\u00b2", "number of bytes"), ("--http-port", "\u00b9", "port"),
    ("--commit-delay-ms", "1e9", "between 0 and 100"), ("--commit-delay-ms", "-1", "between 0 and 100"),
    ("--commit-delay-ms", "nan", "between 0 and 100"), ("--commit-delay-ms", "2ms", "milliseconds"),
])
def test_serve_refuses_absurd_numbers_in_one_line(tmp_path, option, value, words):
    result = run("serve", "--assets-dir", str(tmp_path / "assets"), option, value, db=str(tmp_path / "st-ai.db"))
    assert result.code == 2 and option in result.err and words in result.err, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["http://h.example:/v1", "http://0x7f.1/v1", "http://2130706433/",
                                 "http://h.example/v1/%2e%2e/x", "http://h.example/v1/../x", "http://h.example/v1%2Fx"])
def test_channel_add_refuses_a_base_url_clients_would_read_differently(tmp_path, url):
    db_path = str(tmp_path / "cli.db")
    args = list(CHANNEL)
    args[args.index("--base-url") + 1] = url
    _refused(run(*args, db=db_path), db_path)
