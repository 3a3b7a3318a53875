"""Per-request event delivery from the decode token streams."""

import asyncio

from services.scheduler.token_streams import HeldBatches, Mailbox, WorkerLost
from supernode.v1 import supernode_pb2 as pb


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


async def until(condition, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def batch(request_id: str, num_tokens: int) -> pb.TokenBatch:
    return pb.TokenBatch(updates=[pb.TokenUpdate(request_id=request_id, num_tokens=num_tokens)])


async def test_a_later_batch_with_less_lead_does_not_overtake_an_earlier_one() -> None:
    """Decode running late sends a step's batch with less lead than the step before; it is
    held until the earlier batch is delivered, so a request's tokens arrive in step order
    (its last step, with the finish, once overtook an earlier one, whose tokens were lost)."""
    delivered: list[int] = []
    held = HeldBatches(lambda b: delivered.append(b.updates[0].num_tokens))
    held.add(batch("r", 1), 0.05)
    held.add(batch("r", 2), 0.0)
    held.add(batch("r", 3), 0.01)
    assert delivered == []
    await until(lambda: len(delivered) == 3)
    assert delivered == [1, 2, 3]
    held.add(batch("r", 4), 0.0)  # nothing held: at once
    assert delivered == [1, 2, 3, 4]


async def test_a_lost_stream_drops_what_it_held() -> None:
    """Batches held when the stream is lost are dropped (their requests fail over from the
    tokens delivered so far); the stream's next batches flow again."""
    delivered: list[int] = []
    held = HeldBatches(lambda b: delivered.append(b.updates[0].num_tokens))
    held.add(batch("r", 1), 0.02)
    held.clear()
    held.add(batch("r", 2), 0.0)
    held.add(batch("r", 3), 0.04)
    await until(lambda: len(delivered) == 2)
    await asyncio.sleep(0.05)
    assert delivered == [2, 3]
