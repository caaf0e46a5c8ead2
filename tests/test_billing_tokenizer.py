"""The offline tokenizer behind quota reservations: exact against tiktoken, bounded on huge
text, and working with no network at all."""
from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import toktok

from server.billing.tokenizer import CL100K, O200K, Encoding, TokenTally, encoding_for, utf8_length
from tests.tiktoken_reference import reference_encoding

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = [
    "Hello, world!",
    "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    "I'LL tell you what we'd've done; they're sure it's FINE.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\n\tprint(fib(30))\r\n",
    '{"location": "San Francisco, CA", "unit": ["celsius", "fahrenheit"], "n": 12345678901234}',
    "お誕生日おめでとう — 生日快乐 — 생일 축하해요 — С днём рождения — عيد ميلاد سعيد",
    "🧠🚀👩‍👩‍👧‍👦 🇺🇳 e\u0301 ﬁ Ⅻ ½ \u200b\u00a0 tab\tend",
    "<|endoftext|> <|im_start|>user<|im_sep|> special names are ordinary text here",
    "      leading spaces, trailing spaces      \n\n\n   \n",
    "3.14159265358979323846264338327950288419716939937510 1,000,000 0x1F 2026-11-29T10:00:00Z",
    "a" * 5000,
    " " * 3000 + "x",
    base64.b64encode(random.Random(7).randbytes(6000)).decode(),
    "https://example.com/path?query=1&other=%20encoded#frag <div class=\"x\">&amp;</div>",
    "ÀÉÎÕÜ àéîõü ßẞ ĲĳŒœ Ǆǅǆ ΣσςΑΩ",
]


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n\r",
             ".,;:!?'\"()[]{}<>/\\|-_=+*&^%$#@~`", "éüñßøåçœ", "日本語中文한국어", "🙂🧠🚀✨", "ـبتثجحخ"]
    texts = []
    for _ in range(count):
        chosen = rng.sample(pools, rng.randint(1, len(pools)))
        alphabet = "".join(chosen)
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))))
    return texts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    return {name: reference_encoding(name, cache) for name in (CL100K, O200K)}


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_counts_equal_tiktoken_on_fixtures(reference, encoding):
    expected = [len(reference[encoding].encode_ordinary(text)) for text in FIXTURES]
    assert toktok.batch_count(FIXTURES, encoding, threads=1) == expected


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_counts_equal_tiktoken_on_random_text(reference, encoding):
    texts = random_texts(seed={CL100K: 1, O200K: 2}[encoding], count=400)
    expected = [len(reference[encoding].encode_ordinary(text)) for text in texts]
    assert toktok.batch_count(texts, encoding, threads=1) == expected


def test_the_tally_counts_exactly_within_its_budget(reference):
    tally = TokenTally(Encoding(O200K))
    for text in FIXTURES:
        tally.add(text)
    assert tally.total() == sum(len(reference[O200K].encode_ordinary(t)) for t in FIXTURES)


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_past_the_budget_the_count_is_an_upper_bound(reference, encoding):
    texts = FIXTURES + random_texts(seed=11, count=100)
    tally = TokenTally(Encoding(encoding), exact_bytes=0)
    for text in texts:
        tally.add(text)
    exact = sum(len(reference[encoding].encode_ordinary(t)) for t in texts)
    assert tally.total() >= exact
    assert tally.total() == sum(len(t.encode()) for t in texts)


def test_a_scaled_family_counts_more_than_o200k():
    text = "Claude and Gemini tokenize this sentence with vocabularies of their own."
    plain, scaled = TokenTally(Encoding(O200K)), TokenTally(encoding_for("claude-sonnet-4-5"))
    plain.add(text)
    scaled.add(text)
    assert scaled.total() == -(-plain.total() * 3 // 2)


def test_lone_surrogates_are_counted_not_raised():
    tally = TokenTally(Encoding(O200K))
    tally.add("bad \ud800 half")
    assert tally.total() >= toktok.batch_count(["bad  half"], O200K, threads=1)[0] + 1


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4o", O200K), ("gpt-4o-mini-2024-07-18", O200K), ("gpt-4.1-nano", O200K), ("o1", O200K),
    ("o3-mini", O200K), ("o4-mini", O200K), ("gpt-5", O200K), ("gpt-5.1-codex", O200K),
    ("chatgpt-4o-latest", O200K), ("my-custom-alias", O200K), ("openai/gpt-4o", O200K),
    ("gpt-4", CL100K), ("gpt-4-0613", CL100K), ("gpt-4-turbo", CL100K), ("gpt-4-32k", CL100K),
    ("gpt-3.5-turbo-0125", CL100K), ("GPT-3.5-Turbo", CL100K),
])
def test_the_encoding_follows_the_model_family(model, encoding):
    assert encoding_for(model) == Encoding(encoding)


@pytest.mark.parametrize("model", ["claude-opus-4-7", "anthropic/claude-3-5-haiku", "gemini-2.5-pro",
                                   "models/gemini-3-pro", "llama-3.3-70b", "qwen3-235b", "deepseek-chat",
                                   "mistral-large-latest", "grok-4"])
def test_other_vendors_count_with_o200k_and_a_safety_factor(model):
    assert encoding_for(model) == Encoding(O200K, (3, 2))


def test_utf8_length_of_a_huge_non_ascii_string_without_a_copy_of_it():
    text = "é" * 3_000_000
    assert utf8_length(text) == 6_000_000


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_counting_works_with_the_network_unusable(tmp_path):
    """A fresh interpreter with no cache dir, proxies at a closed port and every socket
    connection and name lookup refused: counting still works, and nothing is written."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network is unusable in this test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        socket.create_connection = refuse
    """))
    home = tmp_path / "home"
    home.mkdir()
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=f"{guard}{os.pathsep}{ROOT}", HOME=str(home), TMPDIR=str(home),
               HTTPS_PROXY=proxy, HTTP_PROXY=proxy, ALL_PROXY=proxy, NO_PROXY="",
               https_proxy=proxy, http_proxy=proxy, all_proxy=proxy)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": FIXTURES[1]}]}
    script = textwrap.dedent("""
        import json, socket, sys
        try:
            socket.create_connection(("127.0.0.1", 9))
        except OSError:
            pass
        else:
            sys.exit("the guard did not hold")
        from server.billing.estimate import prompt_tokens
        import toktok
        body = json.loads(sys.argv[1])
        print(json.dumps([prompt_tokens(body, "gpt-4o"), prompt_tokens(body, "gpt-4"),
                          toktok.batch_count([body["messages"][0]["content"]], "o200k_base", threads=1)[0]]))
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script, json.dumps(body)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from server.billing.estimate import prompt_tokens
    assert json.loads(done.stdout) == [prompt_tokens(body, "gpt-4o"), prompt_tokens(body, "gpt-4"),
                                       toktok.batch_count([FIXTURES[1]], O200K, threads=1)[0]]
    assert list(home.iterdir()) == [], "nothing may be cached or downloaded"
    assert time.monotonic() - started < 60
