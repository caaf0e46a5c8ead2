"""server/channel_rules.py: what an operator may configure as a channel, checked before
anything is stored (the CLI's refusals are in tests/test_cli.py)."""
from __future__ import annotations

import pytest

from server.channel_rules import NewChannel, check, check_base_url, native_apis_given
from server.providers.registry import discover
from server.store.channels import Channel, ChannelError

SPECS = discover()
KEY = "sk-upstream-0123456789abcdef"


def channel(type: str = "openai", **fields) -> NewChannel:
    return NewChannel(**{"name": "c", "type": type, "models": ["m"], "key": KEY, **fields})


@pytest.mark.parametrize("url, stored", [
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
    ("HTTP://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
    ("http://vllm_server:8000/v1", "http://vllm_server:8000/v1"),          # a compose service name
    ("https://api-singapore.klingai.com", "https://api-singapore.klingai.com"),
    ("https://router.example.com/models/meta/llama-3/v1", "https://router.example.com/models/meta/llama-3/v1"),
    ("https://gateway.example.com/openai/v1", "https://gateway.example.com/openai/v1"),
])
def test_base_urls_of_real_apis_are_accepted_without_a_trailing_slash(url, stored):
    assert check_base_url(url) == stored


@pytest.mark.parametrize("url", [
    "not a url", "htp:/host", "http:/host", "ftp://host/v1", "file:///etc/passwd", "api.openai.com/v1",
    "localhost:8000/v1", "//api.openai.com/v1", "", " https://api.openai.com/v1", "https://api.openai.com/v1\n",
    "https://exa mple.com/v1", "https://-bad-.example.com", "https://exa..mple.com/v1", "https://",
    "http://host:99999/v1", "http://host:port/v1", "http://host:0/v1",
])
def test_base_urls_that_are_not_http_urls_with_a_host_are_refused(url):
    with pytest.raises(ChannelError, match="--base-url"):
        check_base_url(url)


@pytest.mark.parametrize("url, base", [
    ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/Chat/Completions/", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/completions", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/images/generations", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/videos", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/models", "https://api.openai.com/v1"),
    ("https://api-singapore.klingai.com/v1/videos/text2video", "https://api-singapore.klingai.com/v1"),
    ("https://api.dev.runwayml.com/v1/image_to_video", "https://api.dev.runwayml.com/v1"),
    ("https://api.dev.runwayml.com/v1/tasks", "https://api.dev.runwayml.com/v1"),
])
def test_a_base_url_naming_an_endpoint_is_refused_with_the_base_to_use(url, base):
    with pytest.raises(ChannelError, match="endpoint") as refused:
        check_base_url(url)
    assert base in str(refused.value)


@pytest.mark.parametrize("url", ["https://api.example.com/v1?api-key=SECRET", "https://api.example.com/v1#SECRET",
                                 "https://user:SECRET@api.example.com/v1", "https://:SECRET@api.example.com/v1"])
def test_a_base_url_carrying_a_secret_is_refused_without_repeating_it(url):
    with pytest.raises(ChannelError, match="--key") as refused:
        check_base_url(url)
    assert "SECRET" not in str(refused.value)


def test_each_upstream_type_gets_its_default_base_url_or_needs_one():
    for type_, spec in SPECS.items():
        if spec.upstream:
            key = "access:secret" if type_ == "kling" else KEY
            if spec.default_base_url is None:  # e.g. azure: every resource has its own endpoint
                with pytest.raises(ChannelError, match=f"--type {type_} needs --base-url"):
                    check(channel(type_, key=key), SPECS)
            else:
                assert check(channel(type_, key=key), SPECS).base_url == spec.default_base_url


@pytest.mark.parametrize("type_, key, no_key, refusal", [
    ("openai", None, False, "--no-key"),
    ("openai", "", False, "--no-key"),
    ("openai", KEY, True, "not both"),
    ("runway", None, False, "--key KEY"),
    ("runway", None, True, "always needs --key"),
    ("kling", None, True, "always needs --key ACCESS_KEY:SECRET_KEY"),
    ("kling", "access", False, "ACCESS_KEY:SECRET_KEY"),
    ("kling", ":secret", False, "ACCESS_KEY:SECRET_KEY"),
    ("kling", "a:b:c", False, "ACCESS_KEY:SECRET_KEY"),
    ("openai", f"Bearer {KEY}", False, "Bearer"),
    ("openai", f"{KEY}\n", False, "line breaks"),
])
def test_keys_are_required_in_the_form_each_type_takes(type_, key, no_key, refusal):
    with pytest.raises(ChannelError, match=refusal) as refused:
        check(channel(type_, key=key, no_key=no_key), SPECS)
    assert KEY not in str(refused.value)


def test_only_openai_may_be_declared_keyless_and_then_stores_no_key():
    checked = check(channel("openai", key=None, no_key=True, base_url="http://127.0.0.1:8000/v1"), SPECS)
    assert (checked.key, checked.base_url) == ("", "http://127.0.0.1:8000/v1")
    assert [t for t, spec in SPECS.items() if spec.key_optional] == ["openai"]


def test_kling_takes_both_parts_of_its_key():
    assert check(channel("kling", key="access:secret"), SPECS).key == "access:secret"


@pytest.mark.parametrize("fields", [{"key": KEY}, {"base_url": "https://api.example.com"}, {"no_key": True}])
def test_a_simulator_takes_no_upstream_settings(fields):
    with pytest.raises(ChannelError, match="no upstream"):
        check(channel("simulator", **{"key": None, **fields}), SPECS)
    assert check(channel("simulator", key=None), SPECS).base_url == ""


def test_a_model_map_may_only_rename_models_the_channel_serves():
    assert check(channel(models=["a", "b"], model_map={"a": "up-a"}), SPECS).model_map == {"a": "up-a"}
    with pytest.raises(ChannelError, match="'c'.*not in --models"):
        check(channel(models=["a", "b"], model_map={"c": "up-c"}), SPECS)
    with pytest.raises(ChannelError, match="upstream name"):
        check(channel(models=["a"], model_map={"a": "up a"}), SPECS)


@pytest.mark.parametrize("fields, refusal", [({"models": []}, "at least one model"),
                                             ({"models": ["gpt 4"]}, "spaces"),
                                             ({"name": ""}, "name"), ({"name": "my channel"}, "name"),
                                             ({"type": "martian"}, "openai")])
def test_names_models_and_types_are_checked(fields, refusal):
    with pytest.raises(ChannelError, match=refusal):
        check(channel(**fields), SPECS)


# Base URLs that HTTP clients, proxies and the scrubber would each read differently: an empty
# port, an address in an inet_aton spelling, dot segments and escaped slashes or dots.
@pytest.mark.parametrize("url, words", [
    ("http://h.example:/v1", "empty port"), ("http://localhost:/", "empty port"),
    ("http://0x7f.1/v1", "127.0.0.1"), ("http://2130706433/", "127.0.0.1"), ("http://0177.0.0.1/v1", "127.0.0.1"),
    ("http://127.000.000.001/v1", "127.0.0.1"), ("http://10.1/v1", "10.0.0.1"), ("http://0xA000001:8000/", "10.0.0.1"),
    ("http://08.1.2.3/v1", "neither an IP address nor a host name"), ("http://host.123/v1", "neither"),
    ("http://h.example/v1/%2e%2e/x", "'..'"), ("http://h.example/v1/../x", "'..'"),
    ("http://h.example/v1/./x", "'..'"), ("http://h.example/v1/%2E", "'..'"),
    ("http://h.example/v1%2fx", "encoded slash"), ("http://h.example/v1/a%2Fb", "encoded slash"),
    ("http://h.example/v1%5cx", "backslash"), ("http://h.example/v1/%252e%252e", "encoded"),
])
def test_a_base_url_clients_would_read_differently_is_refused_with_what_to_write(url, words):
    with pytest.raises(ChannelError, match="--base-url") as refused:
        check_base_url(url)
    assert words in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "http://h.example/v1.2/x", "http://h.example/..v1/x",
                                 "http://h.example/v1/%7Euser", "http://[0:0:0:0:0:0:0:1]:8000/v1"])
