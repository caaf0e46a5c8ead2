"""server/metrics.py counts on the request path through prometheus-client's values
directly: the exposition must be exactly what the library's own `inc` and `observe` give."""
from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from server import metrics

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.25, 1)
# below, on and between the bounds, past the last one, and zero
AMOUNTS = (0.0, 0.00005, 0.0001, 0.00011, 0.00025, 0.0003, 0.0005, 0.9, 1.0, 1.0000001, 7.5, 300.0)


def families(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    return (Counter("calls", "Calls.", ("channel",), registry=registry),
            Histogram("call_seconds", "Call seconds.", ("channel",), buckets=BUCKETS, registry=registry))


def test_the_direct_path_exposes_what_prometheus_clients_own_inc_and_observe_expose():
    own, direct = CollectorRegistry(), CollectorRegistry()
    own_counter, own_histogram = families(own)
    counter, histogram = families(direct)
    observe = metrics._fast_observe(histogram.labels("a"))
    assert observe is not None, "prometheus-client's histogram no longer has the parts looked for"
    inc = metrics._count(counter, "a")
    for amount in AMOUNTS:
        own_histogram.labels("a").observe(amount)
        own_counter.labels("a").inc(amount)
        observe(amount)
        inc(amount)
    assert samples(direct) == samples(own)


def samples(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, but for the families' creation times."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_a_histogram_without_the_parts_looked_for_is_observed_through_its_public_method():
    class Elsewhere:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Elsewhere()
    assert metrics._fast_observe(child) is None
    family = Histogram("other_seconds", "Other.", registry=CollectorRegistry())
    family._upper_bounds = [1.0]  # not ending at +Inf: not a shape the direct path knows
    assert metrics._fast_observe(family) is None
    assert math.isinf(Histogram("fine_seconds", "Fine.", registry=CollectorRegistry())._upper_bounds[-1])


def test_the_gateways_counts_reach_the_exposition():
    before = generate_latest().decode()
    metrics.request("counting-model", "counting-channel", 200, None)
    metrics.request("counting-model", "counting-channel", 200, None)
    metrics.attempt("counting-channel", 502, "upstream_error", 0.3)
    metrics.overhead("rest", True, 0.0042, 0.004)
    after = generate_latest().decode()
    assert 'st_ai_requests_total{channel="counting-channel",code="",model="counting-model",status="200"} 2.0' in after
    assert ('st_ai_upstream_attempts_total{channel="counting-channel",code="upstream_error",status="502"} 1.0'
            in after)
    assert 'st_ai_upstream_attempt_seconds_bucket{channel="counting-channel",le="0.25"} 0.0' in after
    assert 'st_ai_upstream_attempt_seconds_bucket{channel="counting-channel",le="0.5"} 1.0' in after
    assert before != after
