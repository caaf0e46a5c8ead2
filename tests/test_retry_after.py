from server.providers.failures import retry_after
from server.providers.retry_after import milliseconds, seconds


def test_retry_after_in_seconds_and_as_an_http_date():
    assert seconds("3") == 3.0
    assert seconds(" 1.5 ") == 1.5
    assert seconds("Sun, 29 Nov 2026 12:00:10 GMT", now=1795953600.0) == 10.0


def test_retry_after_that_cannot_be_read_or_is_absurd():
    assert seconds(None) is None and seconds("") is None and seconds("soon") is None
    assert seconds("nan") is None and seconds("inf") is None
    assert seconds("-5") == 0.0 and seconds("99999999") == 86400.0
    assert seconds("Sun, 29 Nov 2026 11:59:00 GMT", now=1795953600.0) == 0.0


def test_retry_after_ms_is_read_as_seconds_and_bounded():
    assert milliseconds("6000") == 6.0 and milliseconds(" 250 ") == 0.25
    assert milliseconds(None) is None and milliseconds("soon") is None and milliseconds("nan") is None
    assert milliseconds("-5") == 0.0 and milliseconds("999999999999") == 86400.0


def test_an_upstreams_retry_after_ms_is_preferred_to_its_retry_after():
    # Azure OpenAI sends both on a 429: the milliseconds are the finer answer.
    assert retry_after({"retry-after-ms": "6500", "retry-after": "7"}) == 6.5
    assert retry_after({"retry-after-ms": "not a number", "Retry-After": "7"}) == 7.0
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after(None) is None
