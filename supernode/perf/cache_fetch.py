"""Context-cache fetch: the time a prefill batch spends loading its cached prefixes.

The paper's prefill path looks the prefix up in EMS, fetches the hits into device memory, then
computes the suffix (P3 s4.4.2), so a batch's fetch precedes its compute. The batch's cached
blocks are shared out over the instance's DP groups; every die of a group loads its copy of
the group's blocks (MLA replicates the latent KV on each TP rank, GQA shards it). One die's
fetch costs:

- a fixed copy cost per block and layer (the device KV cache is laid out per layer, so a
  block lands as one copy per layer), fitted to the paper's EMS reuse figures;
- the bytes over the slowest share of the path: the die's own port (UB: the measured
  NPU->CPU read rate; VPC: its share of the node's NIC; local DRAM: PCIe), and the pool side
  (every pool node serves its DRAM at ``source_node_bandwidth``, shared by all dies reading at
  that moment: this instance's, times ``num_concurrent_instances`` fetching alike);
- one start-up latency.
"""

from __future__ import annotations

import math

from supernode.hardware import LOCAL_DRAM_LINK, Link
from supernode.perf.deployment import Deployment
from supernode.perf.memory import kv_bytes_per_token_per_die
from supernode.perf.ops import Op
from supernode.perf.timing import PrefillBatch, Timing


def cache_fetch_op(batch: PrefillBatch, d: Deployment, num_concurrent_instances: int = 1) -> Op:
    """The critical die's fetch of ``batch``'s cached prefixes (``cache_fetch``); zero if none."""
    cached = batch.cached_prefix_lens
    total = sum(cached)
    if total == 0:
        return Op("cache_fetch", 0.0, "fixed")
    m, block = d.model, d.kv_block_tokens
    layers = m.num_layers + (m.num_mtp_layers if d.mtp_tokens else 0)
    blocks_per_die = math.ceil(sum(-(-c // block) for c in cached) / d.dp)
    setup_s = blocks_per_die * layers * d.calibration.ems_transfer_overhead_s
    bytes_per_die = total / d.dp * kv_bytes_per_token_per_die(d)
    link, rate = fetch_path(d, batch.cache_source, num_concurrent_instances)
    wire_s = bytes_per_die / rate
    return Op("cache_fetch", link.latency_s + setup_s + wire_s,
              "fixed" if setup_s >= wire_s else "network", bytes=bytes_per_die)


def cache_fetch_time(batch: PrefillBatch, deployment: Deployment,
                     num_concurrent_instances: int = 1) -> Timing:
    """The fetch alone, as a Timing (``prefill_time`` includes it in its ``cache_fetch`` part).

    ``num_concurrent_instances`` > 1 prices the case where that many prefill instances of the
    same shape fetch at the same moment and share the pool side."""
    if num_concurrent_instances < 1:
        raise ValueError("num_concurrent_instances must be >= 1")
    op = cache_fetch_op(batch, deployment, num_concurrent_instances)
    return Timing(total_s=op.time_s, breakdown={op.part: op.time_s}, bounds={op.part: op.bound},
                  num_tokens=sum(batch.cached_prefix_lens))


def fetch_path(d: Deployment, source: str, num_concurrent_instances: int = 1) -> tuple[Link, float]:
    """The link a die reads ``source`` over and its achievable bytes/s per die."""
    hw = d.hardware
    dies_per_device = hw.num_dies_per_device
    if source == "local_dram":
        return LOCAL_DRAM_LINK, LOCAL_DRAM_LINK.effective_bandwidth_bytes_per_s / dies_per_device
    plane = source  # "ems_ub" or "ems_vpc": the profile's plane of the same name
    link = hw.link(plane)
    rate = link.effective_bandwidth_bytes_per_s / dies_per_device
    if plane in hw.node_bandwidth_bytes_per_s:
        dies_on_node = min(d.num_dies, hw.num_devices_per_node * dies_per_device)
        rate = min(rate, hw.node_link(plane).effective_bandwidth_bytes_per_s / dies_on_node)
    source_bw = hw.source_bandwidth_bytes_per_s_per_node.get(plane)
    if source_bw is not None:
        readers = d.num_dies * num_concurrent_instances
        rate = min(rate, d.ems_pool_nodes * source_bw * link.efficiency / readers)
    return link, rate
