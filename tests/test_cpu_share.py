"""server/cpu_share.py: the process counts as busy when its CPU time kept up with the wall
clock over the last moments, and as idle when it did not; a verdict stands until `every`
seconds have passed."""
from __future__ import annotations

import time

from server.cpu_share import CpuShare


class Clocks:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0


def test_a_process_using_most_of_a_core_is_busy_and_one_that_sleeps_is_not():
    clocks = Clocks()
    share = CpuShare(busy_at=0.8, every=0.05, cpu=lambda: clocks.cpu, wall=lambda: clocks.wall)
    clocks.wall, clocks.cpu = 0.1, 0.09  # 90% of a core
    assert share.busy()
    clocks.wall, clocks.cpu = 0.2, 0.12  # 30% since
    assert not share.busy()


def test_a_verdict_stands_until_its_time_is_up():
    clocks = Clocks()
    share = CpuShare(busy_at=0.8, every=0.05, cpu=lambda: clocks.cpu, wall=lambda: clocks.wall)
    clocks.wall, clocks.cpu = 0.06, 0.06
    assert share.busy()
    clocks.wall = 0.08  # idle since, but within `every` of the verdict
    assert share.busy()
    clocks.wall = 0.2
    assert not share.busy()


def test_the_real_clocks_see_a_busy_loop_and_a_sleep():
    share = CpuShare(busy_at=0.2, every=0.05)  # low: a shared host may lend this test little of a core
    spun_from, deadline = time.process_time(), time.monotonic() + 5
    while time.process_time() - spun_from < 0.1 and time.monotonic() < deadline:
        pass
    assert share.busy()
    time.sleep(0.1)
    assert not share.busy()
