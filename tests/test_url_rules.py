"""server/url_rules.py: the public URL and gRPC targets an operator gives (channel base
URLs, which add the endpoint rule, are in tests/test_channel_rules.py)."""
from __future__ import annotations

import pytest

from server.url_rules import check_grpc_target, check_public_url


@pytest.mark.parametrize("url, kept", [("https://gw.example.com/", "https://gw.example.com"),
                                       ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
                                       ("https://example.com/st-ai", "https://example.com/st-ai")])
def test_a_public_url_is_an_http_url_with_a_host(url, kept):
    assert check_public_url(url) == kept


@pytest.mark.parametrize("url", ["gw.example.com", "ftp://gw.example.com", "https://", "https://gw example.com",
                                 "https://gw.example.com:0", "https://gw.example.com/?token=SECRET",
                                 "https://admin:SECRET@gw.example.com"])
def test_a_public_url_that_clients_could_not_use_is_refused(url):
    with pytest.raises(ValueError) as refused:
        check_public_url(url)
    assert "SECRET" not in str(refused.value)


@pytest.mark.parametrize("target", ["127.0.0.1:50051", "localhost:50051", "[::1]:50051", "unix:/tmp/st-ai/grpc.sock",
                                    "dns:///grpc.example.com:443"])
def test_grpc_targets_in_the_forms_grpc_takes_are_accepted(target):
    assert check_grpc_target(target) == target


@pytest.mark.parametrize("target", ["", "localhost", "localhost:", "localhost:0", "localhost:65536", ":50051",
                                    "local host:50051", "unix:", "http://127.0.0.1:50051"])
def test_grpc_targets_without_a_host_and_port_are_refused(target):
    with pytest.raises(ValueError, match="HOST:PORT|no address|host"):
        check_grpc_target(target)


@pytest.mark.parametrize("url", ["https://gw.example.com:/", "http://2130706433:8080", "https://gw.example.com/a/../b",
                                 "https://gw.example.com/st-ai%2fx"])
def test_a_public_url_with_an_empty_port_odd_address_or_dot_segments_is_refused(url):
    with pytest.raises(ValueError):
        check_public_url(url)


@pytest.mark.parametrize("target", ["2130706433:50051", "0x7f.1:50051", "127.1:50051"])
def test_a_grpc_target_with_an_address_in_an_inet_aton_spelling_is_refused(target):
    with pytest.raises(ValueError, match="127.0.0.1"):
        check_grpc_target(target)
