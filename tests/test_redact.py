"""The one scrubber (server/redact.py) and the mapping of upstream errors
(server/upstream_errors.py), on their own."""
from __future__ import annotations

import base64
import html
import io
import json
import logging
from urllib.parse import quote

import pytest

from server import redact, upstream_errors
from server.errors import GatewayError
from server.store.channels import Channel

KEY = "sk-Proj7fQ2xLm9Rt4Vb8Nc1Zd6Hy3Kw5Pa0Es"
KLING_KEY = "AkX7fQ2xLm9Rt4Vb8Nc:SkZd6Hy3Kw5Pa0Es1Gu"
OPENAI = Channel(1, "openai-main", "openai", "https://llm-gw.example.com:8443/v1", KEY, ("m",))
KLING = Channel(2, "kling", "kling", "http://10.1.2.3:9000", KLING_KEY, ("k",))
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBa1g3ZlEyeExtOVJ0NFZiOE5jIiwiZXhwIjoxfQ"
       ".q3bX1uQd4cW0fYQmD0k1WmZkq8w4H2l0q6z6s3J9Zb4")


def _secret_forms() -> list[tuple[str, Channel, str]]:
    url = "https://llm-gw.example.com:8443/v1/chat/completions"
    access, secret = KLING_KEY.split(":")
    return [
        ("key", OPENAI, KEY), ("key upper", OPENAI, KEY.upper()), ("key lower", OPENAI, KEY.lower()),
        ("key cut 12", OPENAI, KEY[7:19]), ("key tail", OPENAI, KEY[-14:]),
        ("key percent-encoded", OPENAI, quote(KEY, safe="")),
        ("key every char percent-encoded", OPENAI, "".join(f"%{b:02X}" for b in KEY.encode())),
        ("key double-encoded", OPENAI, quote(quote(KEY, safe=""), safe="")),
        ("key json-escaped", OPENAI, "".join(f"\\u{ord(c):04x}" for c in KEY)),
        ("key html entities", OPENAI, "".join(f"&#{ord(c)};" for c in KEY)),
        ("key base64", OPENAI, base64.b64encode(KEY.encode()).decode()),
        ("key base64url", OPENAI, base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("=")),
        ("bearer header", OPENAI, f"Authorization: Bearer {KEY}"),
        ("url", OPENAI, url), ("url upper", OPENAI, url.upper()),
        ("url json-escaped", OPENAI, url.replace("/", "\\/")),
        ("url percent-encoded", OPENAI, quote(url, safe="")),
        ("url other scheme", OPENAI, "wss://llm-gw.example.com:8443/realtime"),
        ("url with user", OPENAI, "https://admin:pw@llm-gw.example.com/x?key=1"),
        ("host:port", OPENAI, "llm-gw.example.com:8443"), ("Host header", OPENAI, "Host: LLM-GW.example.com:8443"),
        ("bare host", OPENAI, "llm-gw.example.com"),
        ("kling key", KLING, KLING_KEY), ("kling access key", KLING, access), ("kling secret key", KLING, secret),
        ("kling secret upper", KLING, secret.upper()), ("kling jwt", KLING, JWT), ("kling jwt upper", KLING, JWT.upper()),
        ("kling jwt claims", KLING, JWT.split(".")[1]), ("ip host:port", KLING, "10.1.2.3:9000"),
        ("ip url", KLING, "http://10.1.2.3:9000/v1/videos/text2video"),
        ("ip host:port encoded", KLING, "10.1.2.3%3A9000"), ("bare ip", KLING, "10.1.2.3"),
    ]


@pytest.mark.parametrize("name, channel, secret", _secret_forms(), ids=[f[0] for f in _secret_forms()])
def test_scrubber_removes_every_form_of_a_channel_secret(name, channel, secret):
    text = f"Request failed ({secret}) - see docs"
    clean = redact.scrub(text, channel)
    assert redact.MASK in clean, clean
    for piece in (secret, html.unescape(secret)):
        assert piece.lower() not in clean.lower(), clean
    for token in (KEY, KLING_KEY, *KLING_KEY.split(":"), "llm-gw.example.com", "10.1.2.3"):
        assert token.lower() not in clean.lower()
    assert clean.startswith("Request failed (") and clean.endswith(") - see docs"), clean