def test_plain_paths_and_addresses_that_look_close_are_still_accepted(url):
    assert check_base_url(url) == url


@pytest.mark.parametrize("version", ["2023-06-01", "2024-10-21", "2025-04-01-preview", "v1beta", "1.0", "v2_beta"])
def test_api_versions_as_providers_spell_them_are_kept(version):
    assert check(channel(api_version=version), SPECS).api_version == version


@pytest.mark.parametrize("version", ["", " 2024-10-21", "2024-10-21\n", "2024 10 21", "2024-10-21&x=1", "v1/beta",
                                     "-v1", "é1", "x" * 65, "2024-10-21\r\nX-Injected: 1"])
def test_api_versions_that_could_break_a_header_or_query_are_refused(version):
    with pytest.raises(ChannelError, match="--api-version"):
        check(channel(api_version=version), SPECS)


def test_no_api_version_leaves_the_providers_current_one():
    assert check(channel(), SPECS).api_version is None


# -- --native-apis ---------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("chat,responses,messages", {"chat", "responses", "messages"}), ("Messages", {"messages"}),
    (" chat , responses ", {"chat", "responses"}), ("none", set()), (["responses", "chat"], {"chat", "responses"}),
    ([], set()), ("default", "default")])
def test_native_apis_as_an_operator_writes_them(given, expected):
    parsed = native_apis_given(given)
    assert parsed == (expected if isinstance(expected, str) else frozenset(expected))


@pytest.mark.parametrize("given", ["embeddings", "chat,images", "chat,", "", "chat;responses", "completions",
                                   ["chat", 3], 7, None])
def test_native_apis_other_than_the_three_client_apis_are_refused_in_one_line(given):
    with pytest.raises(ChannelError, match="--native-apis") as refused:
        native_apis_given(given)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("type_, default", [("openai", {"chat"}), ("azure", {"chat"}), ("anthropic", {"messages"}),
                                            ("gemini", set()), ("simulator", set()), ("kling", set())])
def test_each_channel_types_default_native_apis(type_, default):
    assert SPECS[type_].native_apis == frozenset(default)
    assert Channel(1, "c", type_, "", "").native_apis == frozenset(default)


def test_a_channels_chosen_native_apis_replace_its_types_even_when_none():
    assert Channel(1, "c", "openai", "", "", native_apis_chosen=frozenset({"chat", "responses"})).native_apis == {
        "chat", "responses"}
    assert Channel(1, "c", "anthropic", "", "", native_apis_chosen=frozenset()).native_apis == frozenset()
    assert check(channel(native_apis=frozenset({"responses"})), SPECS).native_apis == {"responses"}
    assert check(channel(), SPECS).native_apis is None


def test_a_channel_without_an_upstream_speaks_no_api_natively():
    with pytest.raises(ChannelError, match="no upstream"):
        check(NewChannel("sim", "simulator", ["m"], native_apis=frozenset({"chat"})), SPECS)
