"""server/cli.py: the `st-ai` command, run as a subprocess on a temporary database."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.cli import build_parser
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-upstream-VERYSECRET-0123456789abcdef"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.strip().splitlines()


def run(*args: str, db: str | None = None, env_db: str | None = None) -> Result:
    env = {k: v for k, v in os.environ.items() if k != "ST_AI_DB"}
    if env_db:
        env["ST_AI_DB"] = env_db
    argv = [sys.executable, "-m", "server.cli", *args] + (["--db", db] if db else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


@pytest.fixture
def st_ai(db_path):
    """`st-ai ARGS` with ST_AI_DB pointing at the test's database."""
    def call(*args: str) -> Result:
        return run(*args, env_db=db_path)
    return call


def clean_error(result: Result, *words: str) -> None:
    assert result.code != 0
    assert "Traceback" not in result.err and "Traceback" not in result.out
    for word in words:
        assert word in result.err, result.err


def stored_tokens(db_path: str) -> dict[str, token_store.Token]:
    db = open_db(db_path)
    try:
        return {t.name: t for t in token_store.all_tokens(db)}
    finally:
        db.close()


# -- tokens -----------------------------------------------------------------------------------

def test_token_create_prints_the_key_alone_on_the_last_line(st_ai, db_path):
    result = st_ai("token", "create", "--name", "alice", "--models", "a,b")
    assert result.code == 0, result.err
    key = result.lines[-1]
    assert key == key.strip() and key.startswith("sk-") and " " not in key and len(key) >= 35
    assert key not in "\n".join(result.lines[:-1])
    token = stored_tokens(db_path)["alice"]
    assert token.key_hash == token_store.hash_key(key)
    assert token.models == frozenset({"a", "b"})


def test_token_list_never_shows_the_key_only_a_hint(st_ai):
    key = st_ai("token", "create", "--name", "alice").lines[-1]
    listing = st_ai("token", "list")
    assert listing.code == 0, listing.err
    assert key not in listing.out
    assert key[3:] not in listing.out and key[:-4] not in listing.out
    row = next(line for line in listing.lines if line.startswith("alice"))
    assert f"{key[:5]}...{key[-4:]}" in row
    assert "enabled" in row and "(all)" in row and "never" in row


def test_token_create_expires_in_30d_sets_the_expiry(st_ai, db_path):
    before = int(time.time())
    result = st_ai("token", "create", "--name", "month", "--expires-in", "30d")
    after = int(time.time())
    assert result.code == 0, result.err
    token = stored_tokens(db_path)["month"]
    assert before + 30 * 86400 <= token.expires_at <= after + 30 * 86400
    expected = time.strftime("%Y-%m-%d", time.gmtime(token.expires_at))
    assert expected in result.out
    row = next(line for line in st_ai("token", "list").lines if line.startswith("month"))
    assert expected in row


@pytest.mark.parametrize("duration, seconds", [("12h", 43200), ("90m", 5400), ("3600s", 3600),
                                               ("2w", 1209600), ("1d", 86400)])
def test_token_create_duration_units(st_ai, db_path, duration, seconds):
    before = int(time.time())
    assert st_ai("token", "create", "--name", "t", "--expires-in", duration).code == 0
    expires_at = stored_tokens(db_path)["t"].expires_at
    assert before + seconds <= expires_at <= int(time.time()) + seconds


def one_line_refusal(result: Result, *words: str) -> None:
    """Refused as the issue asks: non-zero exit, one clear line, no traceback."""
    clean_error(result, *words)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.out == ""


# a bare number (is `10` seconds or days?), zero, a unit that is not one, a fraction, a sign
@pytest.mark.parametrize("duration", ["soon", "10", "0d", "0s", "-5d", "1.5h", "30 days", "3M", "d", "",
                                      "999999999999w"])
def test_token_create_refuses_a_duration_without_a_unit_or_not_above_zero(st_ai, db_path, duration):
    one_line_refusal(st_ai("token", "create", "--name", "t", "--expires-in", duration), "--expires-in")
    assert not Path(db_path).exists()


