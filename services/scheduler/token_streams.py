"""One StreamTokens subscription per decode worker, fanned out to per-request queues.

Each decode worker sends one TokenBatch per step for all of this scheduler's requests on it;
the batch is split here into the waiting requests' queues. When a worker's stream breaks or
the worker leaves the registry, every request on it receives `WorkerLost`, so the request flow
can fail over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from services.common.grpc_server import insecure_channel
from supernode.clock import Clock
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenEvent:
    num_tokens: int
    finish_reason: int  # pb.FinishReason
    elapsed_s: float
    """Model seconds since the choice's previous tokens (its first: since its KV arrived)."""
    index: int = 0
    """The choice (parallel sampling)."""


@dataclass(frozen=True)
class WorkerLost:
    worker_id: str
    reason: str


Event = TokenEvent | WorkerLost

LIVENESS_INTERVAL_S = 0.25
"""How often a flowing token stream renews its worker's lease: a decode instance too busy
stepping to heartbeat on time is plainly alive while its steps keep arriving."""


class Mailbox:
    """A single-consumer event queue: what asyncio.Queue does here, with less per-item work
    (every streamed chunk passes through one of these)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Event) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Event:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class DecodeLink:
    """The scheduler's channel, stub and token stream to one decode worker."""

    def __init__(self, worker_id: str, address: str, subscriber_id: str,
                 streams: TokenStreams) -> None:
        self.worker_id = worker_id
        self.address = address
        self.channel = insecure_channel(address, streams.cluster_token)
        self.stub = pb_grpc.DecodeServiceStub(self.channel)
        self.ready = asyncio.Event()
        self._streams = streams
        self._subscriber_id = subscriber_id
        self._task = asyncio.create_task(self._pump(), name=f"tokens-{worker_id}")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.channel.close()

    async def _pump(self) -> None:
        reason, broken = "token stream ended", True
        try:
            call = self.stub.StreamTokens(pb.StreamTokensRequest(subscriber_id=self._subscriber_id))
            await call.wait_for_connection()
            self.ready.set()
            touched_at = 0.0
            async for batch in call:
                self._streams.dispatch(batch, self.worker_id)
                now = time.monotonic()
                if now - touched_at > LIVENESS_INTERVAL_S:
                    touched_at = now
                    self._streams.on_alive(self.worker_id, now)
        except grpc.aio.AioRpcError as e:
            reason = f"token stream failed: {e.code().name}"
        except asyncio.CancelledError:
            reason, broken = "worker left the registry", False
            raise
        finally:
            self._streams.on_link_lost(self, reason, broken)


class TokenStreams:
    """Per-request event queues, fed by one DecodeLink per decode worker.

    A TokenBatch that arrives before its step's modelled end (`due_in_s`, decode sends it the
    delivery lead early) is held until then on `clock`, so every request's tokens reach its
    client at the modelled time."""

    def __init__(self, subscriber_id: str,
                 on_alive: Callable[[str, float], None] = lambda worker_id, now_s: None,
                 on_broken: Callable[[str, str], None] = lambda worker_id, address: None,
                 clock: Clock | None = None, cluster_token: str | None = None) -> None:
        """`on_alive(worker_id, now)`: a stream is flowing. `on_broken(worker_id, address)`: a
        worker's current stream broke (not closed from here): it is likely gone."""
        self.subscriber_id = subscriber_id
        self.on_alive = on_alive
        self.on_broken = on_broken
        self.clock = clock
        self.cluster_token = cluster_token
        self.links: dict[str, DecodeLink] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._queues: dict[str, Mailbox] = {}
        self._worker_of: dict[str, str] = {}

    def connect(self, worker_id: str, address: str) -> DecodeLink:
        link = self.links.get(worker_id)
        if link is None or link.address != address:
            if link is not None:  # the worker re-registered elsewhere: retire the old link
                task = asyncio.create_task(link.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            link = DecodeLink(worker_id, address, self.subscriber_id, self)
            self.links[worker_id] = link
        return link

    async def disconnect(self, worker_id: str) -> None:
        link = self.links.pop(worker_id, None)
        if link is not None:
            await link.close()

    async def close(self) -> None:
        for worker_id in list(self.links):
            await self.disconnect(worker_id)

    def open(self, request_id: str, worker_id: str) -> Mailbox:
        queue = Mailbox()
        self._queues[request_id] = queue
        self._worker_of[request_id] = worker_id
        return queue

    def close_request(self, request_id: str) -> None:
        self._queues.pop(request_id, None)
        self._worker_of.pop(request_id, None)

    def dispatch(self, batch: pb.TokenBatch, worker_id: str) -> None:
        """Deliver `batch` from decode `worker_id` to its requests' queues at its due time."""
        if batch.due_in_s > 0 and self.clock is not None:
            asyncio.get_running_loop().call_later(self.clock.to_wall_s(batch.due_in_s),
                                                  self._deliver, batch, worker_id)
        else:
            self._deliver(batch, worker_id)

    def _deliver(self, batch: pb.TokenBatch, worker_id: str) -> None:
        worker_of = self._worker_of
        for update in batch.updates:
            queue = self._queues.get(update.request_id)
            # A request that failed over meanwhile no longer listens to this worker.
            if queue is not None and worker_of.get(update.request_id) == worker_id:
                queue.put_nowait(TokenEvent(update.num_tokens, update.finish_reason,
                                            update.elapsed_s or batch.step_s, update.index))

    def on_link_lost(self, link: DecodeLink, reason: str, broken: bool = True) -> None:
        """Fail every request on the link's worker over; forget the link if it is current."""
        if self.links.get(link.worker_id) is link:
            del self.links[link.worker_id]
            if broken:
                self.on_broken(link.worker_id, link.address)
        lost = [r for r, w in self._worker_of.items() if w == link.worker_id]
        if lost:
            log.warning("decode %s lost (%s): %d requests affected", link.worker_id, reason,
                        len(lost))
        for request_id in lost:
            self._queues[request_id].put_nowait(WorkerLost(link.worker_id, reason))
