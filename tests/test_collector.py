"""server/collector.py: once a server has started, what start-up made is frozen out of the
collector's walks and young collections come thousands of objects apart, yet cyclic garbage
made while serving is still collected on its own."""
from __future__ import annotations

import gc
import weakref

import pytest

from server import collector


@pytest.fixture
def settled():
    before = gc.get_threshold()
    collector.settle_after_start()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other = self


def test_start_ups_objects_are_frozen_and_young_collections_wait_for_thousands(settled):
    assert gc.get_freeze_count() > 1000  # this test process's modules, at least
    assert gc.get_threshold()[0] == collector.GEN0_THRESHOLD


def test_cycles_left_while_serving_are_still_collected_without_asking(settled):
    collected = []
    for i in range(3 * collector.GEN0_THRESHOLD):  # garbage cycles, as an exception and its frames leave
        weakref.finalize(Node(), collected.append, i)
    assert len(collected) > collector.GEN0_THRESHOLD  # no gc.collect(): the collector ran by itself