def test_scrubber_masks_the_whole_url_on_the_channels_host_not_just_the_host():
    clean = redact.scrub("Render failed calling http://10.1.2.3:9000/v1/render?x=1 with Bearer sk-zz", KLING)
    assert clean == "Render failed calling *** with ***"


@pytest.mark.parametrize("text", [
    "Invalid value for 'temperature': must be at most 2.",
    "The upstream service is overloaded; try again in 30 seconds.",
    "Your request was blocked by our moderation system.",
    "messages[0].content must be a string",
    "Basic plan users cannot use this model.",
])
def test_scrubber_keeps_ordinary_text(text):
    assert redact.scrub(text, OPENAI) == text
    assert redact.scrub(text, KLING) == text


def test_decoding_an_escaped_secret_never_leaves_text_that_cannot_be_encoded():
    clean = redact.scrub("\\ud800 broken escape and " + quote(KEY, safe=""), OPENAI)
    assert "***" in clean and KEY not in clean
    clean.encode("utf-8")


def test_account_ids_in_the_base_urls_path_user_or_query_are_secrets_too():
    channel = Channel(5, "gw", "openai", "https://gw.example.net/v1/acct-7f3a9c21e4/prod-gateway/openai?tenant=t-55aa9",
                      "", ("m",))
    for echoed in ("/v1/acct-7f3a9c21e4/prod-gateway/openai", "acct-7f3a9c21e4/prod-gateway", "tenant=t-55aa9"):
        clean = redact.scrub(f"no route for {echoed} here", channel)
        assert clean.startswith("no route for ***") and "7f3a9c" not in clean and "55aa9" not in clean, clean
    user = Channel(6, "basic", "openai", "https://alice:s3cr3t-pw-42@gw.example.net/v1", "", ("m",))
    assert redact.scrub("login alice:s3cr3t-pw-42 refused", user) == "login *** refused"
    assert redact.scrub("Invalid value for 'model'.", channel) == "Invalid value for 'model'."


def test_short_dotless_host_is_removed_with_its_port_only():
    channel = Channel(3, "local", "openai", "http://kling:8000/v1", "", ("m",))
    assert redact.scrub("Kling is busy", channel) == "Kling is busy"
    assert redact.scrub("calling kling:8000/v1/x", channel) == "calling ***"


def test_a_channel_without_key_or_url_scrubs_only_credential_shapes():
    channel = Channel(4, "sim", "simulator", "", "", ("m",))
    assert redact.scrub("hello world", channel) == "hello world"
    assert redact.scrub(f"token {JWT}", channel) == "token ***"


def test_log_scrubber_cleans_message_arguments_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_redact.logs")
    logger.addHandler(handler)
    logger.propagate = False
    undo = redact.install_log_scrubber(lambda: [OPENAI, KLING])
    try:
        try:
            raise RuntimeError(f"connect to {OPENAI.base_url} with {KEY.upper()}")
        except RuntimeError:
            logger.error("calling %s failed with Bearer %s", "10.1.2.3:9000", KLING_KEY, exc_info=True)
    finally:
        undo()
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "calling *** failed with ***" in out and "RuntimeError: connect to *** with ***" in out, out
    for secret in (KEY, KLING_KEY, "10.1.2.3", "llm-gw.example.com"):
        assert secret.lower() not in out.lower(), out
    assert logging.getLogRecordFactory() is logging.LogRecord  # undone


# -- upstream error mapping ---------------------------------------------------------------