@pytest.mark.parametrize("option, value", [("--video-retention", "0h"), ("--video-retention", "48"),
                                           ("--video-poll-interval", "0"), ("--video-timeout", "nan"),
                                           ("--upstream-timeout", "-1"), ("--http-port", "70000"),
                                           ("--grpc-port", "-1"), ("--max-body-bytes", "0"),
                                           ("--public-url", "gateway.example.com")])
def test_serve_refuses_bad_settings_before_creating_anything(tmp_path, option, value):
    result = run("serve", "--assets-dir", str(tmp_path / "assets"), option, value, db=str(tmp_path / "st-ai.db"))
    one_line_refusal(result, option)
    assert sorted(os.listdir(tmp_path)) == []


def test_bridge_refuses_a_grpc_target_that_is_not_host_and_port(tmp_path):
    one_line_refusal(run("bridge", "--grpc-target", "localhost", "--http-port", "0"), "--grpc-target", "HOST:PORT")


def test_a_bad_setting_in_the_environment_is_refused_like_the_option(tmp_path):
    env = {**os.environ, "ST_AI_VIDEO_RETENTION": "0d"}
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--db", str(tmp_path / "st-ai.db")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    one_line_refusal(Result(proc.returncode, proc.stdout, proc.stderr), "--video-retention", "'0d'")
    assert sorted(os.listdir(tmp_path)) == []


def test_token_disable_and_enable(st_ai, db_path):
    st_ai("token", "create", "--name", "bob")
    result = st_ai("token", "disable", "bob")
    assert result.code == 0 and "disabled" in result.out
    assert not stored_tokens(db_path)["bob"].enabled
    row = next(line for line in st_ai("token", "list").lines if line.startswith("bob"))
    assert "disabled" in row
    assert st_ai("token", "enable", "bob").code == 0
    assert stored_tokens(db_path)["bob"].enabled


def test_token_delete(st_ai, db_path):
    st_ai("token", "create", "--name", "gone")
    assert st_ai("token", "delete", "gone").code == 0
    assert "gone" not in stored_tokens(db_path)


def test_unknown_token_is_a_clean_error(st_ai):
    clean_error(st_ai("token", "disable", "nobody"), "nobody")


def test_duplicate_token_name_is_a_clean_error(st_ai, db_path):
    first = st_ai("token", "create", "--name", "dup")
    second = st_ai("token", "create", "--name", "dup")
    clean_error(second, "dup", "already exists")
    assert "sk-" not in second.out
    assert stored_tokens(db_path)["dup"].key_hash == token_store.hash_key(first.lines[-1])


# -- channels ---------------------------------------------------------------------------------

def test_channel_add_openai_with_model_map(st_ai, db_path):
    result = st_ai("channel", "add", "--name", "up", "--type", "openai", "--base-url", "https://api.example.com/v1",
                   "--key", UPSTREAM_KEY, "--models", "a,b", "--model-map", "a=up-a")
    assert result.code == 0, result.err
    assert UPSTREAM_KEY not in result.out + result.err
    db = open_db(db_path)
    channel = channel_store.get(db, "up")
    db.close()
    assert channel.type == "openai" and channel.base_url == "https://api.example.com/v1"
    assert channel.models == ("a", "b") and channel.model_map == {"a": "up-a"}
    assert channel.key == UPSTREAM_KEY


def test_channel_list_masks_the_key_and_labels_the_simulator(st_ai):
    st_ai("channel", "add", "--name", "up", "--type", "openai", "--base-url", "https://api.example.com/v1",
          "--key", UPSTREAM_KEY, "--models", "a,b", "--model-map", "a=up-a")
    assert st_ai("channel", "add", "--name", "sim", "--type", "simulator", "--models", "sim-model").code == 0
    listing = st_ai("channel", "list")
    assert listing.code == 0, listing.err
    assert UPSTREAM_KEY not in listing.out
    assert UPSTREAM_KEY[:-4] not in listing.out and "VERYSECRET" not in listing.out
    up = next(line for line in listing.lines if line.startswith("up "))
    assert "...cdef" in up and "a=up-a" in up and "a,b" in up and "https://api.example.com/v1" in up
    assert "SIMULATOR" not in up
    sim = next(line for line in listing.lines if line.startswith("sim "))
    assert "SIMULATOR" in sim and "sim-model" in sim


