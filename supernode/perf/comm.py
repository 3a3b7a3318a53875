"""Network time: point-to-point transfers and the EP all-to-all (dispatch/combine)."""

from __future__ import annotations

from supernode.hardware import HardwareSpec, Link
from supernode.perf.timing import Timing


def transfer_time(num_bytes: int, link: Link) -> Timing:
    """``latency + bytes / (bandwidth * efficiency)`` of one transfer over ``link``."""
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0 (got {num_bytes})")
    wire_s = num_bytes / link.effective_bandwidth_bytes_per_s
    return Timing(total_s=link.latency_s + wire_s,
                  breakdown={"latency": link.latency_s, "transfer": wire_s},
                  bounds={"latency": "fixed", "transfer": "network"})


def all_to_all_s(hw: HardwareSpec, ep: int, bytes_per_die: float, efficiency: float) -> float:
    """One all-to-all over ``ep`` dies in which every die sends (or receives) ``bytes_per_die``.

    ``efficiency`` is the achieved fraction of the per-die scale-up bandwidth (fitted to the
    measured dispatch/combine figures).

    The 1/ep share addressed to the die itself never leaves it. Peers beyond the scale-up
    domain (e.g. past 8 GPUs on NVLink) are reached over the scale-out plane; the two
    planes run in parallel and the slower sets the pace.
    """
    if ep == 1 or bytes_per_die <= 0:
        return 0.0
    ub, rdma, dies = hw.links["ub"], hw.links["rdma"], hw.num_dies_per_device
    wire = bytes_per_die * (ep - 1) / ep
    outside = max(0.0, 1 - hw.scale_up_domain_devices * dies / ep)
    inside_s = wire * (1 - outside) * dies / (ub.bandwidth_bytes_per_s * efficiency)
    outside_s = (wire * outside * dies
                 / (rdma.bandwidth_bytes_per_s * min(efficiency, rdma.efficiency)))
    latency = (rdma if outside else ub).latency_s + hw.op_costs.comm_s
    return latency + max(inside_s, outside_s)