def test_upstream_type_and_code_outside_the_known_sets_become_st_ais_own():
    error = upstream_errors.relayed(OPENAI, 400, "bad", default="x", type=f"Bearer {KEY}",
                                    code=OPENAI.base_url, param=None)
    assert (error.type, error.code) == ("invalid_request_error", "invalid_request")
    error = upstream_errors.relayed(OPENAI, 404, "gone", default="x", type="weird", code="weird")
    assert (error.type, error.code) == ("invalid_request_error", "not_found")
    assert upstream_errors.relayed(OPENAI, 422, "no", default="x", type="weird").type == "invalid_request_error"


def test_known_upstream_type_and_code_are_kept():
    error = upstream_errors.relayed(OPENAI, 400, "blocked", default="x", type="image_generation_user_error",
                                    code="moderation_blocked")
    assert (error.type, error.code) == ("image_generation_user_error", "moderation_blocked")
    assert upstream_errors.relayed(OPENAI, 400, None, default="The upstream said no.").message == \
        "The upstream said no."


@pytest.mark.parametrize("param, request_body, kept", [
    ("temperature", {"model": "m", "temperature": 1.5}, True),
    ("messages[0].content", {"messages": []}, True),
    ("messages.[1].content", {"messages": []}, True),
    ("tools.0.function.name", {"tools": []}, True),
    ("temperature", {"model": "m"}, False),
    (KEY, {"model": "m"}, False),
    (KEY, {KEY: 1}, False),                          # a key-shaped name is never a field path
    ("llm-gw.example.com:8443", {"model": "m"}, False),
    ("metadata." + KEY[3:].replace("-", "_"), {"metadata": {}}, False),  # a field path holding the key
    ("model", None, False),
])
def test_upstream_param_is_kept_only_when_it_names_a_field_of_the_request(param, request_body, kept):
    error = upstream_errors.relayed(OPENAI, 400, "bad", default="x", param=param)
    upstream_errors.for_client(error, OPENAI, request_body)
    assert error.param == (param if kept else None)


def test_st_ais_own_param_is_left_alone():
    error = GatewayError(400, "'image' must be a URL.", "invalid_value", "image")
    assert upstream_errors.for_client(error, OPENAI, {"prompt": "x"}).param == "image"


def test_for_client_scrubs_every_error_message_and_keeps_the_error_object():
    error = GatewayError(502, f"The upstream failed: {OPENAI.base_url}", "upstream_error", retryable=True)
    same = upstream_errors.for_client(error, OPENAI, {})
    assert same is error and error.retryable
    assert error.message == "The upstream failed: ***" and str(error) == error.message


def test_upstream_words_are_scrubbed_before_they_are_cut_short():
    message = "x" * (upstream_errors.MAX_WORDS - 10) + KEY
    words = upstream_errors.words(OPENAI, message)
    assert KEY[:8].lower() not in words.lower() and len(words) <= upstream_errors.MAX_WORDS


def test_task_failure_keeps_known_codes_and_scrubs_the_message():
    assert upstream_errors.task_failure(OPENAI, "moderation_blocked", "Blocked.") == ("moderation_blocked", "Blocked.")
    assert upstream_errors.task_failure(OPENAI, "upstream_status_cancelled", None) == \
        ("upstream_status_cancelled", "The video task failed.")
    code, message = upstream_errors.task_failure(KLING, KLING_KEY, f"failed at {KLING.base_url}/render")
    assert (code, message) == ("video_generation_failed", "failed at ***")


def test_misconfigured_channel_is_a_502_and_the_log_names_the_channel_not_its_url(caplog):
    with caplog.at_level(logging.WARNING, logger="st_ai.upstream"):
        error = upstream_errors.misconfigured(OPENAI, 404)
    assert (error.http_status, error.type, error.code, error.retryable) == (502, "upstream_error", "upstream_error", True)
    assert "'openai-main' is misconfigured" in caplog.text
    assert "example.com" not in caplog.text and KEY not in caplog.text
    assert "example.com" not in json.dumps(error.body())
