"""The one loop of leased background work, in-process: what it gives back when stopped."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from server.leased_work import run_claims


@dataclass
class Row:
    id: str


def test_stopping_during_a_claim_hands_back_the_leases_it_took():
    started: list[str] = []
    handed_back: list[bool] = []

    async def main() -> None:
        async def claim(now: float) -> list[Row]:
            # the claim commits in the database thread while the process starts shutting
            # down: the loop never sees the rows it leased
            asyncio.current_task().cancel()
            await asyncio.sleep(0)
            return [Row("a"), Row("b")]

        async def work(row: Row) -> None:
            started.append(row.id)

        async def nothing() -> None:
            return None

        async def hand_back() -> None:
            handed_back.append(True)

        loop = asyncio.create_task(run_claims(claim, work, {}, tick=60, what="test", housekeeping=nothing,
                                              hand_back=hand_back))
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert started == [] and handed_back == [True]
