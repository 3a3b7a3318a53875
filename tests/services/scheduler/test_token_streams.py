"""Per-request event delivery from the decode token streams."""

import asyncio

from services.scheduler.token_streams import Mailbox, WorkerLost


async def test_mailbox_delivers_in_order_and_wakes_its_reader() -> None:
    """Events put before or while the reader waits arrive in order."""
    box = Mailbox()
    box.put_nowait(WorkerLost("a", "1"))
    assert (await box.get()).worker_id == "a"
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put_nowait(WorkerLost("b", "2"))
    box.put_nowait(WorkerLost("c", "3"))
    assert (await reader).worker_id == "b" and (await box.get()).worker_id == "c"
