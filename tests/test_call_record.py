"""server/call_record.py: the bridge's record of a call adopts the facts the service's
record holds, the same whether they come as the record itself (in-process) or as JSON."""
from __future__ import annotations

import orjson
import pytest

from server.call_record import CallRecord


def service_record(**facts) -> CallRecord:
    record = CallRecord("rid-service", rate=object(), started=12.5, upstream_seconds=0.25, span=object())
    for name, value in facts.items():
        setattr(record, name, value)
    return record


@pytest.mark.parametrize("facts", [
    {},
    {"token": "alice", "model": "m", "channel": "c1", "upstream_ms": 0, "stream": True},
    {"token": "bob", "error_code": "upstream_error", "status": 502, "client_address": "2001:db8::1"},
])
def test_adopting_the_record_is_taking_its_facts(facts):
    service = service_record(**facts)
    adopted, taken = CallRecord("rid-bridge"), CallRecord("rid-bridge")
    adopted.adopt(service)
    taken.take(orjson.loads(orjson.dumps(service.facts())))
    assert adopted == taken
    # what only the service's side knows stays there
    assert (adopted.request_id, adopted.rate, adopted.started, adopted.span) == ("rid-bridge", None, 0.0, None)


def test_a_fact_the_service_never_noted_leaves_the_bridges_own():
    bridge = CallRecord("rid", client_address="192.0.2.7", token="from-the-bridge")
    bridge.adopt(service_record(model="m"))
    assert (bridge.client_address, bridge.token, bridge.model) == ("192.0.2.7", "from-the-bridge", "m")
