"""Network time: point-to-point transfers, transfers that share links, and the EP all-to-all.

Sharing rule (KV hand-off, cache fetches): flows that start together share a common capacity
fairly (max-min: every unfinished flow gets the same rate, capped by what one flow can use);
a flow's rate rises as the others finish.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from supernode.hardware import HardwareSpec, Link
from supernode.perf.deployment import Deployment
from supernode.perf.timing import Timing


def transfer_time(num_bytes: int, link: Link) -> Timing:
    """``latency + bytes / (bandwidth * efficiency)`` of one transfer alone on ``link``."""
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0 (got {num_bytes})")
    wire_s = num_bytes / link.effective_bandwidth_bytes_per_s
    return Timing(total_s=link.latency_s + wire_s,
                  breakdown={"latency": link.latency_s, "transfer": wire_s},
                  bounds={"latency": "fixed", "transfer": "network"})


def fair_share_finish_s(sizes: Sequence[float], shared_bytes_per_s: float,
                        per_flow_bytes_per_s: float) -> list[float]:
    """Seconds until each flow of ``sizes`` bytes completes, all starting at 0.

    Every unfinished flow moves at ``min(per_flow, shared / unfinished)`` (max-min fair
    sharing); results are in input order.
    """
    if not shared_bytes_per_s > 0 or not per_flow_bytes_per_s > 0:
        raise ValueError("link rates must be > 0")
    finish = [0.0] * len(sizes)
    now, moved, active = 0.0, 0.0, len(sizes)
    for index in sorted(range(len(sizes)), key=sizes.__getitem__):
        if sizes[index] < 0:
            raise ValueError(f"flow sizes must be >= 0 (got {sizes[index]})")
        rate = min(per_flow_bytes_per_s, shared_bytes_per_s / active)
        now += (sizes[index] - moved) / rate
        moved, finish[index] = sizes[index], now
        active -= 1
    return finish


def kv_handoff_times(kv_num_bytes: Sequence[int], deployment: Deployment) -> tuple[Timing, ...]:
    """P->D hand-off of the requests of one finished prefill batch, in input order.

    Each request's complete KV crosses the RDMA plane once (P3 s4.3.3) into one decode rank,
    so a flow moves at most at one die's NIC rate; all flows start at the batch's end and share
    the prefill instance's NICs (one per die) fairly. ``total_s`` of each Timing is the time
    from the batch's end until that request's KV is complete at decode; its breakdown splits
    it into ``latency``, ``transfer`` (alone on one NIC) and ``contention`` (waiting on the
    batch's other transfers).
    """
    return _kv_handoff_times(tuple(int(n) for n in kv_num_bytes), deployment)


@functools.lru_cache(maxsize=4096)
def _kv_handoff_times(sizes: tuple[int, ...], d: Deployment) -> tuple[Timing, ...]:
    link = d.hardware.die_link("rdma")
    per_flow = link.effective_bandwidth_bytes_per_s
    finish = fair_share_finish_s(sizes, per_flow * d.num_dies, per_flow)
    timings = []
    for num_bytes, wire_s in zip(sizes, finish):
        alone_s = num_bytes / per_flow
        timings.append(Timing(
            total_s=link.latency_s + wire_s,
            breakdown={"latency": link.latency_s, "transfer": alone_s,
                       "contention": max(0.0, wire_s - alone_s)},
            bounds={"latency": "fixed", "transfer": "network", "contention": "network"}))
    return tuple(timings)


def ep_wire_s(hw: HardwareSpec, path: str, ep: int, bytes_per_die: float,
              remote_node_share: float = 1.0, efficiency: float | None = None) -> float:
    """Wire seconds of one all-to-all in which each of ``ep`` dies pushes ``bytes_per_die``.

    The 1/ep share addressed to the sender itself stays local. ``scale_up``: every peer inside
    the scale-up domain over it, peers past the domain over the scale-out plane, in parallel.
    ``scale_out``: every peer over the scale-out NICs. ``hierarchical``: the scale-out plane
    carries ``remote_node_share`` of the bytes (one copy per destination node), the scale-up
    plane fans every copy out inside the nodes; the two pipeline, the slower sets the pace.
    Rates: ``efficiency`` x nominal when given (a kernel's fitted rate), else the links'
    measured bulk write rates.
    """
    if ep <= 1 or bytes_per_die <= 0:
        return 0.0
    dies = hw.num_dies_per_device
    ub, rdma = hw.links["ub"], hw.links["rdma"]
    if efficiency is None:
        up, out = ub.effective_write_bytes_per_s, rdma.effective_write_bytes_per_s
    else:
        up = ub.bandwidth_bytes_per_s * efficiency
        out = rdma.bandwidth_bytes_per_s * efficiency
    up, out = up / dies, out / dies
    sent = bytes_per_die * (ep - 1) / ep
    if path == "scale_out":
        return sent / out
    outside = max(0.0, 1 - hw.scale_up_domain_devices * dies / ep)
    if path == "scale_up":
        return max(sent * (1 - outside) / up, sent * outside / out)
    return max(bytes_per_die * remote_node_share / out, sent / up)


def ep_latency_s(hw: HardwareSpec, path: str, ep: int) -> float:
    """Start-up of one all-to-all: the slowest plane's message latency plus a comm kernel's
    launch cost."""
    if ep <= 1:
        return 0.0
    inside = path == "scale_up" and ep <= hw.scale_up_domain_devices * hw.num_dies_per_device
    plane = hw.links["ub"] if inside else hw.links["rdma"]
    return plane.latency_s + hw.op_costs.comm_s


def all_to_all_s(d: Deployment, phase: str, op: str, bytes_per_die: float,
                 remote_node_share: float = 1.0) -> float:
    """One EP ``op`` ("dispatch" or "combine") in ``phase`` ("decode" or "prefill").

    Decode runs latency-optimised kernels of per-token messages, at the fitted fraction of the
    nominal link rate (``<op>_efficiency``); prefill moves large batched buffers at the links'
    measured bulk rates. Each takes the hardware's path for its phase (``EpPaths``)."""
    if d.ep <= 1 or bytes_per_die <= 0:
        return 0.0
    hw = d.hardware
    path = hw.ep_paths.decode if phase == "decode" else hw.ep_paths.prefill
    efficiency = getattr(d.calibration, f"{op}_efficiency") if phase == "decode" else None
    return (ep_latency_s(hw, path, d.ep)
            + ep_wire_s(hw, path, d.ep, bytes_per_die, remote_node_share, efficiency))