def test_channel_disable_enable_delete(st_ai):
    st_ai("channel", "add", "--name", "sim", "--type", "simulator", "--models", "m")
    assert "disabled" in st_ai("channel", "disable", "sim").out
    assert "disabled" in next(line for line in st_ai("channel", "list").lines if line.startswith("sim"))
    assert st_ai("channel", "enable", "sim").code == 0
    assert st_ai("channel", "delete", "sim").code == 0
    assert not any(line.startswith("sim") for line in st_ai("channel", "list").lines)


def test_unknown_channel_type_is_a_clean_error(st_ai, db_path):
    result = st_ai("channel", "add", "--name", "x", "--type", "martian", "--base-url", "https://x",
                   "--models", "m")
    clean_error(result, "martian", "openai", "simulator")
    assert st_ai("channel", "list").lines[1:] == []


def test_openai_channel_without_base_url_uses_openai(st_ai, db_path):
    assert st_ai("channel", "add", "--name", "x", "--type", "openai", "--key", UPSTREAM_KEY, "--models", "m").code == 0
    db = open_db(db_path)
    assert channel_store.get(db, "x").base_url == "https://api.openai.com/v1"
    db.close()


def test_a_keyless_openai_compatible_server_is_declared_with_no_key(st_ai, db_path):
    result = st_ai("channel", "add", "--name", "local", "--type", "openai", "--base-url", "http://127.0.0.1:8000/v1/",
                   "--no-key", "--models", "llama")
    assert result.code == 0, result.err
    assert "no upstream key" in result.out
    db = open_db(db_path)
    channel = channel_store.get(db, "local")
    db.close()
    assert (channel.base_url, channel.key) == ("http://127.0.0.1:8000/v1", "")


def test_a_channels_api_version_is_set_on_add_shown_in_list_changed_and_cleared_on_update(st_ai, db_path):
    assert st_ai("channel", "add", "--name", "versioned", "--type", "openai", "--key", UPSTREAM_KEY,
                 "--models", "m", "--api-version", "2024-10-21").code == 0
    assert st_ai("channel", "add", "--name", "current", "--type", "openai", "--key", UPSTREAM_KEY,
                 "--models", "n").code == 0
    listing = st_ai("channel", "list").lines
    assert "API VERSION" in listing[0]
    assert "2024-10-21" in next(line for line in listing if line.startswith("versioned"))
    assert "default" in next(line for line in listing if line.startswith("current"))

    changed = st_ai("channel", "update", "versioned", "--api-version", "2025-04-01-preview")
    assert changed.code == 0 and "API version 2025-04-01-preview" in changed.out
    db = open_db(db_path)
    assert channel_store.get(db, "versioned").api_version == "2025-04-01-preview"
    assert st_ai("channel", "update", "versioned", "--priority", "3").code == 0  # other changes keep it
    assert channel_store.get(db, "versioned").api_version == "2025-04-01-preview"
    assert st_ai("channel", "update", "versioned", "--api-version", "default").code == 0
    assert channel_store.get(db, "versioned").api_version is None
    one_line_refusal(st_ai("channel", "update", "current", "--api-version", "v1/../x"), "--api-version")
    assert channel_store.get(db, "current").api_version is None



def test_a_channels_native_apis_are_set_on_add_shown_in_list_changed_and_reset_on_update(st_ai, db_path):
    assert st_ai("channel", "add", "--name", "both", "--type", "openai", "--key", UPSTREAM_KEY,
                 "--models", "m", "--native-apis", "chat,responses").code == 0
    assert st_ai("channel", "add", "--name", "plain", "--type", "openai", "--key", UPSTREAM_KEY,
                 "--models", "n").code == 0
    listing = st_ai("channel", "list").lines
    assert "NATIVE APIS" in listing[0]
    assert "chat,responses" in next(line for line in listing if line.startswith("both"))
    assert "chat (default)" in next(line for line in listing if line.startswith("plain"))

    changed = st_ai("channel", "update", "plain", "--native-apis", "none")
    assert changed.code == 0 and "native APIs none" in changed.out
    db = open_db(db_path)
    assert channel_store.get(db, "plain").native_apis == frozenset()
    assert st_ai("channel", "update", "both", "--priority", "3").code == 0  # other changes keep it
    assert channel_store.get(db, "both").native_apis == {"chat", "responses"}
    reset = st_ai("channel", "update", "both", "--native-apis", "default")
    assert reset.code == 0 and "native APIs chat (default)" in reset.out
    assert channel_store.get(db, "both").native_apis_chosen is None
    one_line_refusal(st_ai("channel", "update", "plain", "--native-apis", "chat,embeddings"), "embeddings")
    assert channel_store.get(db, "plain").native_apis == frozenset()


