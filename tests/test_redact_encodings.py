"""The scrubber (server/redact.py) against encodings of a channel's secrets that the first
round did not cover: base-64 at any alignment (the key inside a Basic value or inside
base-64 JSON), hex, look-alike Unicode (full-width letters, zero-width characters), and a
Unicode host echoed in its punycode spelling or the reverse. Each form is put into
ordinary error text, as an upstream would."""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from server import redact
from server.store.channels import Channel

KEY = "sk-" + uuid.uuid4().hex + "Ab" + uuid.uuid4().hex[:14]
KLING = f"AK{uuid.uuid4().hex}:SK{uuid.uuid4().hex}"


def _channel(key: str = KEY, base_url: str = "https://api.example.com/v1") -> Channel:
    return Channel(1, "c", "openai", base_url, key)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _key_forms(key: str) -> dict[str, str]:
    raw = key.encode()
    return {
        "base64 of user:key (a Basic value without its scheme)": base64.b64encode(b"user:" + raw).decode(),
        "base64 of api:key": base64.b64encode(b"api:" + raw).decode(),
        "base64 of JSON holding the key": base64.b64encode(json.dumps({"api_key": key}).encode()).decode(),
        "base64url after one byte": base64.urlsafe_b64encode(b"?" + raw).decode(),
        "base64url after two bytes": base64.urlsafe_b64encode(b"??" + raw + b"tail").decode(),
        "base64 followed by more bytes": base64.b64encode(raw + b":extra").decode(),
        "hex": raw.hex(),
        "hex upper case": raw.hex().upper(),
        "full-width letters": _full_width(key),
        "zero-width spaces between characters": "\u200b".join(key),
        "soft hyphens and a BOM": "\ufeff" + "\u00ad".join(key),
    }


@pytest.mark.parametrize("form", list(_key_forms(KEY)))
def test_an_encoded_key_is_scrubbed(form):
    text = f"Invalid credentials: {_key_forms(KEY)[form]} (request rejected)"
    scrubbed = redact.scrub(text, _channel())
    assert scrubbed != text and redact.MASK in scrubbed, (form, scrubbed)
    assert not redact.for_channel(_channel()).contains_secret(scrubbed), (form, scrubbed)


@pytest.mark.parametrize("part", [0, 1])
@pytest.mark.parametrize("form", ["base64 of user:key (a Basic value without its scheme)", "hex",
                                  "full-width letters"])
def test_an_encoded_part_of_a_kling_key_is_scrubbed(part, form):
    secret = KLING.split(":")[part]
    text = f"signature check failed for {_key_forms(secret)[form]}"
    assert redact.MASK in redact.scrub(text, _channel(KLING)), (part, form)


@pytest.mark.parametrize("base_url, echoed", [
    ("https://b\u00fccher.example/v1", "xn--bcher-kva.example"),
    ("https://xn--bcher-kva.example/v1", "B\u00dcCHER.example"),
    ("https://b\u00fccher.example/v1", "https://XN--BCHER-KVA.EXAMPLE:443/v1/chat/completions"),
])
def test_a_unicode_host_is_scrubbed_in_either_idna_spelling(base_url, echoed):
    text = f"upstream {echoed} refused the call"
    scrubbed = redact.scrub(text, _channel(base_url=base_url))
    assert redact.MASK in scrubbed and "bcher" not in scrubbed.lower() and "b\u00fccher" not in scrubbed.lower()


def test_ordinary_text_with_unicode_and_hex_like_words_is_left_alone():
    text = ("The model said caf\u00e9, na\u00efve \ufb01ne; value 0123456789abcdef is not valid "
            "for max_tokens; see https://platform.openai.com/docs")
    assert redact.scrub(text, _channel()) == text


# An IP host reaches the upstream's error text in whatever spelling its resolver or proxy
# prints: every inet_aton form of an IPv4 address, every IPv6 form, and the IPv4-mapped
# IPv6 address of an IPv4 host.
IP_SPELLINGS = {
    "http://127.0.0.1:8080/v1": ["2130706433", "0x7f000001", "0X7F000001", "127.1", "0177.0.0.1",
                                 "0x7f.0.0.1", "127.0.1", "::ffff:127.0.0.1", "[::FFFF:7f00:1]",
                                 "http://2130706433:8080/v1/chat/completions"],
    "http://10.20.30.40/v1": ["169090600", "0xa141e28", "012.024.036.050", "10.20.7720",
                              "[::ffff:a14:1e28]"],
    "http://[::1]:9000/v1": ["[0:0:0:0:0:0:0:1]", "0:0:0:0:0:0:0:1", "0000:0000:0000::0001",
                             "http://[0::1]:9000/v1/videos"],
    "http://[2001:db8::a:B]/v1": ["2001:DB8:0:0:0:0:A:b", "[2001:0db8:0000:0000:0000:0000:000a:000b]",
                                  "2001:db8::a:b"],
    "http://0x7f000001:8080/v1": ["127.0.0.1", "127.1"],  # stored before the rules refused it
}


@pytest.mark.parametrize("base_url, echoed", [(url, form) for url, forms in IP_SPELLINGS.items()
                                               for form in forms])
def test_an_ip_host_is_scrubbed_in_any_spelling(base_url, echoed):
    text = f"connect to {echoed} failed: connection refused."
    scrubbed = redact.scrub(text, _channel(base_url=base_url))
    assert scrubbed == f"connect to {redact.MASK} failed: connection refused.", scrubbed


@pytest.mark.parametrize("text", [
    "version 1.2.3 took 200 ms at 2024-01-01 10:00:00.123 for 2130706434 tokens",
    "upstream 127.0.0.2 and [::2] and ::ffff:127.0.0.3 are other hosts",
])
def test_numbers_and_other_addresses_are_left_alone_by_the_ip_scrubbing(text):
    for base_url in ("http://127.0.0.1:8080/v1", "http://[::1]/v1"):
        assert redact.scrub(text, _channel(base_url=base_url)) == text
