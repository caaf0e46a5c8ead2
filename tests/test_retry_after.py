from server.providers.retry_after import seconds


def test_retry_after_in_seconds_and_as_an_http_date():
    assert seconds("3") == 3.0
    assert seconds(" 1.5 ") == 1.5
    assert seconds("Sun, 29 Nov 2026 12:00:10 GMT", now=1795953600.0) == 10.0


def test_retry_after_that_cannot_be_read_or_is_absurd():
    assert seconds(None) is None and seconds("") is None and seconds("soon") is None
    assert seconds("nan") is None and seconds("inf") is None
    assert seconds("-5") == 0.0 and seconds("99999999") == 86400.0
    assert seconds("Sun, 29 Nov 2026 11:59:00 GMT", now=1795953600.0) == 0.0