# One example of each class of careless input; tests/test_channel_rules.py has the variants.
REFUSED_CHANNELS = {
    "not a URL": (["--type", "openai", "--base-url", "not a url", "--key", UPSTREAM_KEY], "--base-url"),
    "scheme typo": (["--type", "openai", "--base-url", "htp:/host", "--key", UPSTREAM_KEY], "http://"),
    "another scheme": (["--type", "openai", "--base-url", "ftp://files.example.com/v1", "--key", UPSTREAM_KEY],
                       "http://"),
    "no host": (["--type", "openai", "--base-url", "https:///v1", "--key", UPSTREAM_KEY], "host"),
    "an endpoint path": (["--type", "openai", "--base-url", "https://api.example.com/v1/chat/completions",
                          "--key", UPSTREAM_KEY], "https://api.example.com/v1"),
    "a query": (["--type", "openai", "--base-url", "https://api.example.com/v1?key=x", "--key", UPSTREAM_KEY],
                "query"),
    "credentials in the URL": (["--type", "openai", "--base-url", "https://user:pw@api.example.com/v1",
                                "--key", UPSTREAM_KEY], "--key"),
    "openai without a key": (["--type", "openai", "--base-url", "https://api.example.com/v1"], "--no-key"),
    "both --key and --no-key": (["--type", "openai", "--key", UPSTREAM_KEY, "--no-key"], "--no-key"),
    "runway without a key": (["--type", "runway", "--no-key"], "--key"),
    "kling key without its secret part": (["--type", "kling", "--key", "access-only"], "ACCESS_KEY:SECRET_KEY"),
    "kling key with an empty part": (["--type", "kling", "--key", "access:"], "ACCESS_KEY:SECRET_KEY"),
    "a key pasted with its header": (["--type", "openai", "--key", f"Bearer {UPSTREAM_KEY}"], "Bearer"),
    "a simulator with a key": (["--type", "simulator", "--key", UPSTREAM_KEY], "no upstream"),
    "a simulator with a base URL": (["--type", "simulator", "--base-url", "https://api.example.com"], "no upstream"),
    "a map for a model not served": (["--type", "openai", "--key", UPSTREAM_KEY, "--model-map", "other=up"],
                                     "other"),
    "an API version with a space": (["--type", "openai", "--key", UPSTREAM_KEY, "--api-version", "2024 10"],
                                    "--api-version"),
    "an API version that would open a query": (["--type", "openai", "--key", UPSTREAM_KEY,
                                                "--api-version", "2024-10-21&x=1"], "--api-version"),
    "a simulator with an API version": (["--type", "simulator", "--api-version", "2024-10-21"], "no upstream"),
    "a native API st-ai does not serve": (["--type", "openai", "--key", UPSTREAM_KEY, "--native-apis", "chat,images"],
                                          "images"),
    "a simulator with native APIs": (["--type", "simulator", "--native-apis", "chat"], "no upstream"),
}


@pytest.mark.parametrize("case", REFUSED_CHANNELS)
def test_channel_add_refuses_careless_input_in_one_line_writing_nothing(st_ai, db_path, case):
    extra, named = REFUSED_CHANNELS[case]
    result = st_ai("channel", "add", "--name", "c", "--models", "m", *extra)
    one_line_refusal(result, named)
    assert UPSTREAM_KEY not in result.err
    assert not Path(db_path).exists()


def test_duplicate_channel_name_is_a_clean_error(st_ai):
    assert st_ai("channel", "add", "--name", "c", "--type", "simulator", "--models", "m").code == 0
    clean_error(st_ai("channel", "add", "--name", "c", "--type", "simulator", "--models", "n"), "already exists")


