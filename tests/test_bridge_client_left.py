"""A client that leaves while its stream is being written: the next write finds the
connection reset. That is the client's doing, not a gateway failure: no error is logged
and no error answer is attempted; the request's access line says 499."""
from __future__ import annotations

import logging

import pytest
from aiohttp import ClientConnectionResetError, web
from aiohttp.test_utils import make_mocked_request

from rest_bridge import access_log
from rest_bridge.errors import openai_errors


async def _left_mid_write(request: web.Request) -> web.StreamResponse:
    raise ClientConnectionResetError("Cannot write to closing transport")


async def test_a_reset_connection_passes_the_error_middleware_without_an_error_log(caplog):
    request = make_mocked_request("POST", "/v1/chat/completions")
    with caplog.at_level(logging.INFO, logger="st_ai.bridge"), pytest.raises(ConnectionError):
        await openai_errors(request, _left_mid_write)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_reset_connection_is_logged_as_the_clients_499(monkeypatch):
    lines: list[dict] = []
    monkeypatch.setattr(access_log.logs, "access", lambda fields: lines.append(fields))
    request = make_mocked_request("POST", "/v1/chat/completions")
    with pytest.raises(ConnectionError):
        await access_log.access_record(request, _left_mid_write)
    assert [line["status"] for line in lines] == [499]
