"""Regression: the runner loop must end when cancelled, even as a wake-up arrives.

Python 3.11's ``asyncio.wait_for`` returns normally when the awaited thing completes
in the same loop iteration as the cancellation, so the runner's ``while True`` went on
forever and server shutdown (and asyncio.run's cleanup) hung.
"""

from __future__ import annotations

import asyncio

from outbound_helpers import make_runner


def test_runner_stops_when_cancelled_during_a_wakeup(tmp_path):
    runner, queue, _ctx = make_runner(tmp_path, {"resolver": "127.0.0.1:9", "poll_interval": "30s"})

    async def main() -> None:
        await queue.open()
        try:
            for _ in range(5):
                task = asyncio.create_task(runner.run())
                await asyncio.sleep(0.05)  # the loop now waits for a wake-up
                runner.wake()
                task.cancel()  # in the same iteration as the wake-up
                done, _ = await asyncio.wait({task}, timeout=3)
                assert task in done and task.cancelled(), "the runner ignored its cancellation"
        finally:
            await runner.close()
            await queue.close()

    asyncio.run(main())