def test_bad_model_map_is_a_clean_error(st_ai):
    clean_error(st_ai("channel", "add", "--name", "c", "--type", "simulator", "--models", "m",
                      "--model-map", "m"), "public=upstream")


def test_unopenable_database_is_a_clean_error(tmp_path):
    clean_error(run("token", "list", db=str(tmp_path / "no" / "such" / "dir.db")), "database")


def test_usage_on_an_empty_database(st_ai):
    result = st_ai("usage")
    assert result.code == 0, result.err
    assert result.lines[0].split()[:2] == ["REQUESTS", "ERRORS"]
    assert result.lines[1].split()[:2] == ["0", "0"]  # one total row, of nothing yet


# -- --db before or after the subcommand ---------------------------------------------------------

SUBCOMMANDS = [
    ("token", "create", "--name", "t2"),
    ("token", "list"),
    ("token", "disable", "t"),
    ("token", "enable", "t"),
    ("channel", "add", "--name", "c2", "--type", "simulator", "--models", "m"),
    ("channel", "list"),
    ("channel", "disable", "c"),
    ("channel", "enable", "c"),
    ("usage",),
    ("price", "set", "m", "--input", "1"),
    ("price", "list"),
    ("price", "delete", "m"),
    ("token", "delete", "t"),
    ("channel", "delete", "c"),
]


@pytest.mark.parametrize("position", ["before", "after"])
def test_db_option_works_before_and_after_the_subcommand(tmp_path, position):
    chosen = str(tmp_path / "chosen.db")
    decoy = str(tmp_path / "decoy.db")  # ST_AI_DB: must not be used when --db is given
    db = open_db(chosen)
    token_store.create(db, "t")
    channel_store.add(db, "c", "simulator", "", "", ["m"])
    db.close()
    for command in SUBCOMMANDS:
        if position == "before":
            result = run("--db", chosen, *command, env_db=decoy)
        else:
            result = run(*command, db=chosen, env_db=decoy)
        assert result.code == 0, (command, result.err)
    assert not Path(decoy).exists()
    assert set(stored_tokens(chosen)) == {"t2"}
    db = open_db(chosen)
    assert [c.name for c in channel_store.all_channels(db)] == ["c2"]
    db.close()


def leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers or not subparsers[0].required:  # `usage` runs alone and has `usage prune`
        yield prefix, parser
    if not subparsers:
        return
    for name, child in subparsers[0].choices.items():
        yield from leaf_parsers(child, (*prefix, name))


REQUIRED = {("token", "create"): ["--name", "n"], ("token", "disable"): ["n"], ("token", "enable"): ["n"],
            ("token", "delete"): ["n"], ("channel", "disable"): ["n"], ("channel", "enable"): ["n"],
            ("channel", "delete"): ["n"], ("channel", "add"): ["--name", "n", "--type", "simulator", "--models", "m"],
            ("bridge",): ["--grpc-target", "127.0.0.1:1"], ("price", "set"): ["m", "--input", "1"],
            ("price", "delete"): ["m"], ("token", "update"): ["n", "--quota", "1"], ("token", "show"): ["n"],
            ("usage", "prune"): ["--before", "2026-01-01"],
            ("token", "rotate"): ["n"], ("channel", "update"): ["n", "--priority", "1"],
            ("channel", "test"): ["n"], ("video", "show"): ["video_0"],
            ("video", "delete"): ["video_0"]}


def test_every_leaf_subcommand_that_opens_the_database_accepts_db_in_both_places():
    leaves = dict(leaf_parsers(build_parser()))
    assert {("token", "list"), ("channel", "list"), ("usage",), ("usage", "prune"), ("serve",),
            ("grpc",)} <= set(leaves)
    for path in leaves:
        if path == ("bridge",):  # talks to a gRPC server, has no database
            continue
        extra = REQUIRED.get(path, [])
        after = build_parser().parse_args([*path, *extra, "--db", "after.db"])
        before = build_parser().parse_args(["--db", "before.db", *path, *extra])
        both = build_parser().parse_args(["--db", "before.db", *path, *extra, "--db", "after.db"])
        assert (after.db, before.db, both.db) == ("after.db", "before.db", "after.db"), path
        assert build_parser().parse_args([*path, *extra]).db is None, path
